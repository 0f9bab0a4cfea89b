"""Carrying out a sync plan: transfers on a few threads, every local change on this one.

Uploads are conditional writes (``put_new`` / ``put_replace`` on the version the plan
saw). When one finds the remote object created or changed meanwhile, the object is
fetched and compared: the same state is simply recorded (an upload whose answer was
lost, a sync cut off before it saved its state); a different one is a conflict. In a
conflict the local session stays as it is and the other version arrives as a new
session, ``"parentSession"`` pointing at the original and a title naming the device
it came from; both are then uploaded. A download replaces a local file only under
its lock and only if it is still what the plan saw, so a session open in a chat is
never replaced under it.

The file checkpoints a session names go with it (checkpoints.py): uploaded before the
session, brought here after it. A session downloaded here that lacks some of its
blobs is recorded in the sync state only once they are in (or found missing or
damaged on the remote), so a sync cut off in between finds it again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.errors import SessionLocked, TaurusError
from taurus_ops.ops.sync.checkpoints import Blobs, Carried, naming
from taurus_ops.ops.sync.local import LocalEntry, entry_for, names_by_target, read_file
from taurus_ops.ops.sync.plan import (
    CONFLICT,
    DOWNLOADS,
    UPLOAD_NEW,
    UPLOADS,
    Action,
    Plan,
)
from taurus_ops.ops.sync.state import SyncState
from taurus_ops.remote import SESSIONS, Connection
from taurus_ops.remote.base import Conflict, RemoteError
from taurus_ops.remote.codec import BadObject, Meta, decode, encode, keyed, sha256_of
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import ensure_dir, fsync_dir, point_link, temp_name
from taurus_ops.store.lock import SessionLock
from taurus_ops.store.session import title_of

WORKERS = 8
SAVE_EVERY = 500  # completed actions between saves of the sync state
SETTLE_TRIES = 4


@dataclass
class Moved:
    id: str
    action: str  # uploaded | downloaded | same
    file: str


@dataclass
class ConflictKept:
    id: str
    copy_id: str
    copy_file: str
    device: str


@dataclass
class Moves:
    """What one sync carried out of its plan."""

    plan: Plan
    moved: list[Moved] = field(default_factory=list)
    conflicts: list[ConflictKept] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why) found while running
    failed: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None  # a remote error that stopped the sync
    checkpoints: Carried = field(default_factory=Carried)  # the blobs that moved with them
    warnings: list[str] = field(default_factory=list)  # a checkpoint missing or damaged ...

    def count(self, action: str) -> int:
        return sum(1 for m in self.moved if m.action == action)

    def as_json(self) -> dict[str, Any]:
        return {
            "uploaded": [m.id for m in self.moved if m.action == "uploaded"],
            "downloaded": [m.id for m in self.moved if m.action == "downloaded"],
            "alreadyInStep": [m.id for m in self.moved if m.action == "same"],
            "conflicts": [
                {"id": c.id, "copy": c.copy_id, "file": c.copy_file, "device": c.device}
                for c in self.conflicts
            ],
            "skippedWhileRunning": [{"id": i, "why": w} for i, w in self.skipped],
            "failed": [{"id": i, "why": w} for i, w in self.failed],
            "stopped": self.stopped,
            "checkpoints": self.checkpoints.as_json(),
            "warnings": self.warnings,
        }


def object_key(sid: str) -> str:
    return f"{SESSIONS}{sid}.json"


class Executor:
    def __init__(
        self,
        conn: Connection,
        store: Any,
        state: SyncState,
        log: logging.Logger | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.conn = conn
        self.store = store
        self.state = state
        self.log = log or logging.getLogger("taurus_ops.ops.sync")
        self.workers = workers
        self.session_dir = Path(store.session_dir)
        self.archive_dir = Path(store.archive_dir) if store.archive_dir is not None else None
        self._since_save = 0
        self._touched: set[Path] = set()  # folders written without an fsync yet
        self.blobs = Blobs(conn, getattr(store, "checkpoints", None), state, self.log, workers)
        # downloaded here but still lacking checkpoints: (id, entry, version, document)
        self._lacking: list[tuple[str, LocalEntry, str, dict[str, Any]]] = []

    # -- the whole plan -------------------------------------------------------------------
    def run(self, plan: Plan) -> Moves:
        result = Moves(plan)
        for sid in plan.forget:
            self.state.forget(sid)
        try:
            uploads = plan.of(*UPLOADS)
            downloads = plan.of(*DOWNLOADS)
            self._transfer(uploads, self._upload, self._uploaded, result)
            self._transfer(downloads, self._download, self._downloaded, result)
            self._bring_checkpoints()
            for action in plan.of(CONFLICT):
                self._settle(action.id, result, action.local)
        except RemoteError as exc:
            result.stopped = str(exc)
        finally:
            result.checkpoints = self.blobs.carried
            result.warnings = list(self.blobs.warnings)
            self.save_state()
        return result

    def _bring_checkpoints(self) -> None:
        """The blobs the sessions just downloaded lack; then those sessions are in step."""
        lacking, self._lacking = self._lacking, []
        left = self.blobs.pull([(sid, data) for sid, _entry, _etag, data in lacking])
        for sid, entry, etag, _data in lacking:
            if sid not in left:
                self.state.record(sid, entry, etag)

    def save_state(self) -> None:
        """Save the sync state, after making durable every folder it speaks of.

        Downloads are written (file fsynced) and linked without an fsync of their folder
        each; the folders are fsynced here, once, before the state records them: a crash
        never leaves a state that claims a file the disk lost.
        """
        for folder in sorted(self._touched):
            fsync_dir(folder)
        self._touched.clear()
        self.blobs.flush()
        self.state.save()

    def _transfer(
        self,
        actions: list[Action],
        work: Callable[[Action], Any],
        done: Callable[[Action, Any, Moves], None],
        result: Moves,
    ) -> None:
        if not actions:
            return
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures: list[tuple[Action, Future[Any]]] = []
            try:
                for action in actions:
                    futures.append((action, pool.submit(work, action)))
                for action, future in futures:
                    try:
                        outcome = future.result()
                    except Conflict:
                        self._settle(action.id, result, action.local)
                        continue
                    except BadObject as exc:
                        result.failed.append((action.id, str(exc)))
                        continue
                    except FileNotFoundError:
                        result.skipped.append((action.id, "gone here since the plan was made"))
                        continue
                    except RemoteError:
                        raise
                    except (TaurusError, OSError) as exc:
                        result.failed.append(
                            (action.id, getattr(exc, "strerror", None) or str(exc))
                        )
                        continue
                    done(action, outcome, result)
                    self._progress()
            except BaseException:
                for _, future in futures:
                    future.cancel()
                raise

    def _progress(self) -> None:
        self._since_save += 1
        if self._since_save >= SAVE_EVERY:
            self.save_state()
            self._since_save = 0

    # -- uploads ----------------------------------------------------------------------------
    def _object(self, entry: LocalEntry, body: bytes) -> tuple[bytes, dict[str, str]]:
        meta = Meta(
            file=entry.file,
            sha256=entry.sha256,
            device=self.conn.device,
            archived=entry.archived,
            names=entry.names,
            mtime=entry.mtime,
        )
        data = encode(meta, body, self.conn.key)
        return data, {"sha256": keyed(entry.sha256, self.conn.key), "device": self.conn.device}

    def _fresh(self, entry: LocalEntry) -> tuple[LocalEntry, bytes]:
        """The session as it is now (a chat may have saved since the plan)."""
        data, st = read_file(Path(entry.path))
        return entry_for(Path(entry.path), entry.archived, entry.names, None, data, st), data

    def _upload(self, action: Action) -> tuple[LocalEntry, str]:
        assert action.local is not None
        entry, body = self._fresh(action.local)
        self.blobs.push(action.id, body)  # before the session: whoever sees it can have them
        data, metadata = self._object(entry, body)
        key = object_key(action.id)
        if action.kind == UPLOAD_NEW or action.remote is None:
            return entry, self.conn.remote.put_new(key, data, metadata)
        return entry, self.conn.remote.put_replace(key, data, action.remote.etag, metadata)

    def _uploaded(self, action: Action, outcome: tuple[LocalEntry, str], result: Moves) -> None:
        entry, etag = outcome
        self.state.record(action.id, entry, etag)
        result.moved.append(Moved(action.id, "uploaded", entry.file))
        self.log.info("sync: uploaded %s (%s, %d bytes)", action.id, entry.file, entry.size)

    # -- downloads --------------------------------------------------------------------------
    def _download(self, action: Action) -> tuple[Meta, bytes, str, Path]:
        """Fetch and check one session, and stage it (fsynced) beside where it goes.

        The staging runs on the transfer threads, so the file fsyncs overlap; only
        putting the file in place happens on the main thread, under the session's lock.
        """
        key = object_key(action.id)
        fetched = self.conn.remote.get(key)
        if fetched is None:
            raise FileNotFoundError(key)
        meta, body = decode(fetched.data, self.conn.key, f"{self.conn.url}/{key}")
        dest = self.folder_for(meta.archived) / meta.file
        ensure_dir(dest.parent)
        staged = temp_name(dest)
        _write_synced(staged, body)
        return meta, body, fetched.etag, staged

    def _downloaded(
        self, action: Action, outcome: tuple[Meta, bytes, str, Path], result: Moves
    ) -> None:
        meta, body, etag, staged = outcome
        try:
            entry = self.apply(action.id, meta, body, action.local, staged)
        except _Left as why:
            result.skipped.append((action.id, str(why)))
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
        document = naming(body)
        if document is not None and self.blobs.lacks(action.id, document):
            self._lacking.append((action.id, entry, etag, document))
        else:
            self.state.record(action.id, entry, etag)
        result.moved.append(Moved(action.id, "downloaded", entry.file))
        self.log.info("sync: downloaded %s (%s from %s)", action.id, entry.file, meta.device)

    def folder_for(self, archived: bool) -> Path:
        if archived and self.archive_dir is not None:
            return self.archive_dir
        return self.session_dir

    def apply(
        self,
        sid: str,
        meta: Meta,
        body: bytes,
        local: LocalEntry | None,
        staged: Path | None = None,
    ) -> LocalEntry:
        """Make the session here what the remote has: bytes, place, names. Returns it.

        ``staged`` is a temporary file beside the destination already holding ``body``.
        """
        dest = self.folder_for(meta.archived) / meta.file
        if local is None:
            _create(dest, body, durable=False, staged=staged)
            self._touched.add(dest.parent)
            _set_mtime(dest, meta.mtime)
            names = self._apply_names(dest, set(meta.names), set(), None)
            return entry_for(dest, meta.archived, names, None, body, os.stat(dest))
        old = Path(local.path)
        lock = SessionLock(old)
        try:
            lock.acquire()
        except SessionLocked:
            raise _Left("open in a chat here: left for the next sync") from None
        try:
            if not _unchanged(old, local):
                raise _Left("changed here during the sync: left for the next sync")
            if dest == old:
                if sha256_of(body) != local.sha256:
                    _replace(dest, body, staged)
            else:
                _create(dest, body, durable=False, staged=staged)
                os.unlink(old)
                self._touched.add(old.parent)
            self._touched.add(dest.parent)
            _set_mtime(dest, meta.mtime)
            names = self._apply_names(dest, set(meta.names), set(local.names), old)
        finally:
            lock.release()
        return entry_for(dest, meta.archived, names, None, body, os.stat(dest))

    def _apply_names(
        self, dest: Path, want: set[str], had: set[str], old: Path | None
    ) -> tuple[str, ...]:
        """Give ``dest`` exactly the names ``want`` where they are free; returns its names."""
        if not want and not had:
            return ()
        real_old = os.path.realpath(old) if old is not None else None
        for name in sorted(had - want):
            link = self.session_dir / f"{name}.json"
            if link.is_symlink() and os.path.realpath(link) in (real_old, os.path.realpath(dest)):
                link.unlink()
        for name in sorted(want):
            link = self.session_dir / f"{name}.json"
            if link.is_symlink():
                target = os.path.realpath(link)
                if target == os.path.realpath(dest):
                    continue
                if target == real_old or not os.path.exists(target):
                    point_link(link, dest, durable=False)
                    continue
                self.log.warning("sync: name %s is taken here by %s; not moved", name, target)
                continue
            if link.exists():
                continue  # a real file of that name: never replaced by a name
            point_link(link, dest, durable=False)
        self._touched.add(self.session_dir)
        found = names_by_target(self.session_dir).get(os.path.realpath(dest), [])
        return tuple(sorted(found))

    # -- conflicts and lost answers -----------------------------------------------------------
    def _settle(self, sid: str, result: Moves, planned: LocalEntry | None) -> None:
        """Bring one session into step after a conditional write failed (or both changed)."""
        key = object_key(sid)
        for _ in range(SETTLE_TRIES):
            here = self._current(sid, planned)
            if here is None:
                result.skipped.append((sid, "gone here since the plan was made"))
                return
            entry, body = here
            fetched = self.conn.remote.get(key)
            data, metadata = self._object(entry, body)
            if fetched is None:
                self.blobs.push(sid, body)
                try:
                    etag = self.conn.remote.put_new(key, data, metadata)
                except Conflict:
                    continue
                self.state.record(sid, entry, etag)
                result.moved.append(Moved(sid, "uploaded", entry.file))
                return
            try:
                meta, their_body = decode(fetched.data, self.conn.key, f"{self.conn.url}/{key}")
            except BadObject as exc:
                result.failed.append((sid, str(exc)))
                return
            if meta.digest == entry.digest:
                document = naming(body)
                if document is not None and self.blobs.pull([(sid, document)]):
                    return  # (a download cut off before its checkpoints came: still not all)
                self.state.record(sid, entry, fetched.etag)
                result.moved.append(Moved(sid, "same", entry.file))
                return
            if meta.sha256 != entry.sha256:
                kept = self._keep_theirs(sid, meta, their_body, fetched.etag, result)
                if kept is None:
                    return
            self.blobs.push(sid, body)
            try:
                etag = self.conn.remote.put_replace(key, data, fetched.etag, metadata)
            except Conflict:
                continue  # changed again meanwhile: look again
            self.state.record(sid, entry, etag)
            result.moved.append(Moved(sid, "uploaded", entry.file))
            self.log.info("sync: uploaded %s (kept here in a conflict)", sid)
            return
        result.failed.append((sid, "kept changing on the remote while syncing; try again"))

    def _current(self, sid: str, planned: LocalEntry | None) -> tuple[LocalEntry, bytes] | None:
        if planned is None:
            return None
        try:
            return self._fresh(planned)
        except FileNotFoundError:
            return None

    def _keep_theirs(
        self, sid: str, meta: Meta, body: bytes, etag: str, result: Moves
    ) -> ConflictKept | None:
        """Save the remote's version as a new session here and upload it. None if it failed."""
        date = meta.file.split("_", 1)[0] if "_" in meta.file else fmt.now_iso()[:10]
        taken = self.store.ids()
        for copy_id in conflict_ids(sid, etag):
            copy_body = conflict_copy(body, sid, copy_id, meta.device)
            copy_file = f"{date}_{copy_id}.json"
            dest = self.session_dir / copy_file
            if copy_id in taken and not _holds(dest, copy_body):
                continue  # the id is another session's
            document = naming(copy_body)
            # its checkpoints first (linked from ours, or fetched); if this machine cannot
            # keep them, the conflict is left for the next sync, which tries again
            if document is not None and self.blobs.pull([(copy_id, document)]):
                result.failed.append((sid, "the other version's checkpoints could not be kept"))
                return None
            try:
                _create(dest, copy_body)
            except _Left as why:
                result.failed.append((sid, f"the other version could not be kept: {why}"))
                return None
            break
        else:  # pragma: no cover - sixteen taken ids in a row
            result.failed.append((sid, "no free id for the other version"))
            return None
        entry = entry_for(dest, False, ())
        self.blobs.push(copy_id, copy_body)
        data, metadata = self._object(entry, copy_body)
        try:
            copy_etag: str | None = self.conn.remote.put_new(object_key(copy_id), data, metadata)
        except Conflict:  # uploaded by a run that was cut off: compared on the next sync
            copy_etag = None
        if copy_etag is not None:
            self.state.record(copy_id, entry, copy_etag)
        kept = ConflictKept(sid, copy_id, copy_file, meta.device)
        if all(c.copy_id != copy_id for c in result.conflicts):
            result.conflicts.append(kept)
        self.log.warning(
            "sync: %s changed here and on %s; theirs kept as %s (%s)",
            sid,
            meta.device,
            copy_id,
            copy_file,
        )
        return kept


