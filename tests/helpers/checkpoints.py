"""Sessions whose tool calls name file checkpoints, kept in a home's checkpoint store."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers.sessions import write_session
from taurus_ops.store import format as fmt
from taurus_ops.store.checkpoints import ABSENT, CheckpointStore


def edited_document(
    store: CheckpointStore, session_id: str, edits: list[tuple[str, bytes | None, bytes]]
) -> dict[str, Any]:
    """A session of one turn in which the chat wrote each ``(file, before, after)`` in turn
    (``before`` None: the file did not exist), its checkpoints kept in ``store``.

    Message 1 asks; edit ``n`` (from 0) is the tool_use of message ``2 + 2n``."""
    created = datetime(2025, 1, 18, 10, 0, tzinfo=UTC)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Edit the files, please"}]
    calls = []
    for n, (file, before, after) in enumerate(edits):
        use_id = f"toolu_{session_id}_{n}"
        moment = fmt.format_time(created + timedelta(seconds=10 * (n + 1)))
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": use_id,
                        "name": "write",
                        "input": {"file": file, "content": after.decode(errors="replace")},
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use_id, "content": "written"}],
            }
        )
        calls.append(
            {
                "tool": "write",
                "file": file,
                "timestamp": moment,
                "outcome": "ok",
                "toolUseId": use_id,
                "realPath": f"/work/project/{file}",
                "checkpoint": ABSENT if before is None else store.save(session_id, before)[0],
                "written": store.save(session_id, after)[0],
            }
        )
    messages.append({"role": "assistant", "content": "Done."})
    return {
        "sessionId": session_id,
        "created": fmt.format_time(created),
        "updated": fmt.format_time(created + timedelta(minutes=5)),
        "messages": messages,
        "toolCalls": calls,
    }


def edited_session(
    home: Path, session_dir: Path, session_id: str, edits: list[tuple[str, bytes | None, bytes]]
) -> Path:
    """``edited_document`` written as a session file of ``session_dir``; returns its path."""
    store = CheckpointStore.for_home(home)
    return write_session(session_dir, edited_document(store, session_id, edits))


def age(path: Path, seconds: float = 3600) -> None:
    """Make ``path`` look ``seconds`` old (past the doctor's grace for files being written)."""
    then = datetime.now(UTC).timestamp() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
