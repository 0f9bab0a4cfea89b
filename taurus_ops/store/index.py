"""The session index: an SQLite (FTS5) cache of every session's metadata and message text.

The files are the truth; the index is a cache under the Taurus home
(``~/.taurus/index.sqlite``, 0600) that ``search``, ``stats`` and ``list`` read. Each use
refreshes it incrementally: a file whose (path, size, mtime, inode) changed is read
again, a new file is added, a removed one dropped. A missing index is built; a
damaged one (not a database, corrupt pages, an old schema) is deleted and rebuilt,
so no command ever fails because of it. One index serves every session directory
Taurus is pointed at: rows are keyed by absolute path and queries keep to the
directories of the current configuration.

Public API (used by search, stats, list and the doctor)::

    index = Index(config)        # or Index.for_dirs(home, session_dir, archive_dir)
    index.refresh()              # bring it up to date with the files; returns a RefreshReport
    index.check() -> list[str]   # problems: [] when consistent (or when there is no index)
    index.rebuild()              # delete and build again from the files
    index.status() -> dict       # path, size, sessions, messages, stale entries

Message text (what ``search`` looks in) is, per message: a string ``content``; the
``text`` of text blocks; the ``thinking`` of thinking blocks; a tool_use's name and
its input as JSON; a tool_result's content. Blocks are joined by newlines.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from taurus_ops.errors import TaurusError
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import create_file, ensure_dir, is_foreign, remove_foreign
from taurus_ops.store.refs import id_from_file_name, is_session_file
from taurus_ops.store.session import title_of
from taurus_ops.store.summary import SessionSummary, summarize
from taurus_ops.words import plural

SCHEMA_VERSION = "8"  # 5: NUL in message text as U+FFFD; 6: titles without control characters;
# 7: the session's cwd and parentSession; 8: parent, forked_at and cwd as columns (the
# session family), a fork's copied usage not counted again
INDEX_NAME = "index.sqlite"
MSG_BITS = 20  # a message's FTS rowid is (session key << MSG_BITS) | message index
MAX_MESSAGES = (1 << MSG_BITS) - 1
MODIFYING_TOOLS = ("edit", "write")
USAGE_KEYS = ("inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens")
MAX_TOKENS = 1 << 40  # per message: far past any real count, and sums still fit in 64 bits

# SQLite result codes that mean "this file is not a usable index"
_DAMAGED_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

SCHEMA = """
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
    facts TEXT NOT NULL,
    summary TEXT NOT NULL,
    error TEXT,
    parent TEXT,
    forked_at INTEGER,
    cwd TEXT
);
CREATE INDEX sessions_folder ON sessions(folder);
CREATE TABLE counts(
    key INTEGER NOT NULL, folder TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    n INTEGER NOT NULL
);
CREATE INDEX counts_key ON counts(key);
CREATE INDEX counts_group ON counts(folder, kind, name, n);
CREATE TABLE usage(
    key INTEGER NOT NULL, model TEXT NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL,
    cache_read INTEGER NOT NULL, cache_creation INTEGER NOT NULL
);
CREATE INDEX usage_key ON usage(key);
CREATE VIRTUAL TABLE msgtext USING fts5(
    body, role UNINDEXED, tokenize = 'trigram case_sensitive 0', detail = none
);
"""


class IndexBusy(TaurusError):
    """Another process holds the index for writing for too long."""


class IndexFailure(TaurusError):
    """The index could not be used (a full disk, an I/O error); the files are untouched."""


# -- what the index keeps of one session --------------------------------------------------
@dataclass
class SessionFacts:
    """Everything the index stores about one session file."""

    id: str
    created: str = ""
    updated: str = ""
    title: str = ""
    messages: int = 0
    tool_calls: int = 0
    tools: dict[str, int] = field(default_factory=dict)  # toolCalls[].tool -> count
    used_tools: set[str] = field(default_factory=set)  # toolCalls and tool_use names
    modified: dict[str, int] = field(default_factory=dict)  # edit/write .file -> count
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> token counts
    texts: list[tuple[int, str, str]] = field(default_factory=list)  # (index, role, text)
    error: str | None = None


def block_text(block: Any) -> str:
    """The searchable text of one content block."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "thinking":
        text = block.get("thinking")
        return text if isinstance(text, str) else ""
    if kind == "tool_use":
        name = block.get("name")
        args = json.dumps(block.get("input", {}), ensure_ascii=False)
        return f"{name if isinstance(name, str) else ''}\n{args}"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return "\n".join(block_text(b) for b in content)
        return content if isinstance(content, str) else ""
    return ""


