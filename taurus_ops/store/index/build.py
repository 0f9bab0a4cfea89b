"""Bringing the index up to date with the session files.

A folder is looked at in one of two ways:

- the quick look: its own stamp (device, inode, mtime and ctime of the directory) is
  the one recorded at the last full look, which was less than ``TRUST_SECONDS`` ago
  and not racy. Creating, removing or renaming a file changes a directory's stamp,
  and every Taurus save is a rename, so nothing but a file's bytes changed in place
  by another program can have happened since; those are seen within
  ``TRUST_SECONDS`` (as the web viewer promises too).
- the full look: every session file's (size, mtime_ns, inode), compared with the rows
  (through a digest of them first, so an unchanged folder costs one stat pass). What
  changed is read again, what is new is added, what is gone is dropped.

Files are read by ``facts.read_facts``, in worker processes when there are many.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from taurus_ops.store.index import rows
from taurus_ops.store.index.schema import USAGE_KINDS, disk_path, folder_key, stamp
from taurus_ops.store.index.text import words_from_body
from taurus_ops.store.parallel import Workers
from taurus_ops.store.refs import is_session_file

TRUST_SECONDS = 10.0  # a folder's own stamp stands for its files this long after a full look
RACY_SECONDS = 2.0  # a directory changed this close to a look may change again unseen

Stamps = dict[str, tuple[int, int, int]]  # path -> (size, mtime_ns, inode)


@dataclass
class RefreshReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    rebuilt: bool = False
    damaged: str | None = None  # why the old index was thrown away
    skipped: bool = False  # more to read than the caller allowed: nothing done
    looked: int = 0  # folders given a full look (a stat of every file)

    @property
    def touched(self) -> int:
        return self.added + self.changed + self.removed


@dataclass
class FolderWork:
    """One folder's full look: what is on disk and what must be read or dropped."""

    folder: Path
    archived: bool
    key: str
    directory: list[int] | None  # the folder's stamp, taken before its files were
    looked_ns: int
    found: Stamps
    to_read: list[str] = field(default_factory=list)
    to_drop: list[tuple[int, str]] = field(default_factory=list)


# -- looking at a folder ------------------------------------------------------------------------
def directory_stamp(folder: Path) -> list[int] | None:
    try:
        st = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def scan(folder: Path) -> Stamps:
    """path -> (size, mtime_ns, inode) of the session files directly in ``folder``."""
    out: Stamps = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if not is_session_file(entry):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out[entry.path] = stamp(st)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out


def digest(found: Stamps) -> str:
    return hashlib.blake2b(marshal.dumps(found), digest_size=16).hexdigest()


def folder_state(conn: sqlite3.Connection, key: str) -> dict | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"folder:{key}",)).fetchone()
    if not row:
        return None
    try:
        state = json.loads(row[0])
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _save_state(conn: sqlite3.Connection, work: FolderWork, found_digest: str) -> None:
    value = json.dumps({"dir": work.directory, "looked": work.looked_ns, "digest": found_digest})
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"folder:{work.key}", value)
    )


def trusted(state: dict | None, folder: Path, now_ns: int) -> bool:
    """True when the quick look says nothing can have changed (see the module docstring)."""
    if not state or state.get("dir") is None:
        return False
    looked = state.get("looked")
    if not isinstance(looked, int) or not 0 <= now_ns - looked < TRUST_SECONDS * 1e9:
        return False
    recorded = state["dir"]
    if recorded[2] >= looked - RACY_SECONDS * 1e9:
        return False  # changed just before the look: a change after it may carry the same time
    return directory_stamp(folder) == recorded


def look(conn: sqlite3.Connection, folder: Path, archived: bool) -> FolderWork | None:
    """The full look at one folder: None when the rows agree with the files."""
    key = folder_key(folder)
    work = FolderWork(folder, archived, key, directory_stamp(folder), time.time_ns(), {})
    work.found = scan(folder)
    found_digest = digest(work.found)
    state = folder_state(conn, key)
    prior = state.get("digest") if state else None
    if prior != found_digest:
        work.to_read, work.to_drop = diff(conn, key, work.found)
        if work.to_read or work.to_drop:
            return work
    _note_look(conn, work, found_digest, prior)
    return None


