"""What ``list`` shows of a session, read from its file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.reading import Reading, mtime_iso, read_file
from taurus_ops.store.refs import id_from_file_name
from taurus_ops.store.session import title_of


@dataclass
class SessionSummary:
    id: str
    path: str
    created: str
    updated: str
    messages: int
    tool_calls: int
    title: str
    size: int
    archived: bool = False
    names: list[str] = field(default_factory=list)
    error: str | None = None  # set when the file cannot be read as a session
    parent: str | None = None  # parentSession: the session this one was forked or compacted from
    forked_at: int | None = None  # forkedAt: how many of the parent's messages a fork kept
    cwd: str | None = None  # where the session was started (its project)

    def sort_key(self) -> datetime:
        return fmt.parse_time(self.updated) or datetime.min.replace(tzinfo=UTC)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["toolCalls"] = out.pop("tool_calls")
        out["parentSession"] = out.pop("parent")
        out["forkedAt"] = out.pop("forked_at")
        return out


def summarize(
    path: Path, archived: bool = False, stat: os.stat_result | None = None
) -> SessionSummary:
    """What ``list`` shows of the session file at ``path`` (FileNotFoundError if it is gone)."""
    st = stat or os.stat(path)
    return summary_of(read_file(path), path, st, archived)


def summary_of(
    reading: Reading, path: Path | str, st: os.stat_result, archived: bool = False
) -> SessionSummary:
    """What ``list`` shows of a session file, from a lenient reading of it."""
    mtime = mtime_iso(st)
    file_id = id_from_file_name(os.path.basename(path))
    data = reading.data
    if data is None:
        return SessionSummary(
            file_id, str(path), "", mtime, 0, 0, "", st.st_size, archived, error=reading.error
        )
    messages = data.get("messages")
    tool_calls = data.get("toolCalls")
    created = data.get("created")
    updated = data.get("updated")
    title = data.get("title")
    return SessionSummary(
        id=file_id,
        path=str(path),
        created=created if isinstance(created, str) else "",
        updated=updated if isinstance(updated, str) and fmt.parse_time(updated) else mtime,
        messages=len(messages) if isinstance(messages, list) else 0,
        tool_calls=len(tool_calls) if isinstance(tool_calls, list) else 0,
        title=fmt.one_line(title)
        if isinstance(title, str) and title.strip()
        else title_of(messages),
        size=st.st_size,
        archived=archived,
        **family_fields(data),
    )


def family_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``parent``, ``forked_at`` and ``cwd`` of a session document (None where unset)."""
    parent = data.get("parentSession")
    forked = data.get("forkedAt")
    cwd = data.get("cwd")
    return {
        "parent": parent if isinstance(parent, str) and fmt.is_valid_token(parent) else None,
        "forked_at": forked  # a fork point past 2**63 messages is not one (nor storable)
        if isinstance(forked, int) and not isinstance(forked, bool) and 0 <= forked < 1 << 63
        else None,
        "cwd": fmt.printable(cwd) if isinstance(cwd, str) and cwd and "\0" not in cwd else None,
    }