def message_text(message: dict[str, Any]) -> str:
    """The searchable text of a message (see the module docstring)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (block_text(b) for b in content) if t)
    return ""


def _norm_time(value: Any) -> str:
    moment = fmt.parse_time(value)
    return fmt.format_time(moment) if moment else ""


def _add_usage(target: dict[str, dict[str, int]], model: str, usage: dict[str, Any]) -> None:
    totals = target.setdefault(model, dict.fromkeys(USAGE_KEYS, 0))
    for key in USAGE_KEYS:
        value = usage.get(key)
        # a count past MAX_TOKENS is not a real one (and would overflow SQLite's integers)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS:
            totals[key] += value


def usage_by_model(data: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Token use by model: per-message ``usage`` summed; the session's totals if none.

    The first ``forkedAt`` messages of a fork are copies of its parent's, whose tokens
    the parent already counts."""
    out: dict[str, dict[str, int]] = {}
    messages = data.get("messages")
    default_model = data.get("model") if isinstance(data.get("model"), str) else "unknown"
    copied = data.get("forkedAt") if isinstance(data.get("parentSession"), str) else None
    skip = copied if isinstance(copied, int) and not isinstance(copied, bool) and copied > 0 else 0
    if isinstance(messages, list):
        for message in messages[skip:]:
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                model = usage.get("model")
                _add_usage(out, model if isinstance(model, str) and model else default_model, usage)
    if not out:
        usage = data.get("usage")
        if isinstance(usage, dict):
            model = usage.get("model")
            _add_usage(out, model if isinstance(model, str) and model else default_model, usage)
    return {m: t for m, t in out.items() if any(t.values())}


def extract(data: Any, file_id: str, mtime_iso: str) -> SessionFacts:
    """What the index keeps of a parsed session document."""
    if not isinstance(data, dict):
        return SessionFacts(file_id, updated=mtime_iso, error="not a JSON object")
    messages = data.get("messages")
    messages = messages if isinstance(messages, list) else []
    calls = data.get("toolCalls")
    calls = calls if isinstance(calls, list) else []
    facts = SessionFacts(
        id=file_id,
        created=_norm_time(data.get("created")),
        updated=_norm_time(data.get("updated")) or mtime_iso,
        messages=len(messages),
        tool_calls=len(calls),
    )
    title = data.get("title")
    facts.title = (
        fmt.one_line(title) if isinstance(title, str) and title.strip() else title_of(messages)
    )
    for call in calls:
        if not isinstance(call, dict):
            continue
        tool = call.get("tool")
        if isinstance(tool, str):
            facts.tools[tool] = facts.tools.get(tool, 0) + 1
            facts.used_tools.add(tool)
            target = call.get("file")
            if tool in MODIFYING_TOOLS and isinstance(target, str):
                facts.modified[target] = facts.modified.get(target, 0) + 1
    for number, message in enumerate(messages[: MAX_MESSAGES + 1]):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    name = block.get("name")
                    if isinstance(name, str):
                        facts.used_tools.add(name)
        # SQLite's LIKE and GLOB stop at a NUL: whatever followed it could not be found
        text = message_text(message).replace("\x00", "\ufffd")
        if text:
            facts.texts.append((number, role if isinstance(role, str) else "", text))
    facts.usage = usage_by_model(data)
    return facts


def read_facts(path: Path, st: os.stat_result) -> SessionFacts:
    """Read and extract one session file; a damaged file gives facts with ``error`` set."""
    try:
        mtime_iso = fmt.format_time(datetime.fromtimestamp(st.st_mtime, UTC))
    except (ValueError, OverflowError, OSError):  # a file time past the year 9999
        mtime_iso = ""
    file_id = id_from_file_name(path.name)
    try:
        raw = path.read_bytes()
        data = fmt.loads(raw)
    except OSError as exc:
        return SessionFacts(file_id, updated=mtime_iso, error=f"unreadable: {exc.strerror}")
    except ValueError as exc:
        problem = "empty file" if st.st_size == 0 else f"not valid JSON: {str(exc)[:80]}"
        return SessionFacts(file_id, updated=mtime_iso, error=problem)
    return extract(data, file_id, mtime_iso)


