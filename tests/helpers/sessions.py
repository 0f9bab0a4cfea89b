"""Build realistic session documents and files for tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, ensure_dir

TOOLS = ["read", "edit", "grep", "bash", "write", "glob"]
FILES = [
    "src/api/users.ts",
    "src/auth/login.ts",
    "src/utils/validation.ts",
    "README.md",
    "tests/test_api.py",
]


def make_document(
    session_id: str,
    created: datetime | None = None,
    n_turns: int = 3,
    rng: random.Random | None = None,
    first: str = "Help me debug the login issue",
) -> dict[str, Any]:
    """A session with user text, assistant text, tool_use/tool_result pairs and toolCalls."""
    rng = rng or random.Random(session_id)
    created = created or datetime(2025, 1, 18, 10, 23, 45, 123000, tzinfo=UTC)
    moment = created
    messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
    calls: list[dict[str, Any]] = []
    for turn in range(n_turns):
        tool = rng.choice(TOOLS)
        target = rng.choice(FILES)
        moment += timedelta(seconds=rng.randint(5, 300))
        tool_id = f"toolu_{session_id}_{turn}"
        args = (
            {"command": "pytest -q"}
            if tool == "bash"
            else {"pattern": "login"}
            if tool in ("grep", "glob")
            else {"file": target}
        )
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Let me look at {target} (step {turn})."},
                    {"type": "tool_use", "id": tool_id, "name": tool, "input": args},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": f"output of {tool} #{turn}",
                    }
                ],
            }
        )
        calls.append({"tool": tool, **args, "timestamp": fmt.format_time(moment)})
        messages.append(
            {"role": "assistant", "content": f"I found the issue in {target}:{turn + 40}."}
        )
        messages.append({"role": "user", "content": f"Thanks, next step {turn}."})
    return {
        "sessionId": session_id,
        "created": fmt.format_time(created),
        "updated": fmt.format_time(moment),
        "messages": messages,
        "toolCalls": calls,
    }


def write_session(folder: Path, document: dict[str, Any]) -> Path:
    ensure_dir(folder)
    created = fmt.parse_time(document.get("created")) or datetime.now(UTC)
    path = folder / fmt.file_name(created, document["sessionId"])
    atomic_write(path, fmt.dumps(document), durable=False)
    return path