class _Left(Exception):
    """A session the executor leaves as it is (the reason is the message)."""


def conflict_ids(sid: str, etag: str) -> Iterable[str]:
    """Ids for the other version of ``sid``, first choice first: the same for the same remote
    version, so a sync cut off and run again keeps one copy, not two."""
    seed = hashlib.sha256(f"{sid}\0{etag}".encode()).digest()
    alphabet = fmt.ID_ALPHABET
    for extra in range(16):
        text = "".join(alphabet[b % len(alphabet)] for b in seed[: fmt.ID_LENGTH + extra])
        if text != sid:
            yield text


def _holds(path: Path, body: bytes) -> bool:
    try:
        return path.read_bytes() == body
    except OSError:
        return False


def conflict_copy(body: bytes, sid: str, copy_id: str, device: str) -> bytes:
    """The other version as a session of its own: new id, parentSession, a title naming its device."""
    try:
        data = fmt.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return body  # unreadable as a session: kept byte for byte under the new file name
    title = data.get("title")
    if not (isinstance(title, str) and title.strip()):
        title = title_of(data.get("messages")) or f"session {sid}"
    data["sessionId"] = copy_id
    data["parentSession"] = sid
    data["title"] = f"{fmt.one_line(title)} (from {device})"
    return fmt.dumps(data)