@dataclass
class IndexedSession:
    """One row of the index, as the readers see it."""

    key: int
    path: str
    archived: bool
    size: int
    mtime_ns: int
    id: str
    created: str
    updated: str
    title: str
    messages: int
    tool_calls: int
    facts: dict[str, Any]
    error: str | None


@dataclass
class ListedSession:
    """One session as a listing shows it: its index columns and its token counts by model."""

    key: int
    path: str
    archived: bool
    size: int
    mtime_ns: int
    id: str
    created: str
    updated: str
    title: str
    messages: int
    tool_calls: int
    tools: frozenset[str]  # toolCalls and tool_use names
    error: str | None
    cwd: str
    parent: str
    usage: dict[str, dict[str, int]]  # model -> token counts


class IndexProblem(str):
    """One problem ``Index.check()`` found; ``stale`` when the index is merely behind the files."""

    stale: bool

    def __new__(cls, text: str, stale: bool = False) -> IndexProblem:
        problem = super().__new__(cls, text)
        problem.stale = stale
        return problem


@dataclass
class RefreshReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    rebuilt: bool = False
    damaged: str | None = None  # why the old index was thrown away
    skipped: bool = False  # more to read than the caller allowed: nothing done

    @property
    def touched(self) -> int:
        return self.added + self.changed + self.removed


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


def _folder_key(folder: Path | str) -> str:
    return stored_path(os.path.abspath(folder))


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(size, mtime_ns, inode) as SQLite can store them: a file time past 2262 (ns beyond
    64 bits) is held at the largest, an inode past 2**63 wraps to a negative number."""
    inode = st.st_ino - (1 << 64) if st.st_ino >= _INT64 else st.st_ino
    return st.st_size, min(max(st.st_mtime_ns, -_INT64), _INT64 - 1), inode


def _scan(folder: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (size, mtime_ns, inode) of the session files directly in ``folder``."""
    out: dict[str, tuple[int, int, int]] = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if not is_session_file(entry):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out[entry.path] = _stamp(st)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out


SIDECARS = ("-wal", "-shm", "-journal")


