"""The web viewer's one door into the store and the ops layer.

Every call from ``taurus_ops.web`` into ``taurus_ops.ops``, ``taurus_ops.store`` and
``taurus_ops.config`` is made here, and what comes back is plain data (the dataclasses
below, dicts, strings), so the pages never depend on how the index or a job is built.

Read-only by construction: sessions are read from their files (one ``open``, ``fstat``
and ``read``, so a chat's atomic save gives the old or the new version, never a mix),
never written, and no session lock is taken. The only file written is the index
cache (``index.sqlite``), by the index's own refresh, which is safe beside running
chats, cleanup and other commands (SQLite's locking; the files stay the truth).

Caches, each keyed by what is on disk so a reload shows the files as they are:

- the session list (and what is worked out from it: filters, stats, search hits):
  refreshed from the index when the session or archive folder changed (their mtimes
  move on every save, new file and removal), or every ``FULL_REFRESH_SECONDS``. A
  worker thread refreshes; a page waits ``REFRESH_WAIT`` for it, then shows the list
  it has and says so, so re-indexing a big session never holds a page up;
- parsed sessions: by (path, size, mtime, inode), bounded by total file size.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from taurus_ops import __version__
from taurus_ops.errors import (
    AmbiguousReference,
    InvalidReference,
    SessionFormatError,
    SessionNotFound,
    TaurusError,
    UsageError,
)
from taurus_ops.ops import export as export_ops
from taurus_ops.ops import search as search_ops
from taurus_ops.ops import stats as stats_ops
from taurus_ops.store import Session, SessionStore, parse_session
from taurus_ops.store import format as fmt
from taurus_ops.store.index import USAGE_KEYS, Index, IndexBusy, IndexFailure
from taurus_ops.store.index.facts import usage_by_model
from taurus_ops.store.lock import lock_path, process_alive, read_holder
from taurus_ops.store.mend import INTERRUPTED_RESULT
from taurus_ops.store.refs import check_token
from taurus_ops.web.refresh import Refresher

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config

T = TypeVar("T")

__all__ = [
    "INTERRUPTED_RESULT",
    "USAGE_KEYS",
    "VERSION",
    "AmbiguousReference",
    "Exported",
    "IndexBusy",
    "IndexFailure",
    "InvalidReference",
    "LoadedSession",
    "SearchHit",
    "SearchRequest",
    "SessionFormatError",
    "SessionNotFound",
    "SessionRow",
    "TaurusError",
    "UsageError",
    "Viewer",
    "estimate_cost",
    "iso",
    "local_day",
    "local_time",
    "parse_day_end",
    "parse_since",
]

VERSION = __version__
FULL_REFRESH_SECONDS = 10.0  # at most this stale when only a file's bytes changed in place
REFRESH_WAIT = 0.1  # how long a page waits for the index before showing the list it has
PARSED_CACHE_BYTES = 96 * 1024 * 1024  # session files kept parsed (a 20 MB one stays warm)
LOAD_ATTEMPTS = 3  # a file moved by cleanup between resolving and opening: look again
EXPORT_FORMATS = tuple(export_ops.FORMATS)

# pure helpers the pages use, from the layers below
local_time = export_ops.local_time
iso = fmt.format_time
estimate_cost = stats_ops.estimate_cost
PRICE_NOTE = stats_ops.PRICE_NOTE
SEARCH_ROLES = search_ops.ROLES


def parse_since(text: str) -> datetime:
    """A date as ``--since`` takes it (2025-01-18, an ISO time, today, 7d ...); UsageError if not."""
    return search_ops.parse_since(text)


def local_day(value: str) -> str:
    """The local date (``2025-01-18``) of an ISO time, or "" when it is not one."""
    moment = fmt.parse_time(value)
    return moment.astimezone().date().isoformat() if moment else ""


def parse_day_end(text: str) -> datetime:
    """The end of a day (``2025-01-18`` means up to 23:59:59 local time), or an exact ISO time."""
    value = text.strip()
    if len(value) == 10:
        return search_ops.parse_since(value) + timedelta(days=1)
    return search_ops.parse_since(value)


def open_in_chat(path: Path) -> int | None:
    """The pid of the chat writing ``path``, if one is: its lock file names a live process.

    Read from the lock's sidecar file without locking it (the viewer takes no lock, not
    even a shared one); a sidecar left by a crash names a process that is gone.
    """
    pid = read_holder(lock_path(path))
    if pid is None or pid <= 0 or not process_alive(pid):
        return None
    return pid


# -- what the pages get ------------------------------------------------------------------
@dataclass
class SessionRow:
    """One session of the list, as the index knows it."""

    id: str
    path: str
    archived: bool
    created: str
    updated: str
    title: str
    messages: int
    tool_calls: int
    size: int
    error: str | None
    cwd: str
    parent: str
    tools: frozenset[str]
    tokens: dict[str, int]
    cost: float | None  # estimated USD; None when no model of it has a known price
    names: list[str] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> token counts
    mtime_ns: int = 0
    day: str = ""  # the local day it was created, as stats counts it
    text: str = ""  # id, title, folder and names in lower case, for the text filter

    @property
    def total_tokens(self) -> int:
        return self.tokens["inputTokens"] + self.tokens["outputTokens"]


@dataclass
class LoadedSession:
    """One session read from its file, with what the page shows around it."""

    id: str  # from the file name, as references resolve it
    document_id: str  # the document's sessionId (the same unless the file was renamed)
    title: str
    path: Path
    archived: bool
    data: dict[str, Any]  # the document (shared with the cache: never change it)
    signature: tuple[int, int, int]  # (size, mtime_ns, inode) of the bytes read
    names: list[str]
    notes: list[str]  # what reading had to fill in (a hand-made file without times ...)
    parent: SessionRow | None = None
    parent_id: str = ""
    children: list[SessionRow] = field(default_factory=list)
    repairs: list[dict[str, str]] = field(default_factory=list)  # doctor's quarantine entries
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> token counts
    chat_pid: int | None = None  # the chat that has the session open, if one does

    @property
    def size(self) -> int:
        return self.signature[0]

    @property
    def tokens(self) -> dict[str, int]:
        return {k: sum(t.get(k, 0) for t in self.usage.values()) for k in USAGE_KEYS}

    @property
    def cost(self) -> float | None:
        costs = [estimate_cost(m, t) for m, t in self.usage.items()]
        known = [c for c in costs if c is not None]
        return sum(known) if known else (0.0 if not costs else None)


@dataclass
class SearchRequest:
    text: str
    role: str | None = None
    tool: str | None = None
    since: str | None = None
    archived: bool = False
    case_sensitive: bool = False


@dataclass
class SearchHit:
    id: str
    archived: bool
    updated: str
    title: str
    matches: int
    message: int  # 1-based number of the message the snippet is from
    role: str
    snippet: str
    highlights: list[tuple[int, int]]
    key: int = 0  # where the index keeps it (for the snippet; opaque to the pages)


@dataclass
class Exported:
    text: str
    file_name: str
    media_type: str
    redacted: int | None  # secrets masked; None when not redacting


# -- the adapter ---------------------------------------------------------------------------
_MEDIA = {
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
}


class Viewer:
    """Read-only access to one Taurus home's sessions for the web pages (thread-safe)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SessionStore.from_config(config)
        self.home = Path(config.home)
        self.session_dir = Path(config.session_dir)
        self.archive_dir = Path(config.archive_dir) if config.archive_dir else None
        self._local = threading.local()  # one index connection per worker thread
        self._indexes: list[Index] = []
        self._lock = threading.Lock()
        self._generation = 0  # lists loaded so far
        self._refresher = Refresher(
            self._lock, self._state, lambda: self._generation == 0, self._refresh
        )
        self._id_counts: Counter[str] = Counter()
        self._stats: dict[tuple[int, str, int], dict[str, Any]] = {}
        self._memo: dict[Hashable, Any] = {}  # results worked out from the current list
        self._stamp: object = None
        self._refreshed = float("-inf")
        self._rows: list[SessionRow] = []
        self._by_id: dict[str, SessionRow] = {}
        self._names_stamp: object = None
        self._names: dict[str, list[str]] = {}
        self._parsed: OrderedDict[tuple[str, tuple[int, int, int]], Session] = OrderedDict()
        self._parsed_bytes = 0
        self._parsed_lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._refresher.stop()
            for index in self._indexes:
                with contextlib.suppress(Exception):
                    index.close()
            self._indexes.clear()

    # -- the index -------------------------------------------------------------------------
    def _index(self) -> Index:
        index = getattr(self._local, "index", None)
        if index is None:
            index = Index(self.config)
            self._local.index = index
            with self._lock:
                self._indexes.append(index)
        return index

    def _folder_stamp(self) -> tuple[Any, ...]:
        out = []
        for folder in (self.session_dir, self.archive_dir):
            try:
                st = os.stat(folder) if folder is not None else None
            except OSError:
                st = None
            out.append((st.st_mtime_ns, st.st_ino, st.st_nlink) if st else None)
        return tuple(out)

    def _state(self) -> tuple[bool, bool, object, float]:
        """(folders changed since the last refresh, last refresh too old, stamp, now)."""
        stamp = self._folder_stamp()
        now = time.monotonic()
        return stamp != self._stamp, now - self._refreshed >= FULL_REFRESH_SECONDS, stamp, now

    def refresh(self, force: bool = False, wait: float | None = REFRESH_WAIT) -> bool:
        """Bring the session list up to date when the folders changed (cheap when they did not).

        The index is refreshed by a worker thread; after a change to the folders a page
        waits ``wait`` seconds for it and otherwise shows the list as it was
        (``behind()`` says so), so a big session being re-indexed never holds a page up.
        The first list is always waited for. The periodic look for files changed in
        place (``FULL_REFRESH_SECONDS``) runs without anyone waiting. True when the list
        is current. The folders' stamps are taken when a refresh starts, so a save that
        lands during one is picked up by the next.
        """
        return self._refresher.refresh(force, wait)

    def behind(self) -> bool:
        """True while a refresh for a change to the folders is still running."""
        return self._refresher.behind()

    def _refresh(self, stamp: object, now: float) -> None:
        index = self._index()
        index.refresh()
        rows = self._read_rows(index)
        names = self._current_names()
        for row in rows:
            row.names = names.get(row.path, [])
            row.day = local_day(row.created or row.updated)
            row.text = f"{row.id}\n{row.title}\n{row.cwd}\n{' '.join(row.names)}".lower()
        rows.sort(key=lambda r: r.updated, reverse=True)
        by_id: dict[str, SessionRow] = {}
        for row in sorted(rows, key=lambda r: r.archived, reverse=True):
            by_id[row.id] = row  # an active session wins over an archived copy
        counts = Counter(r.id for r in rows)
        with self._lock:
            self._rows, self._by_id, self._id_counts = rows, by_id, counts
            self._stamp, self._refreshed = stamp, now
            self._generation += 1
            self._memo = {}

    def _read_rows(self, index: Index) -> list[SessionRow]:
        rows = []
        for r in index.listing():
            tokens = dict.fromkeys(USAGE_KEYS, 0)
            costs = []
            for model, counts in r.usage.items():
                for k in USAGE_KEYS:
                    tokens[k] += counts[k]
                costs.append(estimate_cost(model, counts))
            known = [c for c in costs if c is not None]
            rows.append(
                SessionRow(
                    id=r.id,
                    path=r.path,
                    archived=r.archived,
                    size=r.size,
                    created=r.created,
                    updated=r.updated,
                    title=r.title,
                    messages=r.messages,
                    tool_calls=r.tool_calls,
                    tools=r.tools,
                    error=r.error,
                    cwd=r.cwd,
                    parent=r.parent,
                    tokens=tokens,
                    cost=sum(known) if known else (0.0 if not r.usage else None),
                    usage=r.usage,
                    mtime_ns=r.mtime_ns,
                )
            )
        return rows

    def _current_names(self) -> dict[str, list[str]]:
        """Index path -> names; the session folder's name links, re-read when it changed."""
        try:
            st = os.stat(self.session_dir)
            stamp: object = (st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None
        if stamp != self._names_stamp or stamp is None:
            by_real = self.store.names()
            out: dict[str, list[str]] = {}
            real_dirs: dict[str, str] = {}
            for folder in (self.session_dir, self.archive_dir):
                if folder is not None:
                    real_dirs[os.path.realpath(folder)] = os.path.abspath(folder)
            for real, names in by_real.items():
                parent, base = os.path.split(real)
                shown = real_dirs.get(parent)
                out[os.path.join(shown, base) if shown else real] = names
            self._names, self._names_stamp = out, stamp
        return self._names

    # -- the list --------------------------------------------------------------------------
    def sessions(self, archived: bool = False) -> list[SessionRow]:
        """Every session newest first (archived ones too when asked), from the index."""
        self.refresh()
        with self._lock:
            rows = self._rows
        return rows if archived else [r for r in rows if not r.archived]

    def row(self, session_id: str) -> SessionRow | None:
        with self._lock:
            return self._by_id.get(session_id)

    def children(self, session_id: str) -> list[SessionRow]:
        with self._lock:
            return [r for r in self._rows if r.parent == session_id and r.id != session_id]

    # -- one session -----------------------------------------------------------------------
    def locate(self, ref: str) -> tuple[Path, str, bool]:
        """(file, id, archived) of a reference: an id, a unique prefix or a name, never a path.

        The id is the one in the file name, as ``taurus chat -s`` resolves it.
        """
        check_token(ref)  # no '/', '.', '~': nothing from a URL reaches the file system
        with self._lock:  # an id the index knows once: its file, without listing the folders
            row = self._by_id.get(ref) if self._id_counts.get(ref) == 1 else None
        if row is not None and os.path.isfile(row.path) and not os.path.islink(row.path):
            return Path(row.path), row.id, row.archived
        found = self.store.resolve(ref)
        return found.path, found.session_id, found.archived

    def signature(
        self, ref: str, hint: Path | None = None
    ) -> tuple[tuple[int, int, int] | None, Path | None]:
        """((size, mtime_ns, inode) of the session's file now, its path); (None, None) if gone.

        ``hint`` (the path found last time) is tried first, so polling a session costs one
        ``stat`` until the file moves.
        """
        for attempt in range(LOAD_ATTEMPTS + 1):
            try:
                path = hint if hint is not None and attempt == 0 else self.locate(ref)[0]
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except SessionNotFound:
                return None, None
            return (st.st_size, st.st_mtime_ns, st.st_ino), path
        return None, None

    def load(self, ref: str, context: bool = True) -> LoadedSession:
        """Read one session from its file (cached while the file is unchanged).

        With ``context`` the session list is brought up to date first, for the parent and
        child links; a fragment of a page (lazy loading, a live update) skips that.
        """
        if context:
            self.refresh()
        last: Exception | None = None
        for _ in range(LOAD_ATTEMPTS):
            path, sid, archived = self.locate(ref)
            try:
                session, signature = self._parse(path)
            except FileNotFoundError as exc:  # moved (archived, unarchived) meanwhile
                last = exc
                continue
            break
        else:
            raise SessionNotFound(f"session {ref!r} moved while it was read ({last})")
        data = session.data
        parent_id = data.get("parentSession")
        loaded = LoadedSession(
            id=sid,
            document_id=session.id,
            title=session.title,
            path=path,
            archived=archived,
            data=data,
            signature=signature,
            names=[],
            notes=list(session.notes),
            parent_id=parent_id
            if isinstance(parent_id, str) and fmt.is_valid_token(parent_id)
            else "",
            usage=self._usage(sid, path, signature, data),
            chat_pid=open_in_chat(path),
        )
        if context:
            loaded.names = self._current_names().get(os.path.abspath(path), [])
            loaded.parent = self.row(loaded.parent_id) if loaded.parent_id else None
            loaded.children = self.children(loaded.id)
            loaded.repairs = self._repairs(path)
        return loaded

    def _usage(
        self, sid: str, path: Path, signature: tuple[int, int, int], data: dict[str, Any]
    ) -> dict[str, dict[str, int]]:
        """Token use by model: the index's, when it has this very file; else summed here."""
        row = self.row(sid)
        if (
            row is not None
            and row.path == os.path.abspath(path)
            and (row.size, row.mtime_ns) == signature[:2]
        ):
            return row.usage
        return usage_by_model(data)

    def _parse(self, path: Path) -> tuple[Session, tuple[int, int, int]]:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            signature = (st.st_size, st.st_mtime_ns, st.st_ino)
            key = (str(path), signature)
            with self._parsed_lock:
                cached = self._parsed.get(key)
                if cached is not None:
                    self._parsed.move_to_end(key)
                    return cached, signature
            raw = handle.read()
        session = parse_session(raw, path)  # SessionFormatError for a damaged file
        with self._parsed_lock:
            if key not in self._parsed:
                self._parsed[key] = session
                self._parsed_bytes += signature[0]
            while self._parsed_bytes > PARSED_CACHE_BYTES and len(self._parsed) > 1:
                (_, old_sig), _ = self._parsed.popitem(last=False)
                self._parsed_bytes -= old_sig[0]
        return session, signature

    def _repairs(self, path: Path) -> list[dict[str, str]]:
        """What ``taurus-ops doctor`` recorded about this file in the quarantine, newest first."""
        root = self.home / "quarantine"
        found = []
        try:
            days = sorted(os.listdir(root), reverse=True)
        except OSError:
            return []
        for day in days[:366]:
            manifest = root / day / "MANIFEST.jsonl"
            try:
                lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                original = entry.get("original") if isinstance(entry, dict) else None
                if isinstance(original, str) and os.path.basename(original) == path.name:
                    found.append(
                        {
                            "time": str(entry.get("time", "")),
                            "reason": str(entry.get("reason", "")),
                            "kept": str(entry.get("quarantined", "")),
                        }
                    )
        found.sort(key=lambda e: e["time"], reverse=True)
        return found

    # -- downloads -------------------------------------------------------------------------
    def export(self, ref: str, fmt_name: str, redact: bool) -> Exported:
        """The session in an ``export`` format (markdown, html, json), as ``taurus-ops export``."""
        if fmt_name not in EXPORT_FORMATS:
            raise UsageError(f"unknown format {fmt_name!r}: use {', '.join(EXPORT_FORMATS)}")
        path = self.locate(ref)[0]
        for _ in range(LOAD_ATTEMPTS):
            try:
                session, _ = self._parse(path)
                break
            except FileNotFoundError:
                path = self.locate(ref)[0]
        else:
            raise SessionNotFound(f"session {ref!r} moved while it was read")
        names = self._current_names().get(os.path.abspath(path), [])
        rendered = export_ops.render(session, fmt_name, redact_secrets=redact, names=names)
        name = path.name.removesuffix(".json") + rendered.suffix
        return Exported(
            text=rendered.text,
            file_name=name,
            media_type=_MEDIA.get(rendered.suffix, "text/plain; charset=utf-8"),
            redacted=rendered.redaction.total if rendered.redaction is not None else None,
        )

    # -- search ----------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[SearchHit]:
        """Every hit of ``taurus-ops search`` for the request, best first, without snippets."""
        query = self._query(request)
        self.refresh()
        key: tuple[Hashable, ...] = ("search", request.text, request.role, request.tool, request.since,
               request.archived, request.case_sensitive)  # fmt: skip
        if request.since:  # "7d" moves with the clock
            key += (int(time.time() // 60),)
        return self.memo(
            key,
            lambda _: [
                self._hit(h) for h in search_ops.search(self._index(), query, refresh=False)
            ],
        )

    def snippets(self, request: SearchRequest, hits: list[SearchHit]) -> None:
        """Fill in the snippets (and the message they come from) of some hits."""
        query = self._query(request)
        index = self._index()
        raw = [
            search_ops.Hit(
                id=h.id,
                path="",
                archived=h.archived,
                created="",
                updated=h.updated,
                title=h.title,
                score=0.0,
                matches=h.matches,
                message=h.message - 1,
                key=h.key,
            )
            for h in hits
        ]
        search_ops.add_snippets(index, raw, query)
        for hit, done in zip(hits, raw, strict=True):
            hit.snippet, hit.highlights, hit.role = done.snippet, done.highlights, done.role

    @staticmethod
    def _hit(hit: search_ops.Hit) -> SearchHit:
        return SearchHit(
            id=hit.id,
            archived=hit.archived,
            updated=hit.updated,
            title=hit.title,
            matches=hit.matches,
            message=hit.message + 1,
            role=hit.role,
            snippet=hit.snippet,
            highlights=list(hit.highlights),
            key=hit.key,
        )

    @staticmethod
    def _query(request: SearchRequest) -> search_ops.SearchQuery:
        if request.role is not None and request.role not in SEARCH_ROLES:
            raise UsageError(f"role must be one of {', '.join(SEARCH_ROLES)}")
        return search_ops.SearchQuery(
            terms=search_ops.parse_terms(request.text),
            role=request.role,
            tool=request.tool or None,
            since=parse_since(request.since) if request.since else None,
            archived=request.archived,
            case_sensitive=request.case_sensitive,
        )

    # -- stats -----------------------------------------------------------------------------
    def stats(self, since: str | None = None) -> tuple[dict[str, Any], datetime | None]:
        """The ``taurus-ops stats --json`` figures (and the moment ``since`` stands for)."""
        moment = parse_since(since) if since else None
        self.refresh()
        # the figures change only with the list (and "this week" with the clock): kept a minute
        key = (self._generation, since or "", int(time.time() // 60))
        with self._lock:
            cached = self._stats.get(key)
        if cached is None:
            figures = stats_ops.compute(
                self._index(), since=moment, names=stats_ops.count_names(self.session_dir)
            )
            cached = figures.as_json()
            with self._lock:
                self._stats = {k: v for k, v in self._stats.items() if k[0] == key[0]}
                self._stats[key] = cached
        return cached, moment

    def tool_names(self) -> list[str]:
        """Every tool any session used, for the filters."""
        return self.memo("tools", lambda rows: sorted({t for r in rows for t in r.tools}))

    def memo(self, key: Hashable, work: Callable[[list[SessionRow]], T]) -> T:
        """``work(rows)`` for the current session list, worked out once per list."""
        with self._lock:
            rows, memo = self._rows, self._memo
            if key in memo:
                return memo[key]
        value = work(rows)
        with self._lock:
            if memo is self._memo:
                memo[key] = value
        return value
