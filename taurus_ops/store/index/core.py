"""``Index``: the connection to one home's index file and every answer read from it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from taurus_ops.store.atomic import create_file, ensure_dir, is_foreign, remove_foreign
from taurus_ops.store.index import build, queries, words
from taurus_ops.store.index.build import RefreshReport
from taurus_ops.store.index.bulk import bulk, use_wal
from taurus_ops.store.index.queries import (
    Aggregate,
    Child,
    IndexedSession,
    ListedSession,
    PlanRow,
    SearchRow,
)
from taurus_ops.store.index.schema import (
    INDEX_NAME,
    SCHEMA_VERSION,
    SIDECARS,
    Damaged,
    IndexBusy,
    IndexFailure,
    create_tables,
    folder_key,
    is_busy,
    is_damage,
    uri,
)
from taurus_ops.store.index.text import (
    head_holds_all,
    holds_all,
    message_numbers,
    message_text,
    needle,
    unpack,
    use_dictionary,
)
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.store.summary import SessionSummary

T = TypeVar("T")


class Places(Protocol):
    """Where an index lives and what it covers (a ``Config`` is one)."""

    @property
    def home(self) -> Path: ...

    @property
    def session_dir(self) -> Path: ...

    @property
    def archive_dir(self) -> Path | None: ...


@dataclass(frozen=True)
class _Dirs:
    home: Path
    session_dir: Path
    archive_dir: Path | None = None


class IndexProblem(str):
    """One problem ``Index.check()`` found; ``stale`` when the index is merely behind the files."""

    stale: bool

    def __new__(cls, text: str, stale: bool = False) -> IndexProblem:
        problem = super().__new__(cls, text)
        problem.stale = stale
        return problem


class Index:
    """The session index of one Taurus home, covering the configured session directories."""

    damaged: str | None = None
    unwritable: str | None = None  # why the index lives in memory (the file cannot be written)
    generation = 0  # bumped whenever the index is thrown away (keys change)
    announce: Callable[[int], None] | None = None  # told how many files a long refresh reads
    progress: Callable[[int, int], None] | None = None  # (files read, of how many) as it goes
    ANNOUNCE_FROM = 500

    def __init__(self, config: Places) -> None:
        self.home = Path(config.home)
        self.session_dir = Path(config.session_dir)
        archive = getattr(config, "archive_dir", None)
        self.archive_dir = Path(archive) if archive is not None else None
        self.path = self.home / INDEX_NAME
        self._conn: sqlite3.Connection | None = None
        self.in_memory = False
        self._links: dict[Path, list[tuple[str, str]]] = {}  # folder -> its name links
        self._vocab: tuple[tuple[int, ...], bytes] | None = None  # (as of when, the words)

    @classmethod
    def for_dirs(cls, home: Path, session_dir: Path, archive_dir: Path | None = None) -> Index:
        return cls(_Dirs(Path(home), Path(session_dir), archive_dir))

    # -- the folders this index instance covers ---------------------------------------------
    def folders(self, archived: bool = True) -> list[tuple[Path, bool]]:
        out = [(self.session_dir, False)]
        if archived and self.archive_dir is not None:
            out.append((self.archive_dir, True))
        return out

    def folder_keys(self, archived: bool = True, active: bool = True) -> list[str]:
        return [folder_key(f) for f, is_arch in self.folders(archived) if active or is_arch]

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
            uri(self.path, nofollow=1), uri=True, timeout=60, isolation_level=None
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
                    create_tables(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"no such table: index schema {version!r} is not current")
        else:
            stored = words.stored_dictionary(conn)
            if stored is not None and not use_dictionary(stored):
                raise Damaged("the stored text's dictionary")
            use_wal(conn)  # a build's journal mode that could not be set back (see bulk)
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
            if is_busy(exc):
                raise IndexBusy(f"the index {self.path} is busy; try again") from None
            if not is_damage(exc):  # a full disk, an I/O error: the file is not to blame
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
        create_tables(conn)
        return conn

    def _guarded(self, action: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``action(conn)``; on damage, rebuild the index once and run it again."""
        try:
            try:
                return action(self.connect())
            except sqlite3.Error as exc:
                if is_busy(exc) or not is_damage(exc):
                    raise
                self.damaged = str(exc)
                self.close()
                self._remove_files()
                self.generation += 1
                conn = self.connect()
                self._bring_up_to_date(conn, RefreshReport())  # fill it before reading it
                return action(conn)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise IndexBusy(f"the index {self.path} is busy; try again") from None
            raise IndexFailure(
                f"the index {self.path} cannot be used ({exc}); it is only a cache:"
                " free some space or delete it, and try again"
            ) from None

    def is_current(self) -> bool:
        """True if the index file exists and opens with the current schema (never rebuilds)."""
        if not self.path.exists() or self._any_foreign():
            return False
        try:
            conn = sqlite3.connect(uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return False
        return bool(row) and row[0] == SCHEMA_VERSION

    # -- refreshing ----------------------------------------------------------------------
    def refresh(self, max_reads: int | None = None) -> RefreshReport:
        """Bring the index up to date with the session files (both directories).

        With ``max_reads``, nothing is done (``report.skipped``) when more files than
        that would have to be read: a caller that can read the files itself does so.
        """
        report = RefreshReport()
        report.rebuilt = not self.path.exists()
        self._guarded(lambda conn: self._bring_up_to_date(conn, report, max_reads))
        if report.touched >= 200 and not self.in_memory:
            with contextlib.suppress(sqlite3.Error):
                self.connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self.damaged:
            report.rebuilt, report.damaged = True, self.damaged
        return report

    def _bring_up_to_date(
        self, conn: sqlite3.Connection, report: RefreshReport, max_reads: int | None = None
    ) -> RefreshReport:
        now = time.time_ns()
        work = []
        for folder, archived in self.folders():
            state = build.folder_state(conn, folder_key(folder))
            if state is not None and build.trusted(state, folder, now):
                self._links[folder] = [tuple(link) for link in state.get("links", [])]
                continue
            report.looked += 1
            found = build.look(conn, folder, archived, self.home)
            self._links[folder] = found.links
            if found.to_read or found.to_drop:
                work.append(found)
        reads = sum(len(w.to_read) for w in work)
        if max_reads is not None and reads > max_reads:
            report.skipped = True
            return report
        with (
            build.Readers(reads, words.dictionary(conn, work)) as readers,
            bulk(conn, reads),
        ):
            long = reads >= self.ANNOUNCE_FROM
            if self.announce is not None and long:
                self.announce(reads)
            tell = self._progress_counter(reads) if long and self.progress is not None else None
            for folder_work in work:
                build.apply(conn, folder_work, report, readers, tell)
        return report

    def links(self) -> list[tuple[str, str]] | None:
        """(name, target) of each ``*.json`` symlink in the session directory, as the last
        refresh found them (None before any refresh: list the folder then)."""
        return self._links.get(self.session_dir)

    def _progress_counter(self, total: int) -> Callable[[int], None]:
        """A function to call with each number of files read; it tells ``progress``."""
        done = 0
        progress = self.progress
        assert progress is not None

        def tell(count: int) -> None:
            nonlocal done
            done += count
            progress(done, total)

        progress(0, total)
        return tell

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
            conn = sqlite3.connect(uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                count: int = conn.execute(
                    f"SELECT count(*) FROM sessions WHERE folder IN ({marks})", folders
                ).fetchone()[0]
                return count
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise IndexFailure(
                f"the index {self.path} cannot be read back after the rebuild ({exc}); "
                "it is only a cache: free some space and run it again"
            ) from None

    # -- reading: rows -----------------------------------------------------------------------
    def rows(self, archived: bool = False, active: bool = True) -> list[IndexedSession]:
        """Indexed sessions of the configured directories (refresh first for fresh data)."""
        folders = self.folder_keys(archived, active)
        return self._guarded(lambda conn: queries.rows(conn, folders))

    def listing(self, archived: bool = True, active: bool = True) -> list[ListedSession]:
        """Every indexed session of the configured directories with its usage, in two
        queries (refresh first for fresh data)."""
        folders = self.folder_keys(archived, active)
        return self._guarded(lambda conn: queries.listing(conn, folders))

    def recent(self) -> list[queries.RecentSession]:
        """The session directory's indexed sessions, newest first (the resume picker)."""
        folder = self.folder_keys(archived=False)[0]
        return self._guarded(lambda conn: queries.recent(conn, folder))

    def summaries(
        self,
        archived: bool = False,
        active: bool = True,
        max_reads: int | None = None,
        limit: int | None = None,
    ) -> list[SessionSummary] | None:
        """What ``list`` shows, as ``summarize()`` made it from each file (refreshed first),
        in list order, at most ``limit`` of them.

        None when more than ``max_reads`` files changed since the last refresh. Names
        are not filled in (they live in the session directory, not the index)."""
        if self.refresh(max_reads=max_reads).skipped:
            return None
        folders = self.folder_keys(archived, active)
        return self._guarded(lambda conn: queries.summaries(conn, folders, limit))

    def children(
        self, parents: list[str], archived: bool = False, active: bool = True
    ) -> list[Child]:
        """The sessions made from any of ``parents`` (by id), in list order (no refresh)."""
        folders = self.folder_keys(archived, active)
        return self._guarded(lambda conn: queries.children(conn, folders, parents))

    def plan_rows(self, archived: bool = False) -> dict[str, PlanRow]:
        """path -> what cleanup plans with, for the session (or archive) directory's files."""
        folder = self.folder_keys(archived, active=not archived)[-1]
        return self._guarded(lambda conn: queries.plan_rows(conn, folder))

    def aggregate(self, since: str | None, week_ns: int) -> Aggregate:
        """The statistics of the session directory's sessions updated since ``since``."""
        folder = self.folder_keys(archived=False)[0]
        return self._guarded(lambda conn: queries.aggregate(conn, folder, since, week_ns))

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query (rebuilding a damaged index first)."""
        return self._guarded(lambda conn: conn.execute(sql, params).fetchall())

    # -- reading: message text ---------------------------------------------------------------
    def search_rows(
        self,
        archived: bool = False,
        since: str | None = None,
        tool: str | None = None,
        keys: set[int] | None = None,
    ) -> dict[int, SearchRow]:
        """key -> row of every readable session a search may return (of ``keys``)."""
        folders = self.folder_keys(archived=archived)
        return self._guarded(lambda conn: queries.search_rows(conn, folders, since, tool, keys))

    def count_allowed(
        self, archived: bool = False, since: str | None = None, tool: str | None = None
    ) -> int:
        """How many sessions ``search_rows`` would give without ``keys``."""
        folders = self.folder_keys(archived=archived)
        return self._guarded(lambda conn: queries.count_allowed(conn, folders, since, tool))

    def term_keys(self, term: str) -> set[int] | None:
        """The sessions that may hold ``term`` (a superset; None: any may)."""
        return self._guarded(lambda conn: queries.word_keys(conn, term, self._vocabulary(conn)))

    def _vocabulary(self, conn: sqlite3.Connection) -> bytes:
        """The vocabulary, read again only when the index changed since (a search of
        several terms looks each up in it, twice when ranked)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        when = (id(conn), self.generation, version, conn.total_changes)
        if self._vocab is None or self._vocab[0] != when:
            self._vocab = (when, queries.vocabulary(conn))
        return self._vocab[1]

    def term_messages(
        self,
        terms: list[str],
        within: Iterable[int],
        case_sensitive: bool = False,
        role: str | None = None,
    ) -> list[dict[int, list[int]]]:
        """Per term: session key -> the numbers of its messages (of ``role``) holding it,
        for the sessions ``within``."""
        allowed = set(within)

        def run(conn: sqlite3.Connection) -> list[dict[int, list[int]]]:
            needles = [needle(t, case_sensitive) for t in terms]
            wanted = []
            vocab = self._vocabulary(conn)
            for term, found in zip(terms, needles, strict=True):
                keys = queries.word_keys(conn, term, vocab) if found is not None else set()
                wanted.append(allowed if keys is None else keys & allowed)
            out: list[dict[int, list[int]]] = [{} for _ in terms]
            for key, body in queries.bodies(conn, set().union(*wanted) if wanted else set()):
                roles, joined = unpack(body)
                hay = joined if case_sensitive else joined.lower()
                for i, found in enumerate(needles):
                    if found is None or key not in wanted[i]:
                        continue
                    numbers = message_numbers(hay, found)
                    if role is not None:
                        numbers = [n for n in numbers if n < len(roles) and roles[n] == role]
                    if numbers:
                        out[i][key] = numbers
            return out

        return self._guarded(run)

    def holding_all(
        self,
        terms: list[str],
        keys: set[int] | None,
        archived: bool = False,
        since: str | None = None,
        tool: str | None = None,
        case_sensitive: bool = False,
    ) -> dict[int, SearchRow]:
        """key -> row of the sessions (among ``keys``, as ``search_rows`` filters them)
        whose text holds every term, in any messages (with no terms: all of them)."""
        needles = [needle(t, case_sensitive) for t in terms]
        if any(n is None for n in needles):
            return {}
        found = [n for n in needles if n]
        folders = self.folder_keys(archived=archived)

        def run(conn: sqlite3.Connection) -> dict[int, SearchRow]:
            if not found:
                return queries.search_rows(conn, folders, since, tool, keys)
            out: dict[int, SearchRow] = {}
            rest: dict[int, SearchRow] = {}  # not settled by the first bytes of the text
            for row, head in queries.search_rows_with_head(conn, folders, since, tool, keys):
                (out if head_holds_all(head, found, not case_sensitive) else rest)[row.key] = row
            for key, body in queries.bodies(conn, set(rest)):
                if holds_all(body, found, not case_sensitive):
                    out[key] = rest[key]
            return out

        return self._guarded(run)

    def message(self, key: int, number: int) -> tuple[str, str] | None:
        """(role, text) of message ``number`` of the session ``key``, as it is searched."""

        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            body = queries.body(conn, key)
            if body is None:
                return None
            roles, joined = unpack(body)
            role = roles[number] if number < len(roles) else ""
            return role, message_text(joined, number)

        return self._guarded(run)

    # -- health --------------------------------------------------------------------------
    def _stale(self, conn: sqlite3.Connection) -> list[tuple[Path, int, int, int]]:
        """(folder, changed, added, removed) for every folder the rows disagree with."""
        out = []
        for folder, _ in self.folders():
            found, _, _ = build.scan(folder)
            to_read, to_drop = build.diff(build.known(conn, folder_key(folder), True), found)
            dropped = {p for _, p in to_drop}
            changed = len(set(to_read) & dropped)
            added = len(set(to_read) - dropped)
            removed = len(dropped - set(to_read))
            if changed or added or removed:
                out.append((folder, changed, added, removed))
        return out

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
        info["stale"] = sum(c + a + r for _, c, a, r in self._guarded(self._stale))
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
            conn = sqlite3.connect(uri(self.path, mode="ro"), uri=True, timeout=10)
            try:
                self._check(conn, problems)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if is_busy(exc):
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
        for folder, changed, added, removed in self._stale(conn):
            problems.append(
                IndexProblem(
                    f"the index disagrees with {folder}: {changed} changed, {added} new, "
                    f"{removed} removed since it was built (refreshed on next use)",
                    stale=True,
                )
            )
