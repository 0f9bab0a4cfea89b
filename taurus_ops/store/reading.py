"""Reading a session file leniently: its document, or one line saying why it has none.

The strict reader (``store.session.parse_session``) refuses anything that is not a
session; the readers that only look (``list``, the index, cleanup's planner, the
doctor's scan) must not stop at a damaged file, so they all read through here and
get a ``Reading``: the JSON object, or an error description for the file.

Every parse goes through ``parse`` (``fmt.loads``: integers of any size kept exact,
lone surrogates as U+FFFD), so there is one place that decides what a readable file
is and one place to count parses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt

EMPTY = "empty file"
NOT_AN_OBJECT = "not a JSON object"
MESSAGES_NOT_A_LIST = "`messages` is not a list"


@dataclass(frozen=True)
class Reading:
    """One file as read: ``data`` when it holds a JSON object, else ``error`` says why not."""

    data: dict[str, Any] | None
    error: str | None

    @property
    def problem(self) -> str | None:
        """Why this is not a session at all: ``error``, or a ``messages`` that is not a list."""
        if self.error is not None:
            return self.error
        assert self.data is not None
        if not isinstance(self.data.get("messages", []), list):
            return MESSAGES_NOT_A_LIST
        return None


def parse(raw: bytes) -> tuple[bool, Any]:
    """Any JSON value in ``raw``: ``(True, value)``, or ``(False, None)`` when it does not parse."""
    try:
        return True, fmt.loads(raw)
    except (ValueError, RecursionError):
        return False, None


def read_bytes(raw: bytes) -> Reading:
    """The document in a session file's bytes, or why there is none."""
    if not raw.strip():
        return Reading(None, EMPTY)
    try:
        data = fmt.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return Reading(None, f"not valid JSON: {detail}")
    if not isinstance(data, dict):
        return Reading(None, NOT_AN_OBJECT)
    return Reading(data, None)


def read_file(path: Path | str) -> Reading:
    """``read_bytes`` of the file at ``path``; a file that cannot be read says so.

    FileNotFoundError is raised: a file removed meanwhile is not a damaged one."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        return Reading(None, f"unreadable: {exc.strerror or exc}")
    return read_bytes(raw)


def mtime_iso(st: os.stat_result) -> str:
    """The file's modification time as Taurus writes times; "" for one past the year 9999."""
    try:
        return fmt.format_time(datetime.fromtimestamp(st.st_mtime, UTC))
    except (ValueError, OverflowError, OSError):
        return ""


def mtime_moment(st: os.stat_result) -> datetime | None:
    """The file's modification time as a moment (None when no datetime can hold it)."""
    try:
        return datetime.fromtimestamp(st.st_mtime, UTC)
    except (ValueError, OverflowError, OSError):
        return None
