"""A session in memory: the parsed document plus where it lives."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import SessionFormatError
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    from taurus_ops.store.layout import Image

LARGE = 1 << 20  # bytes: parsed with the cyclic garbage collector paused


@dataclass
class Session:
    """A session document. ``data`` is the whole JSON object, unknown fields included.

    A message already saved is not edited in place, except the last one (the chat adds
    tool results to it): to change an earlier message, replace it (``messages[i] =
    {...}``). A save then copies the bytes of the unchanged messages from the file
    (``image``, see store/layout.py) instead of serialising them again.
    """

    data: dict[str, Any]
    path: Path | None = None
    archived: bool = False
    notes: list[str] = field(default_factory=list)  # what load had to fill in or mend
    # the file as last read or written: where each message's bytes are (None: write it whole)
    image: Image | None = field(default=None, repr=False, compare=False)

    # -- the fields every session has -------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.data.get("sessionId", ""))

    @property
    def created(self) -> str:
        return str(self.data.get("created", ""))

    @property
    def updated(self) -> str:
        return str(self.data.get("updated", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.data.setdefault("messages", [])

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return self.data.setdefault("toolCalls", [])

    @property
    def title(self) -> str:
        explicit = self.data.get("title")
        if isinstance(explicit, str) and explicit.strip():
            return fmt.one_line(explicit)
        return title_of(self.messages)

    def touch(self) -> None:
        self.data["updated"] = fmt.now_iso()

    def to_bytes(self) -> bytes:
        return fmt.dumps(self.data)

    @classmethod
    def new(cls, session_id: str, **fields: Any) -> Session:
        now = fmt.now_iso()
        data: dict[str, Any] = {
            "sessionId": session_id,
            "created": now,
            "updated": now,
            "version": fmt.FORMAT_VERSION,
        }
        data.update({k: v for k, v in fields.items() if v is not None})
        data.setdefault("messages", [])
        data.setdefault("toolCalls", [])
        return cls(data)


def title_of(messages: Any) -> str:
    """The first user message, on one line."""
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "user":
                text = fmt.text_of(message.get("content"))
                if text.strip():
                    return fmt.one_line(text)
    return ""


def parse_session(raw: bytes, path: Path) -> Session:
    """Parse a session file's bytes leniently, filling what a hand-made file may lack.

    The tutorial's template route (``"sessionId": "new"``, no timestamps) loads: the id
    comes from the file name and the times from the file. Anything that is not a
    session at all raises SessionFormatError.
    """
    try:
        with gc_paused() if len(raw) >= LARGE else contextlib.nullcontext():
            data = fmt.loads(raw)
    except ValueError as exc:
        problem = "empty file" if not raw.strip() else f"not valid JSON ({_short(exc)})"
        raise SessionFormatError(str(path), problem) from None
    return session_of(data, path)


def session_of(data: Any, path: Path) -> Session:
    """The session a parsed document is; SessionFormatError if it is not one."""
    if not isinstance(data, dict):
        raise SessionFormatError(str(path), "not a JSON object")
    messages = data.get("messages", [])
    if not isinstance(messages, list) or not _all_have_roles(messages):
        raise SessionFormatError(str(path), "`messages` is not a list of {role, content} objects")
    if "toolCalls" in data and not isinstance(data["toolCalls"], list):
        raise SessionFormatError(str(path), "`toolCalls` is not a list")
    session = Session(data, path=path)
    fill_missing(session, path)
    return session


def _all_have_roles(messages: list[Any]) -> bool:
    """Every message an object with a string ``role`` (one pass in C: 78,000 in 10 ms)."""
    try:
        kinds = set(map(type, map(dict.get, messages, repeat("role"))))
    except TypeError:  # a message that is not an object
        return False
    return kinds <= {str}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a large document is parsed.

    Parsing makes no reference cycles, and a collection every few hundred new objects
    would walk the growing document again and again (it doubled the time of a 100 MB
    load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fill_missing(session: Session, path: Path) -> None:
    data = session.data
    parts = fmt.split_file_name(path.name)
    raw_id = data.get("sessionId")
    if not isinstance(raw_id, str) or raw_id in fmt.PLACEHOLDER_IDS:
        file_id = fmt.clean_text(parts[1] if parts else path.stem)
        data["sessionId"] = file_id
        session.notes.append(f"id taken from the file name: {file_id}")
    if fmt.parse_time(data.get("created")) is None:
        if parts:
            stamp = fmt.format_time(datetime.fromisoformat(parts[0]).replace(tzinfo=UTC))
        else:
            stamp = _mtime_iso(path)
        data["created"] = stamp
        session.notes.append("created time taken from the file name")
    if fmt.parse_time(data.get("updated")) is None:
        data["updated"] = _mtime_iso(path) if path.exists() else data["created"]
        session.notes.append("updated time taken from the file")
    data.setdefault("messages", [])
    data.setdefault("toolCalls", [])


def _mtime_iso(path: Path) -> str:
    try:
        return fmt.format_time(datetime.fromtimestamp(os.stat(path).st_mtime, UTC))
    except OSError:
        return fmt.now_iso()


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
