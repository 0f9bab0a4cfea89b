"""The index file's tables, its version, and how paths and damage are recognised.

Only the ``store.index`` modules know these tables; everything else reads the index
through ``Index`` methods.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import urllib.parse
from pathlib import Path

from taurus_ops.errors import TaurusError
from taurus_ops.store import format as fmt

SCHEMA_VERSION = "12"  # 5: NUL in message text as U+FFFD; 6: titles without control characters;
# 7: the session's cwd and parentSession; 8: parent, forked_at and cwd as columns (the
# session family), a fork's copied usage not counted again; 9: FTS rows of each session's
# distinct words, the text itself zlib-compressed beside it, what list and cleanup show
# as columns, per-folder totals for stats (sessions per quarter hour too); 10: the text
# zstd-compressed, a session's words in one trigram row; 11: a word table (the ascii
# tokenizer) over each session's text and its vocabulary, in place of the trigram rows;
# 12: the word table keeps positions, so a term of several words is looked up as a phrase,
# and the text is compressed with a dictionary trained on the sessions (meta 'dictionary')
INDEX_NAME = "index.sqlite"
SIDECARS = ("-wal", "-shm", "-journal")
USAGE_KEYS = ("inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens")
USAGE_KINDS = ("input", "output", "cache_read", "cache_creation")  # totals.kind per USAGE_KEYS

# SQLite result codes that mean "this file is not a usable index"
_DAMAGED_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

TABLES = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sessions(
    key INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,
    archived INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    id TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    title TEXT NOT NULL,
    messages INTEGER NOT NULL,
    tool_calls INTEGER NOT NULL,
    tools TEXT NOT NULL,
    error TEXT,
    parent TEXT,
    forked_at INTEGER,
    cwd TEXT,
    shown_created TEXT NOT NULL,
    shown_updated TEXT NOT NULL,
    list_us INTEGER NOT NULL,
    plan_us INTEGER,
    bad_messages INTEGER NOT NULL
);
CREATE INDEX sessions_folder ON sessions(folder, mtime_ns);
CREATE INDEX sessions_order ON sessions(folder, list_us, path);
CREATE INDEX sessions_parent ON sessions(parent) WHERE parent IS NOT NULL;
CREATE TABLE counts(key INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL);
CREATE INDEX counts_key ON counts(key);
CREATE TABLE usage(
    key INTEGER NOT NULL, model TEXT NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL,
    cache_read INTEGER NOT NULL, cache_creation INTEGER NOT NULL
);
CREATE INDEX usage_key ON usage(key);
CREATE TABLE totals(
    folder TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(folder, kind, name)
) WITHOUT ROWID;
CREATE TABLE texts(key INTEGER PRIMARY KEY, head BLOB NOT NULL, body BLOB NOT NULL);
CREATE VIRTUAL TABLE words USING fts5(
    text, content = '', tokenize = 'ascii', detail = full, columnsize = 0
);
CREATE TABLE vocab(n INTEGER PRIMARY KEY, words BLOB NOT NULL);
"""


class IndexBusy(TaurusError):
    """Another process holds the index for writing for too long."""


class IndexFailure(TaurusError):
    """The index could not be used (a full disk, an I/O error); the files are untouched."""


def create_tables(conn: sqlite3.Connection) -> None:
    """The tables of an empty index, and its version."""
    for statement in TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))


# -- paths ----------------------------------------------------------------------------------
_INT64 = 1 << 63
_RAW_MARK = "\x00"  # no real path holds a NUL, so a stored path starting with one is encoded


def stored_path(path: str) -> str:
    """A path as the index keeps it: itself, or, when its name is not valid UTF-8 (bytes
    carried by surrogateescape, which SQLite text cannot hold), NUL + its bytes in base64."""
    raw = fmt.name_bytes(path)
    if raw is None:
        return path
    return _RAW_MARK + base64.b64encode(raw).decode("ascii")


def disk_path(stored: str) -> str:
    """The path ``stored_path`` kept, exactly as the OS gives it."""
    if not stored.startswith(_RAW_MARK):
        return stored
    return base64.b64decode(stored[1:]).decode("utf-8", "surrogateescape")


def folder_key(folder: Path | str) -> str:
    return stored_path(os.path.abspath(folder))


def stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(size, mtime_ns, inode) as SQLite can store them: a file time past 2262 (ns beyond
    64 bits) is held at the largest, an inode past 2**63 wraps to a negative number."""
    inode = st.st_ino - (1 << 64) if st.st_ino >= _INT64 else st.st_ino
    return st.st_size, min(max(st.st_mtime_ns, -_INT64), _INT64 - 1), inode


def uri(path: Path, **params: object) -> str:
    """An SQLite URI for ``path`` (any bytes in its name quoted) with ``params``."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{urllib.parse.quote(os.fsencode(path))}?{query}"


# -- what an error means ----------------------------------------------------------------------
def is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _DAMAGED_CODES:
        return True
    text = str(exc).lower()
    return any(
        mark in text
        for mark in ("malformed", "not a database", "no such table", "no such column", "corrupt")
    )


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and (code & 0xFF) in (5, 6)) or "locked" in str(exc).lower()


class Damaged(sqlite3.DatabaseError):
    """The index holds something its own code cannot have written (read as damage)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"database disk image is malformed: {what}")