def _uri(path: Path, **params: object) -> str:
    """An SQLite URI for ``path`` (any bytes in its name quoted) with ``params``."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{urllib.parse.quote(os.fsencode(path))}?{query}"


def _is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _DAMAGED_CODES:
        return True
    text = str(exc).lower()
    return any(
        mark in text
        for mark in ("malformed", "not a database", "no such table", "no such column", "corrupt")
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and (code & 0xFF) in (5, 6)) or "locked" in str(exc).lower()


class Index:
    """The session index of one Taurus home, covering the configured session directories."""

    def __init__(self, config: Any) -> None:
        self.home = Path(config.home)
        self.session_dir = Path(config.session_dir)
        archive = getattr(config, "archive_dir", None)
        self.archive_dir = Path(archive) if archive is not None else None
        self.path = self.home / INDEX_NAME
        self._conn: sqlite3.Connection | None = None
        self.in_memory = False

    @classmethod
    def for_dirs(cls, home: Path, session_dir: Path, archive_dir: Path | None = None) -> Index:
        return cls(SimpleNamespace(home=home, session_dir=session_dir, archive_dir=archive_dir))

    # -- the folders this index instance covers ---------------------------------------------
    def folders(self, archived: bool = True) -> list[tuple[Path, bool]]:
        out = [(self.session_dir, False)]
        if archived and self.archive_dir is not None:
            out.append((self.archive_dir, True))
        return out

    def folder_keys(self, archived: bool = True, active: bool = True) -> list[str]:
        return [_folder_key(f) for f, is_arch in self.folders(archived) if active or is_arch]

    # -- connection ----------------------------------------------------------------------
    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> sqlite3.Connection:
        """Open (creating if needed) the index file; raises sqlite3 errors when damaged."""
        if is_foreign(self.path):
            # not an index Taurus made (a link, a FIFO, a device): opening or chmod-ing it
            # would act on whatever it points to; the index is a cache, so start afresh
            self._remove_files()
        for suffix in SIDECARS:  # SQLite writes its journal and WAL files through links
            remove_foreign(f"{self.path}{suffix}")
        if not os.path.lexists(self.path):
            ensure_dir(self.home)
            with contextlib.suppress(FileExistsError):  # made by another process meanwhile
                os.close(create_file(self.path))
        os.chmod(self.path, 0o600)
        conn = sqlite3.connect(
            _uri(self.path, nofollow=1), uri=True, timeout=60, isolation_level=None
        )
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 60000")  # a writer waits out a cold build
        version = None
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            version = row[0] if row else None
        if not tables:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"no such table: index schema {version!r} is not current")
        conn.execute("PRAGMA synchronous = NORMAL")

    def _remove_files(self) -> None:
        for suffix in ("", *SIDECARS):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    def _any_foreign(self) -> bool:
        return any(is_foreign(f"{self.path}{suffix}") for suffix in ("", *SIDECARS))

    def connect(self) -> sqlite3.Connection:
        """The open connection; a damaged index file is replaced by a fresh one."""
        if self._conn is not None:
            return self._conn
        try:
            self._conn = self._open()
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise IndexBusy(f"the index {self.path} is busy; try again") from None
            if not _is_damage(exc):  # a full disk, an I/O error: the file is not to blame
                self._conn = self._memory(exc)
                return self._conn
            self.damaged = str(exc)
            self._remove_files()
            try:
                self._conn = self._open()
            except (sqlite3.Error, OSError) as again:
                self._conn = self._memory(again)
        except OSError as exc:
            self._conn = self._memory(exc)  # an unwritable home: work from memory
        return self._conn

    def _memory(self, why: BaseException) -> sqlite3.Connection:
        """An index in memory: readers still get answers when the file cannot be written."""
        self.in_memory = True
        self.unwritable = getattr(why, "strerror", None) or str(why) or type(why).__name__
        conn = sqlite3.connect(":memory:", isolation_level=None)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        return conn

    damaged: str | None = None
    unwritable: str | None = None  # why the index lives in memory (the file cannot be written)
    generation = 0  # bumped whenever the index is thrown away (keys change)

    def _guarded(self, action: Any) -> Any:
        """Run ``action(conn)``; on damage, rebuild the index once and run it again."""
        try:
            try:
                return action(self.connect())
            except sqlite3.Error as exc:
                if _is_busy(exc) or not _is_damage(exc):
                    raise
                self.damaged = str(exc)
                self.close()
                self._remove_files()
                self.generation += 1
                conn = self.connect()
                for folder, archived in self.folders():  # fill the new index before reading it
                    self._refresh_folder(conn, folder, archived, RefreshReport())
                return action(conn)
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise IndexBusy(f"the index {self.path} is busy; try again") from None
            raise IndexFailure(
                f"the index {self.path} cannot be used ({exc}); it is only a cache:"
                " free some space or delete it, and try again"
            ) from None

    # -- refreshing ----------------------------------------------------------------------
    def _diff(
        self, conn: sqlite3.Connection, folder: str, on_disk: dict[str, tuple[int, int, int]]
    ) -> tuple[list[str], list[tuple[int, str]]]:
        """(paths to read, (key, path) rows to drop) for one folder."""
        known: dict[str, tuple[int, int, int, int]] = {}
        for key, path, size, mtime_ns, inode in conn.execute(
            "SELECT key, path, size, mtime_ns, inode FROM sessions WHERE folder = ?", (folder,)
        ):
            known[disk_path(path)] = (key, size, mtime_ns, inode)
        to_read = []
        to_drop = []
        for path, sig in on_disk.items():
            row = known.get(path)
            if row is None:
                to_read.append(path)
            elif row[1:] != sig:
                to_read.append(path)
                to_drop.append((row[0], path))
        for path, row in known.items():
            if path not in on_disk:
                to_drop.append((row[0], path))
        return to_read, to_drop

    def is_current(self) -> bool:
        """True if the index file exists and opens with the current schema (never rebuilds)."""
        if not self.path.exists() or self._any_foreign():
            return False
        try:
            conn = sqlite3.connect(_uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return False
        return bool(row) and row[0] == SCHEMA_VERSION

    announce: Callable[[int], None] | None = None  # told how many files a long refresh reads
    progress: Callable[[int, int], None] | None = None  # (files read, of how many) as it goes
    ANNOUNCE_FROM = 500

    def refresh(self, max_reads: int | None = None) -> RefreshReport:
        """Bring the index up to date with the session files (both directories).

        With ``max_reads``, nothing is done (``report.skipped``) when more files than
        that would have to be read: a caller that can read the files itself does so.
        """
        report = RefreshReport()
        report.rebuilt = not self.path.exists()

        def run(conn: sqlite3.Connection) -> RefreshReport:
            work = []
            for folder, archived in self.folders():
                found = _scan(folder)
                to_read, to_drop = self._diff(conn, _folder_key(folder), found)
                if to_read or to_drop:
                    work.append((folder, archived, found, len(to_read)))
            if max_reads is not None and sum(w[3] for w in work) > max_reads:
                report.skipped = True
                return report
            reads = sum(w[3] for w in work)
            long = reads >= self.ANNOUNCE_FROM
            if self.announce is not None and long:
                self.announce(reads)
            tell = self._progress_counter(reads) if long and self.progress is not None else None
            for folder, archived, found, _ in work:
                self._refresh_folder(conn, folder, archived, report, found, tell)
            return report

        self._guarded(run)
        if report.touched >= 200 and not self.in_memory:
            with contextlib.suppress(sqlite3.Error):
                self.connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self.damaged:
            report.rebuilt, report.damaged = True, self.damaged
        return report

    def _progress_counter(self, total: int) -> Callable[[], None]:
        """A function to call after each file read; it tells ``progress`` every 100 files."""
        done = 0
        progress = self.progress
        assert progress is not None

        def tell() -> None:
            nonlocal done
            done += 1
            if done % 100 == 0 or done == total:
                progress(done, total)

        progress(0, total)
        return tell

    def _refresh_folder(
        self,
        conn: sqlite3.Connection,
        folder: Path,
        archived: bool,
        report: RefreshReport,
        on_disk: dict[str, tuple[int, int, int]] | None = None,
        tell: Callable[[], None] | None = None,
    ) -> None:
        key_folder = _folder_key(folder)
        on_disk = _scan(folder) if on_disk is None else on_disk
        to_read, to_drop = self._diff(conn, key_folder, on_disk)
        if not to_read and not to_drop:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have refreshed meanwhile: look again under the write lock
            to_read, to_drop = self._diff(conn, key_folder, on_disk)
            dropped_paths = {p for _, p in to_drop}
            for key, _ in to_drop:
                self._drop(conn, key)
            for path in to_read:
                try:
                    st = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                facts = read_facts(Path(path), st)
                try:
                    summary = summarize(Path(path), archived, st)
                except FileNotFoundError:
                    continue
                self._insert(conn, path, key_folder, archived, st, facts, summary)
                if tell is not None:
                    tell()
                if path in dropped_paths:
                    report.changed += 1
                else:
                    report.added += 1
            report.removed += len(dropped_paths - set(to_read))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _drop(conn: sqlite3.Connection, key: int) -> None:
        conn.execute(
            "DELETE FROM msgtext WHERE rowid BETWEEN ? AND ?",
            (key << MSG_BITS, (key << MSG_BITS) | MAX_MESSAGES),
        )
        conn.execute("DELETE FROM sessions WHERE key = ?", (key,))
        conn.execute("DELETE FROM counts WHERE key = ?", (key,))
        conn.execute("DELETE FROM usage WHERE key = ?", (key,))

    @staticmethod
    def _insert(
        conn: sqlite3.Connection,
        path: str,
        folder: str,
        archived: bool,
        st: os.stat_result,
        facts: SessionFacts,
        summary: SessionSummary,
    ) -> None:
        blob = json.dumps(
            {
                "tools": facts.tools,
                "modified": facts.modified,
                "usage": facts.usage,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        tools = " " + " ".join(sorted(facts.used_tools)) + " " if facts.used_tools else ""
        cur = conn.execute(
            "INSERT INTO sessions(path, folder, archived, size, mtime_ns, inode, id, created,"
            " updated, title, messages, tool_calls, tools, facts, summary, error, parent,"
            " forked_at, cwd) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                stored_path(path),
                folder,
                int(archived),
                *_stamp(st),
                facts.id,
                facts.created,
                facts.updated,
                facts.title,
                facts.messages,
                facts.tool_calls,
                tools,
                blob,
                json.dumps(
                    {**asdict(summary), "path": stored_path(summary.path)},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ),
                facts.error,
                summary.parent,
                summary.forked_at,
                summary.cwd,
            ),
        )
        key = cur.lastrowid
        assert key is not None
        conn.executemany(
            "INSERT INTO counts(key, folder, kind, name, n) VALUES (?,?,?,?,?)",
            [(key, folder, "tool", n, c) for n, c in facts.tools.items()]
            + [(key, folder, "modified", n, c) for n, c in facts.modified.items()],
        )
        conn.executemany(
            "INSERT INTO usage(key, model, input, output, cache_read, cache_creation)"
            " VALUES (?,?,?,?,?,?)",
            [(key, m, *(t[k] for k in USAGE_KEYS)) for m, t in facts.usage.items()],
        )
        conn.executemany(
            "INSERT INTO msgtext(rowid, body, role) VALUES (?,?,?)",
            [((key << MSG_BITS) | number, text, role) for number, role, text in facts.texts],
        )

    def rebuild(self) -> RefreshReport:
        """Throw the index away and build it again from the files.

        Reports only what is on disk: if the file could not be written (a full disk: the
        index fell back to memory) or does not hold every session afterwards, this
        raises IndexFailure instead of returning a count nobody can use.
        """
        self.close()
        self._remove_files()
        self.damaged = None
        self.generation += 1
        report = self.refresh()
        report.rebuilt = True
        if self.in_memory:
            raise IndexFailure(
                f"could not write the index {self.path} ({self.unwritable}); nothing was "
                "rebuilt. It is only a cache: free some space and run it again"
            )
        stored = self._stored_sessions()
        if stored < report.added:
            raise IndexFailure(
                f"the index {self.path} holds {stored} of {plural(report.added, 'session')} after the "
                "rebuild; it is only a cache: free some space and run it again"
            )
        return report

    def _stored_sessions(self) -> int:
        """Sessions of these folders the index file holds, read back by a new connection."""
        self.close()
        folders = self.folder_keys()
        marks = ",".join("?" * len(folders))
        try:
            conn = sqlite3.connect(_uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                return conn.execute(
                    f"SELECT count(*) FROM sessions WHERE folder IN ({marks})", folders
                ).fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise IndexFailure(
                f"the index {self.path} cannot be read back after the rebuild ({exc}); "
                "it is only a cache: free some space and run it again"
            ) from None

    # -- reading -------------------------------------------------------------------------
    def rows(self, archived: bool = False, active: bool = True) -> list[IndexedSession]:
        """Indexed sessions of the configured directories (refresh first for fresh data)."""
        folders = self.folder_keys(archived, active)
        marks = ",".join("?" * len(folders))

        def run(conn: sqlite3.Connection) -> list[IndexedSession]:
            return [
                IndexedSession(
                    key=r[0],
                    path=disk_path(r[1]),
                    archived=bool(r[2]),
                    size=r[3],
                    mtime_ns=r[4],
                    id=r[5],
                    created=r[6],
                    updated=r[7],
                    title=r[8],
                    messages=r[9],
                    tool_calls=r[10],
                    facts=json.loads(r[11]),
                    error=r[12],
                )
                for r in conn.execute(
                    "SELECT key, path, archived, size, mtime_ns, id, created, updated, title,"
                    " messages, tool_calls, facts, error FROM sessions"
                    f" WHERE folder IN ({marks})",
                    folders,
                )
            ]

        return self._guarded(run)

    def listing(self, archived: bool = True, active: bool = True) -> list[ListedSession]:
        """Every indexed session of the configured directories with its usage, in two
        queries (refresh first for fresh data)."""
        folders = self.folder_keys(archived, active)
        marks = ",".join("?" * len(folders))

        def run(conn: sqlite3.Connection) -> list[ListedSession]:
            usage: dict[int, dict[str, dict[str, int]]] = {}
            for key, model, *counts in conn.execute(
                "SELECT u.key, u.model, u.input, u.output, u.cache_read, u.cache_creation"
                f" FROM usage u JOIN sessions s ON s.key = u.key WHERE s.folder IN ({marks})",
                folders,
            ):
                usage.setdefault(key, {})[model] = {
                    k: int(c or 0) for k, c in zip(USAGE_KEYS, counts, strict=True)
                }
            return [
                ListedSession(
                    key=r[0],
                    path=disk_path(r[1]),
                    archived=bool(r[2]),
                    size=r[3],
                    mtime_ns=r[4],
                    id=r[5],
                    created=r[6],
                    updated=r[7],
                    title=r[8],
                    messages=r[9],
                    tool_calls=r[10],
                    tools=frozenset(r[11].split()),
                    error=r[12],
                    cwd=r[13] or "",
                    parent=r[14] or "",
                    usage=usage.get(r[0], {}),
                )
                for r in conn.execute(
                    "SELECT key, path, archived, size, mtime_ns, id, created, updated, title,"
                    " messages, tool_calls, tools, error, cwd, parent FROM sessions"
                    f" WHERE folder IN ({marks})",
                    folders,
                )
            ]

        return self._guarded(run)

    def summaries(
        self, archived: bool = False, active: bool = True, max_reads: int | None = None
    ) -> list[SessionSummary] | None:
        """What ``list`` shows, as ``summarize()`` made it from each file (refreshed first).

        None when more than ``max_reads`` files changed since the last refresh. Names
        are not filled in (they live in the session directory, not the index)."""
        if self.refresh(max_reads=max_reads).skipped:
            return None
        folders = self.folder_keys(archived, active)
        marks = ",".join("?" * len(folders))
        rows = self.query(f"SELECT summary FROM sessions WHERE folder IN ({marks})", folders)
        out = [SessionSummary(**json.loads(r[0])) for r in rows]
        for summary in out:
            summary.path = disk_path(summary.path)
        return out

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query (rebuilding a damaged index first)."""
        return self._guarded(lambda conn: conn.execute(sql, params).fetchall())

    # -- health --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        exists = self.path.exists()
        info: dict[str, Any] = {
            "path": str(self.path),
            "exists": exists,
            "size": sum(
                os.path.getsize(f"{self.path}{s}")
                for s in ("", "-wal")
                if os.path.exists(f"{self.path}{s}")
            ),
        }
        if not exists:
            info.update(sessions=0, messages=0, stale=None)
            return info
        folders = self.folder_keys()
        marks = ",".join("?" * len(folders))
        info["sessions"] = self.query(
            f"SELECT count(*) FROM sessions WHERE folder IN ({marks})", folders
        )[0][0]
        info["allSessions"] = self.query("SELECT count(*) FROM sessions")[0][0]
        info["messages"] = self.query(
            f"SELECT coalesce(sum(messages), 0) FROM sessions WHERE folder IN ({marks})", folders
        )[0][0]
        stale = 0
        for folder, _ in self.folders():
            to_read, to_drop = self._diff(self.connect(), _folder_key(folder), _scan(folder))
            stale += len(set(to_read) | {p for _, p in to_drop})
        info["stale"] = stale
        return info

    def check(self) -> list[IndexProblem]:
        """Problems with the index: [] when it agrees with the files, or when there is none.

        Reports a file that is not a database or fails SQLite's integrity checks, an
        index from an older Taurus, and entries that disagree with the session files
        (changed, added or removed since indexed). ``rebuild()`` (or any search)
        fixes all of them; the files themselves are never touched.
        """
        if not self.path.exists():
            return []
        problems: list[IndexProblem] = []
        if self._any_foreign():
            return [
                IndexProblem(
                    f"the index {self.path} (or its journal) is a link or a special file, "
                    "not one Taurus made; it will be rebuilt"
                )
            ]
        try:
            conn = sqlite3.connect(_uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                self._check(conn, problems)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if _is_busy(exc):
                return []
            problems.append(
                IndexProblem(f"the index {self.path} is damaged ({exc}); it will be rebuilt")
            )
        return problems

    def _check(self, conn: sqlite3.Connection, problems: list[IndexProblem]) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            problems.append(
                IndexProblem(f"the index {self.path} has no Taurus schema; it will be rebuilt")
            )
            return
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if not row or row[0] != SCHEMA_VERSION:
            problems.append(
                IndexProblem(f"the index {self.path} is from another Taurus version; rebuild it")
            )
            return
        result = conn.execute("PRAGMA quick_check").fetchone()
        if not result or result[0] != "ok":
            problems.append(
                IndexProblem(f"the index {self.path} is damaged ({result and result[0]})")
            )
            return
        for folder, _ in self.folders():
            to_read, to_drop = self._diff(conn, _folder_key(folder), _scan(folder))
            dropped = {p for _, p in to_drop}
            changed = len(set(to_read) & dropped)
            added = len(set(to_read) - dropped)
            removed = len(dropped - set(to_read))
            if changed or added or removed:
                problems.append(
                    IndexProblem(
                        f"the index disagrees with {folder}: {changed} changed, {added} new, "
                        f"{removed} removed since it was built (refreshed on next use)",
                        stale=True,
                    )
                )
