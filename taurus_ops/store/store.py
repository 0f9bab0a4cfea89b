"""The session store: one directory of session files, plus the archive beside it."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taurus_ops.errors import SessionNotFound, UsageError
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_create, ensure_dir, point_link
from taurus_ops.store.layout import load_session, save_document
from taurus_ops.store.lock import SessionLock
from taurus_ops.store.newest import directory_stamp, note, noted, noting
from taurus_ops.store.refs import (
    Resolver,
    SessionRef,
    check_token,
    id_from_file_name,
    inside,
    is_session_file,
    scan,
)
from taurus_ops.store.session import Session
from taurus_ops.store.summary import SessionSummary, summarize

_HEAD_UPDATED = re.compile(rb'^  "updated": "([^"]+)"', re.MULTILINE)


def _head_updated(path: Path, mtime: float) -> float:
    """A session's top-level ``updated`` read from the file's head; the mtime if not there."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return mtime
    match = _HEAD_UPDATED.search(head)
    moment = fmt.parse_time(match.group(1).decode("utf-8", "replace")) if match else None
    return moment.timestamp() if moment else mtime


def listing_order(summaries: list[SessionSummary]) -> list[SessionSummary]:
    """Newest ``updated`` first; the same time in descending order of the path as the
    index stores it (so the files and the index give one order)."""
    from taurus_ops.store.index.schema import stored_path

    return sorted(summaries, key=lambda s: (s.sort_key(), stored_path(s.path)), reverse=True)


def children_map(summaries: list[SessionSummary]) -> dict[str, list[str]]:
    """id -> the ids of the sessions forked or compacted from it, oldest first."""
    out: dict[str, list[str]] = {}
    for s in sorted(summaries, key=lambda x: x.created or x.updated):
        if s.parent:
            out.setdefault(s.parent, []).append(s.id)
    return out


def names_of(session_dir: Path, links: list[str]) -> dict[str, list[str]]:
    """Real session path -> the names among ``links`` (``NAME.json`` symlinks in
    ``session_dir``) that lead to it."""
    out: dict[str, list[str]] = {}
    for link in links:
        real = os.path.realpath(os.path.join(session_dir, link))
        if os.path.isfile(real):
            out.setdefault(real, []).append(link[:-5])
    for value in out.values():
        value.sort()
    return out


def summary_or_none(source: tuple[str, bool]) -> SessionSummary | None:
    """``summarize`` of (path, archived); None for a file removed meanwhile."""
    try:
        return summarize(Path(source[0]), source[1])
    except FileNotFoundError:
        return None


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


