"""What cleanup plans with, per session file: its stat, its ``updated`` time, whether it
is a session at all, and whether a chat holds it. One stat pass over the folder, the
index's row for every file whose (size, mtime, inode) it has, and a lenient reading of
the rest; with a current index nothing is parsed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.store import format as fmt
from taurus_ops.store.lock import LOCK_SUFFIX, is_lock_name, is_locked
from taurus_ops.store.parallel import Workers
from taurus_ops.store.reading import MESSAGES_NOT_A_LIST, mtime_moment, read_file
from taurus_ops.store.refs import is_session_file

if TYPE_CHECKING:
    from taurus_ops.store.index import PlanRow
    from taurus_ops.store.store import SessionStore

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "its modification time is out of range"


@dataclass(frozen=True)
class FileState:
    """One session file as cleanup's planner sees it."""

    path: str
    st: os.stat_result
    updated: datetime | None  # its ``updated``, its mtime where that is missing; None: no session
    error: str | None  # why it is not a session
    locked: bool  # open in a running chat


def _state(
    path: str, st: os.stat_result, updated_us: int | None, problem: str | None, locked: bool
) -> FileState:
    if problem is not None:
        return FileState(path, st, None, problem, locked)
    if updated_us is not None:
        return FileState(path, st, EPOCH + timedelta(microseconds=updated_us), None, locked)
    moment = mtime_moment(st)
    return FileState(path, st, moment, None if moment else OUT_OF_RANGE, locked)


def _read(path: str, st: os.stat_result, locked: bool) -> FileState:
    """A file's state from reading it (FileNotFoundError when it is gone)."""
    reading = read_file(path)
    problem = reading.problem
    if problem is not None:
        return FileState(path, st, None, problem, locked)
    assert reading.data is not None
    updated = fmt.parse_time(reading.data.get("updated"))
    if updated is not None:
        return FileState(path, st, updated, None, locked)
    return _state(path, st, None, None, locked)


def file_state(path: Path, st: os.stat_result | None = None) -> FileState:
    """The state of one file, read from it (FileNotFoundError when it is gone)."""
    st = st or os.stat(path)
    return _read(os.fspath(path), st, is_locked(path))


def _read_job(job: tuple[str, os.stat_result, bool]) -> FileState | None:
    try:
        return _read(job[0], job[1], job[2])
    except FileNotFoundError:
        return None


def _scan(folder: Path) -> tuple[list[tuple[os.DirEntry[str], os.stat_result]], set[str]]:
    """(session files with their stat, names of the lock sidecars) directly in ``folder``."""
    files = []
    locks = set()
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if is_lock_name(entry.name):
                    locks.add(entry.name)
                elif is_session_file(entry):
                    try:
                        files.append((entry, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue
    except (FileNotFoundError, NotADirectoryError):
        pass
    return files, locks


def _indexed(store: SessionStore, archived: bool) -> dict[str, PlanRow]:
    """The index's rows for the folder, refreshed first (never built: an absent, old or
    damaged index gives nothing, and the files are read)."""
    home = store.index_home
    if home is None or not (home / "index.sqlite").exists():
        return {}
    try:
        from taurus_ops.store.index import Index

        with Index.for_dirs(home, store.session_dir, store.archive_dir) as index:
            if not index.is_current():
                return {}
            index.refresh(max_reads=200)
            return index.plan_rows(archived)
    except Exception:  # a cache: whatever went wrong, the files still answer
        return {}


def folder_states(store: SessionStore, archived: bool = False) -> list[FileState]:
    """Every session file of the session (or archive) directory, in scan order."""
    from taurus_ops.store.index.schema import stamp

    folder = store.archive_dir if archived else store.session_dir
    if folder is None:
        return []
    files, locks = _scan(folder)
    rows = _indexed(store, archived) if files else {}
    found: dict[str, FileState] = {}
    to_read = []
    for entry, st in files:
        path = entry.path
        locked = f".{entry.name}{LOCK_SUFFIX}" in locks and is_locked(Path(path))
        row = rows.get(path)
        if row is not None and row.stamp == stamp(st):
            problem = row.error or (MESSAGES_NOT_A_LIST if row.bad_messages else None)
            found[path] = _state(path, st, row.updated_us, problem, locked)
        else:
            to_read.append((path, st, locked))
    with Workers(len(to_read)) as workers:
        for state in workers.map(_read_job, to_read):
            if state is not None:
                found[state.path] = state
    return [found[e.path] for e, _ in files if e.path in found]