def _note_look(
    conn: sqlite3.Connection, work: FolderWork, found_digest: str, prior: str | None
) -> None:
    """Record a look that found the rows current, unless another process changed them
    since (best effort: a busy or read-only index is left as it is)."""
    conn.execute("PRAGMA busy_timeout = 50")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return
    finally:
        conn.execute("PRAGMA busy_timeout = 60000")
    try:
        state = folder_state(conn, work.key)
        if (state.get("digest") if state else None) == prior:
            _save_state(conn, work, found_digest)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def diff(
    conn: sqlite3.Connection, key: str, found: Stamps
) -> tuple[list[str], list[tuple[int, str]]]:
    """(paths to read, (key, path) rows to drop) for one folder."""
    known: dict[str, tuple[int, tuple[int, int, int]]] = {}
    for row_key, path, size, mtime_ns, inode in conn.execute(
        "SELECT key, path, size, mtime_ns, inode FROM sessions WHERE folder = ?", (key,)
    ):
        known[disk_path(path)] = (row_key, (size, mtime_ns, inode))
    to_read = []
    to_drop = []
    for path, sig in found.items():
        row = known.get(path)
        if row is None:
            to_read.append(path)
        elif row[1] != sig:
            to_read.append(path)
            to_drop.append((row[0], path))
    for path, row in known.items():
        if path not in found:
            to_drop.append((row[0], path))
    return to_read, to_drop


# -- reading and writing -------------------------------------------------------------------
class Readers(Workers):
    """Reads files for the index (in worker processes when there are many)."""

    def batches(
        self, files: list[tuple[int, str]], folder: str, archived: bool
    ) -> Iterator[rows.Batch]:
        """The rows of the files ``(key, path)``, a batch at a time, in no particular order."""
        jobs = [
            (files[i : i + rows.BATCH], folder, archived) for i in range(0, len(files), rows.BATCH)
        ]
        return self.map(rows.read_batch, jobs)


def apply(
    conn: sqlite3.Connection,
    work: FolderWork,
    report: RefreshReport,
    readers: Readers,
    tell: Callable[[int], None] | None = None,
) -> None:
    """Drop and read what one folder's look found, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # another process may have refreshed meanwhile: look again under the write lock
        work.to_read, work.to_drop = diff(conn, work.key, work.found)
        dropped = {p for _, p in work.to_drop}
        for key, _ in work.to_drop:
            drop(conn, key, work.key)
        first = conn.execute("SELECT coalesce(max(key), 0) + 1 FROM sessions").fetchone()[0]
        files = list(enumerate(work.to_read, start=first))
        final = dict(work.found)
        for batch in readers.batches(files, work.key, work.archived):
            rows.write(conn, work.key, batch)
            final.update(batch.stamps)
            for path in batch.gone:
                del final[path]
            report.changed += sum(1 for p in batch.stamps if p in dropped)
            report.added += sum(1 for p in batch.stamps if p not in dropped)
            if tell is not None:
                tell(len(batch.stamps) + len(batch.gone))
        report.removed += len(dropped - set(work.to_read))
        _save_state(conn, work, digest(final))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def drop(conn: sqlite3.Connection, key: int, folder: str) -> None:
    """Remove one session's rows, its share of the folder's totals and its trigram row."""
    taken: Counter[tuple[str, str]] = Counter()
    for kind, name, n in conn.execute("SELECT kind, name, n FROM counts WHERE key = ?", (key,)):
        taken[kind, name] -= n
    for model, *counts in conn.execute(
        "SELECT model, input, output, cache_read, cache_creation FROM usage WHERE key = ?", (key,)
    ):
        for kind, n in zip(USAGE_KINDS, counts, strict=True):
            taken[kind, model] -= n
    rows.add_totals(conn, folder, taken)
    row = conn.execute("SELECT body FROM texts WHERE key = ?", (key,)).fetchone()
    if row is not None:
        conn.execute(
            "INSERT INTO grams(grams, rowid, words) VALUES ('delete', ?, ?)",
            (key, words_from_body(row[0])),
        )
    for table in ("texts", "counts", "usage"):
        conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
    conn.execute("DELETE FROM sessions WHERE key = ?", (key,))