class SessionStore:
    def __init__(self, session_dir: Path, archive_dir: Path | None = None) -> None:
        self.session_dir = Path(session_dir)
        self.archive_dir = Path(archive_dir) if archive_dir is not None else None
        self.resolver = Resolver(self.session_dir, self.archive_dir)
        self.index_home: Path | None = None  # where index.sqlite lives (set from a config)
        # asked for an id not found here: (id) -> (path, note) of a session fetched from the
        # remote's shared area, or None; set when a remote is configured
        self.fetch_missing: Callable[[str], tuple[Path, str] | None] | None = None
        self.notify: Callable[[str], None] = _to_stderr

    @classmethod
    def from_config(cls, config: Any) -> SessionStore:
        store = cls(config.session_dir, config.archive_dir)
        store.index_home = Path(config.home)
        remote = getattr(config.settings, "remote", None)
        if remote is not None and getattr(remote, "url", None):

            def fetch(session_id: str) -> tuple[Path, str] | None:
                from taurus_ops.remote.shared import fetch_shared  # the S3 client only now

                return fetch_shared(config, session_id, store.session_dir)

            store.fetch_missing = fetch
        return store

    @property
    def checkpoints(self) -> Any:
        """The CheckpointStore beside the sessions (None without a Taurus home)."""
        if self.index_home is None:
            return None
        from taurus_ops.store.checkpoints import CheckpointStore

        return CheckpointStore.for_home(self.index_home)

    # -- files -----------------------------------------------------------------------
    def ensure(self) -> None:
        ensure_dir(self.session_dir)

    def files(self, archived: bool = False) -> list[Path]:
        folder = self.archive_dir if archived else self.session_dir
        return scan(folder) if folder is not None else []

    def ids(self) -> set[str]:
        return {id_from_file_name(p.name) for p in self.files() + self.files(archived=True)}

    def has_id(self, session_id: str) -> bool:
        """True if a session file here or in the archive has the id (a listing of each,
        with only the names that hold it looked at: ``ids()`` makes a path of every file)."""
        folders = [f for f in (self.session_dir, self.archive_dir) if f is not None]
        return any(
            id_from_file_name(p.name) == session_id
            for folder in folders
            for p in scan(folder, containing=session_id)
        )

    def new_id(self) -> str:
        """A random id no session file here or in the archive has."""
        while True:
            candidate = fmt.new_id()
            if not self.has_id(candidate):
                return candidate

    # -- references --------------------------------------------------------------------
    def resolve(self, ref: str, include_archive: bool = True) -> SessionRef:
        """The session ``ref`` names. An id found neither here nor in the archive is looked
        for in the remote's shared area (when a remote is configured) and downloaded."""
        try:
            return self.resolver.resolve(ref, include_archive)
        except SessionNotFound:
            ref = ref.strip()
            if self.fetch_missing is None or not fmt.is_valid_token(ref):
                raise
            fetched = self.fetch_missing(ref)
            if fetched is None:
                raise SessionNotFound(
                    f"no session matches {ref!r} in {self.session_dir} nor in the remote's "
                    "shared area (see `taurus-ops list`)"
                ) from None
            path, note = fetched
            self.notify(note)
            return SessionRef(path, ref, False, "shared")

    def latest(self) -> SessionRef:
        """The most recently updated active session, without parsing every file.

        Files are visited newest modification first, reading only the top-level
        ``updated`` near the head of each. A save stamps ``updated`` just before it
        writes the file, so once modification times fall below the best ``updated``
        found, no later file can beat it. With a Taurus home, the newest save is noted
        (``store.newest``) and, while the folder is as it was then, no file is looked at.
        """
        home = self.index_home
        if home is not None:
            found = noted(home, self.session_dir)
            if found is not None:
                return SessionRef(found, id_from_file_name(found.name), False, "latest")
        stamp = directory_stamp(self.session_dir)  # before the listing: a change after moves it
        stamped = _modified(self.session_dir)
        if not stamped:
            raise SessionNotFound(
                f"no sessions yet in {self.session_dir}; start one with `taurus chat`"
            )
        stamped.sort(key=lambda item: item[0], reverse=True)
        best_path, best_time = Path(stamped[0][1]), float("-inf")
        for mtime, name in stamped:
            if mtime < best_time - 1.0:  # a second's grace for coarse file-system clocks
                break
            path = Path(name)
            updated = _head_updated(path, mtime)
            if updated > best_time:
                best_path, best_time = path, updated
        if home is not None:
            note(home, self.session_dir, best_path.name, best_time, stamp)
        return SessionRef(best_path, id_from_file_name(best_path.name), False, "latest")

    # -- load / save -------------------------------------------------------------------
    def load(self, path: Path, archived: bool | None = None) -> Session:
        path = Path(path)
        try:
            session = load_session(path)
        except FileNotFoundError:
            raise SessionNotFound(f"no session file at {path}") from None
        session.archived = bool(archived) if archived is not None else self._in_archive(path)
        return session

    def load_ref(self, ref: str) -> Session:
        found = self.resolve(ref)
        return self.load(found.path, found.archived)

    def path_for(self, session_id: str, created: str | None = None) -> Path:
        moment = fmt.parse_time(created) if created else None
        return self.session_dir / fmt.file_name(moment or datetime.now(UTC), session_id)

    def create(self, session_id: str | None = None, **fields: Any) -> Session:
        """Create and save a new session (id unique in the store)."""
        self.ensure()
        if session_id is None:
            session_id = self.new_id()
        else:
            check_token(session_id, "session id")
            if self.has_id(session_id):
                raise UsageError(f"a session with id {session_id!r} already exists")
        session = Session.new(session_id, **fields)
        session.path = self.path_for(session_id, session.created)
        with self._noting(session):
            try:  # a new file: never over anything of that name (a link planted there, say)
                atomic_create(session.path, session.to_bytes())
            except FileExistsError:
                raise UsageError(f"{session.path} already exists; not overwriting it") from None
        return session

    def save(self, session: Session, touch: bool = True, durable: bool = True) -> None:
        """Write the session atomically (0600). ``touch`` stamps ``updated`` first.

        The messages unchanged since the last load or save are copied from the file
        rather than serialised again (store/layout.py), so a save after a turn costs
        about what copying the file costs."""
        if session.path is None:
            session.path = self.path_for(session.id, session.created)
        if touch:
            session.touch()
        ensure_dir(session.path.parent)
        with self._noting(session):
            session.image = save_document(session.path, session.data, session.image, durable)

    def _noting(self, session: Session) -> contextlib.AbstractContextManager[None]:
        """The note of the newest save (``store.newest``), kept across a save of
        ``session`` into the session directory."""
        path = session.path
        assert path is not None
        if self.index_home is None or path.parent != self.session_dir:
            return contextlib.nullcontext()

        def saved() -> tuple[str, float]:
            moment = fmt.parse_time(session.data.get("updated"))
            return path.name, moment.timestamp() if moment else float("-inf")

        return noting(self.index_home, self.session_dir, [path.name], saved)

    def lock(self, session: Session | Path) -> SessionLock:
        """The write lock for ``session`` (or the session file at a path); use as a
        context manager or call acquire()."""
        path = session if isinstance(session, Path) else session.path
        assert path is not None
        home = self.index_home if path.parent == self.session_dir else None
        return SessionLock(path, home)

    # -- names ---------------------------------------------------------------------------
    def names(self) -> dict[str, list[str]]:
        """Real session path -> the names (symlinks in the session directory) that lead to it."""
        try:
            entries = list(os.scandir(self.session_dir))
        except FileNotFoundError:
            return {}
        links = [e.name for e in entries if e.name.endswith(".json") and e.is_symlink()]
        return names_of(self.session_dir, links)

    def name(self, ref: str, name: str, replace: bool = False) -> Path:
        """Give a session a name: the tutorial's ``ln -s FILE NAME.json`` in the session dir."""
        check_token(name, "session name")
        target = self.resolve(ref)
        link = self.session_dir / f"{name}.json"
        if fmt.split_file_name(link.name) or self.has_id(name):
            raise UsageError(f"{name!r} is already a session id; choose another name")
        if link.is_symlink():
            if os.path.realpath(link) == os.path.realpath(target.path):
                return link
            if not replace:
                current = os.readlink(link)
                raise UsageError(
                    f"name {name!r} already points to {current} (use --force to move it)"
                )
        elif link.exists():
            raise UsageError(f"{link} exists and is not a name link; choose another name")
        self.ensure()
        point_link(link, target.path)
        return link

    def unname(self, name: str) -> Path:
        check_token(name, "session name")
        link = self.session_dir / f"{name}.json"
        if not link.is_symlink():
            raise SessionNotFound(f"no name {name!r} in {self.session_dir}")
        link.unlink()
        return link

    # -- listing -------------------------------------------------------------------------
    def summaries(
        self, archived: bool = False, include_active: bool = True, limit: int | None = None
    ) -> list[SessionSummary]:
        """Summaries newest-first by ``updated`` (see ``listing_order``), at most ``limit``."""
        return self.listing(archived, include_active, limit)[0]

    def listing(
        self, archived: bool = False, include_active: bool = True, limit: int | None = None
    ) -> tuple[list[SessionSummary], dict[str, list[str]]]:
        """The newest ``limit`` summaries and, for each of them, the ids of the sessions
        forked or compacted from it (oldest first) among all those listed.

        From the index when it is current (then only ``limit`` rows are read), else
        from the files."""
        indexed = self._indexed_listing(archived, include_active, limit)
        names = None
        if indexed is not None:
            shown, children, names = indexed
        else:
            every = self._read_summaries(archived, include_active)
            children = children_map(every)
            shown = every[:limit] if limit else every
        self._add_names(shown, self.names() if names is None else names)
        return shown, {s.id: children[s.id] for s in shown if s.id in children}

    def _add_names(self, summaries: list[SessionSummary], names: dict[str, list[str]]) -> None:
        if not names:
            return
        real_dirs: dict[str, str] = {}  # sessions sit directly in a (resolved) folder
        for summary in summaries:
            folder, base = os.path.split(summary.path)
            if folder not in real_dirs:
                real_dirs[folder] = os.path.realpath(folder)
            summary.names = names.get(os.path.join(real_dirs[folder], base), [])

    def _read_summaries(self, archived: bool, include_active: bool) -> list[SessionSummary]:
        """Every file read (on every core when there are many), in list order."""
        from taurus_ops.store.parallel import Workers

        sources: list[tuple[str, bool]] = []
        if include_active:
            sources += [(str(p), False) for p in self.files()]
        if archived:
            sources += [(str(p), True) for p in self.files(archived=True)]
        with Workers(len(sources)) as workers:
            out = [s for s in workers.map(summary_or_none, sources) if s is not None]
        return listing_order(out)

    def _indexed_listing(
        self, archived: bool, include_active: bool, limit: int | None
    ) -> tuple[list[SessionSummary], dict[str, list[str]], dict[str, list[str]] | None] | None:
        """``listing`` from the index (refreshed from the files) if one exists, else None;
        with the names as the refresh found the links (None: list the folder).

        The index stores exactly what ``summarize`` made of each file, so the result is
        the same as reading every file. ``list`` never builds or rebuilds the index
        and does not index hundreds of changed files; any trouble with it, and the
        files are read instead.
        """
        if self.index_home is None or not (self.index_home / "index.sqlite").exists():
            return None
        if not (archived or include_active):
            return [], {}, None
        try:
            from taurus_ops.store.index import Index

            with Index.for_dirs(self.index_home, self.session_dir, self.archive_dir) as index:
                if not index.is_current():  # old or damaged: search rebuilds it, not list
                    return None
                # many changed files: reading them plainly is quicker than indexing them
                shown = index.summaries(archived, include_active, max_reads=200, limit=limit)
                if shown is None:
                    return None
                parents = [s.id for s in shown]
                kids = index.children(parents, archived, include_active)
                links = index.links()
        except Exception:  # a cache: whatever went wrong, the files still answer
            return None
        children: dict[str, list[str]] = {}
        for child in sorted(kids, key=lambda c: c.shown_created or c.shown_updated):
            children.setdefault(child.parent, []).append(child.id)
        names = None if links is None else names_of(self.session_dir, [n for n, _ in links])
        return shown, children, names

    # -- archive -------------------------------------------------------------------------
    def archive(self, path: Path) -> Path:
        """Move a session file into the archive, re-pointing its names. Returns the new path."""
        from taurus_ops.store.move import move_file, repoint_names

        if self.archive_dir is None:
            raise UsageError("no archive directory is configured (sessions.archiveDirectory)")
        new = move_file(Path(path), self.archive_dir)
        repoint_names(self.session_dir, Path(path), new)
        return new

    def unarchive(self, path: Path) -> Path:
        """Move an archived session back into the session directory, re-pointing its names."""
        from taurus_ops.store.move import move_file, repoint_names

        new = move_file(Path(path), self.session_dir)
        repoint_names(self.session_dir, Path(path), new)
        return new

    def _in_archive(self, path: Path) -> bool:
        return self.archive_dir is not None and inside(path, self.archive_dir)


def _modified(folder: Path) -> list[tuple[float, str]]:
    """(mtime, path) of the session files in ``folder``, from one listing (no path
    objects: at 100,000 sessions they cost more than the stats)."""
    out = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if is_session_file(entry):
                    try:
                        out.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
                    except OSError:
                        continue
    except (FileNotFoundError, NotADirectoryError):
        return []
    return out
