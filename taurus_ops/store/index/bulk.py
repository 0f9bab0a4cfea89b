"""The index file's journal: write-ahead (WAL) as a rule, a rollback journal for a build.

In WAL mode readers go on reading while another process writes, which is what the
index wants once it holds sessions. But a WAL holds every page a transaction writes
until a checkpoint copies it into the file, so a build (tens of megabytes of new
pages) is written twice. A rollback journal keeps only the pages a transaction
changes that were there before it began, and a build into an empty index changes
hardly any: its pages go straight into the file, once (about a tenth off a build of
10,000 sessions). It is as safe: a build cut short (a crash, a kill) leaves the journal
behind, and whoever opens the index next rolls the file back to the empty index it
was, which the next refresh fills.

A connection can change the mode only while no other has the file open: when another
process has it open, the build stays in WAL, and when the mode cannot go back to WAL
after the build, the next process to open the index sets it (``use_wal``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

BULK_FROM = 256  # files a refresh of an empty index reads from which it builds in bulk


def _set_mode(conn: sqlite3.Connection, mode: str) -> str | None:
    """Set the journal mode; the mode the file is in after, None if it could not be asked
    (another process holds a lock: the mode is left as it is)."""
    try:
        row = conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]).lower() if row else None


def use_wal(conn: sqlite3.Connection) -> None:
    """Put the index in WAL mode unless it is already (best effort, see the module)."""
    row = conn.execute("PRAGMA journal_mode").fetchone()
    if row is None or str(row[0]).lower() != "wal":
        _set_mode(conn, "WAL")


def is_empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None


@contextlib.contextmanager
def bulk(conn: sqlite3.Connection, reads: int) -> Iterator[None]:
    """Around a refresh that reads ``reads`` files: a build of an empty index from
    ``BULK_FROM`` files on runs with a rollback journal, and the index is back in WAL
    mode after."""
    if reads < BULK_FROM or not is_empty(conn) or _set_mode(conn, "DELETE") != "delete":
        yield
        return
    try:
        yield
    finally:
        _set_mode(conn, "WAL")