def _create(dest: Path, body: bytes, durable: bool = True, staged: Path | None = None) -> None:
    """Write ``dest`` (0600) only if nothing is there; the same bytes there already is fine.

    The file is fsynced before it is linked into place; ``durable`` fsyncs its folder too
    (otherwise the caller does, before anything relies on the name).
    """
    if dest.exists() or dest.is_symlink():
        with contextlib.suppress(OSError):
            if not dest.is_symlink() and sha256_of(dest.read_bytes()) == sha256_of(body):
                return
        raise _Left(f"a different file {dest} is already here; not replaced")
    ensure_dir(dest.parent)
    tmp = staged or temp_name(dest)
    try:
        if staged is None:
            _write_synced(tmp, body)
        try:
            os.link(tmp, dest)  # never over a file that appeared meanwhile
        except FileExistsError:
            raise _Left(f"a file {dest} appeared here meanwhile; not replaced") from None
        except OSError:
            if dest.exists():
                raise _Left(f"a file {dest} appeared here meanwhile; not replaced") from None
            os.rename(tmp, dest)  # a file system without hard links
        if durable:
            fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _replace(dest: Path, body: bytes, staged: Path | None = None) -> None:
    """Replace ``dest`` by rename from an fsynced temporary file (its folder fsynced later)."""
    tmp = staged or temp_name(dest)
    try:
        if staged is None:
            _write_synced(tmp, body)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_synced(path: Path, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _unchanged(path: Path, entry: LocalEntry) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (entry.size, entry.mtime_ns, entry.ino)


def _set_mtime(path: Path, mtime: float | None) -> None:
    if mtime is not None:
        with contextlib.suppress(OSError):
            os.utime(path, (time.time(), mtime))


__all__ = ["ConflictKept", "Executor", "Moved", "Moves", "conflict_copy", "conflict_ids"]
