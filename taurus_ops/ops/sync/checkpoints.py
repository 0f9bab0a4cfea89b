"""The file checkpoints in the sync: the blobs a synced session names travel with it.

Each blob is one immutable, content-addressed object, ``checkpoints/<sha256>`` (with
encryption: an HMAC of the sha256, and the bytes sealed like the sessions, see
``codec.seal_blob``), one for every session that names it: a fork's blobs, or those
of the other version in a conflict, are stored and uploaded once.

Pushing a session first uploads each blob it names that the sync state does not know
the remote holds, with a conditional create (a racing push of the same content gets
Conflict, which only means it is there), then the session: any version of a session
another machine can see has its blobs there already, except those this machine no
longer had (pruned by ``checkpoints.maxBytes``). A sync with nothing to move uploads
nothing and reads no blob.

Pulling a session brings each blob it names that is not here: a hard link from its
parent's folder (a fork beside its parent, the other version of a conflict beside the
original) or from another session of the same pull, else a download, checked against
its sha256 before it is kept (0600, atomically, ``CheckpointStore.save``). A blob
missing or damaged on the remote is one warning line, and is not asked for again; the
session itself is synced all the same.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taurus_ops.remote import CHECKPOINTS
from taurus_ops.remote.base import Conflict
from taurus_ops.remote.codec import BadObject, keyed, open_blob, seal_blob
from taurus_ops.store import format as fmt
from taurus_ops.store.checkpoints import (
    ABSENT,
    CheckpointMissing,
    CheckpointStore,
    changes,
    referenced,
)
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.sync.state import SyncState
    from taurus_ops.remote import Connection

MARK = b'"checkpoint"'  # in the bytes of every session that names a checkpoint
MISSING, DAMAGED = "missing", "damaged"  # on the remote: remembered, not asked for again


@dataclass
class Carried:
    """What moved: blobs uploaded, downloaded, and linked from a folder here instead."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    linked: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "uploaded": self.uploaded,
            "uploadedBytes": self.uploaded_bytes,
            "downloaded": self.downloaded,
            "downloadedBytes": self.downloaded_bytes,
            "linked": self.linked,
        }

    def summary(self) -> str:
        parts = []
        if self.uploaded:
            parts.append(f"uploaded {self.uploaded}")
        if self.downloaded:
            parts.append(f"downloaded {self.downloaded}")
        if self.linked:
            parts.append(f"linked {self.linked}")
        return f"checkpoints: {', '.join(parts)}" if parts else ""


def naming(body: bytes) -> dict[str, Any] | None:
    """The session document of ``body`` if it names any checkpoint, else None."""
    if MARK not in body:
        return None
    try:
        data = fmt.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and referenced(data) else None


class Blobs:
    """The checkpoint blobs of one sync: pushed from any transfer thread, pulled in a batch."""

    def __init__(
        self,
        conn: Connection,
        store: CheckpointStore | None,
        state: SyncState,
        log: logging.Logger,
        workers: int = 8,
    ) -> None:
        self.conn = conn
        self.store = store
        self.state = state
        self.log = log
        self.workers = workers
        self.carried = Carried()
        self.warnings: list[str] = []
        self._there = set(state.blobs)
        self._refused = dict(state.refused)
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Lock] = {}

    def key(self, sha: str) -> str:
        return CHECKPOINTS + keyed(sha, self.conn.key)

    def flush(self) -> None:
        """Put what is now known of the remote into the sync state (the main thread)."""
        with self._lock:
            there, refused = set(self._there), dict(self._refused)
        if there != self.state.blobs or refused != self.state.refused:
            self.state.blobs, self.state.refused = there, refused
            self.state.dirty = True

    def warn(self, text: str) -> None:
        with self._lock:
            self.warnings.append(text)
        self.log.warning("sync: %s", text)

    # -- pushing ----------------------------------------------------------------------------
    def push(self, sid: str, body: bytes) -> None:
        """Upload the blobs session ``sid`` (``body``) names that the remote lacks."""
        if self.store is None:
            return
        data = naming(body)
        if data is None:
            return
        for sha in sorted(referenced(data)):
            with self._claim(sha):  # two sessions naming one blob: uploaded once
                with self._lock:
                    if sha in self._there:
                        continue
                self._upload(sid, sha)

    @contextlib.contextmanager
    def _claim(self, sha: str) -> Iterator[None]:
        with self._lock:
            claim = self._claims.setdefault(sha, threading.Lock())
        with claim:
            yield

    def _upload(self, sid: str, sha: str) -> None:
        assert self.store is not None
        if not self.store.has(sid, sha):
            return  # pruned here by checkpoints.maxBytes: nothing to send
        try:
            blob = self.store.read(sid, sha)
        except CheckpointMissing:
            self.warn(
                f"checkpoint {sha[:12]} of session {sid} is damaged here and was not uploaded "
                "(`taurus-ops doctor --full --fix` moves it to the quarantine)"
            )
            return
        except OSError as exc:
            self.warn(
                f"checkpoint {sha[:12]} of session {sid} cannot be read here "
                f"({exc.strerror or exc}) and was not uploaded"
            )
            return
        try:
            self.conn.remote.put_new(self.key(sha), seal_blob(blob, self.conn.key), {})
        except Conflict:
            pass  # another push made it first: an object of that name holds that content
        else:
            with self._lock:
                self.carried.uploaded += 1
                self.carried.uploaded_bytes += len(blob)
        with self._lock:
            self._there.add(sha)
            self._refused.pop(sha, None)

    # -- pulling ----------------------------------------------------------------------------
    def lacks(self, sid: str, data: dict[str, Any]) -> bool:
        """True if session ``sid`` names a blob its folder here does not hold."""
        return self.store is not None and any(
            not self.store.has(sid, sha) for sha in referenced(data)
        )

    def pull(self, sessions: list[tuple[str, dict[str, Any]]]) -> set[str]:
        """Bring the blobs each of ``sessions`` (id, document: just written here) names.

        RemoteError (the remote failing) goes to the caller; a blob missing or damaged
        there is a warning. Returns the sessions still lacking a blob this machine could
        not keep (a full disk): not in step yet, so the next sync tries again."""
        store = self.store
        left: set[str] = set()
        if store is None or not sessions:
            return left
        wanted: dict[str, list[str]] = {}  # sha -> the sessions that need it, parents first
        for sid, data in _parents_first(sessions):
            parent = data.get("parentSession")
            for sha in sorted(referenced(data)):
                if store.has(sid, sha):
                    continue
                if _linked(store, parent, sid, sha):
                    with self._lock:  # (uploads may be running on other threads)
                        self.carried.linked += 1
                    continue
                wanted.setdefault(sha, []).append(sid)
        documents = dict(sessions)
        asked = {sha: sids for sha, sids in wanted.items() if sha not in self._refused}
        if not asked:
            return left
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures: list[tuple[str, Future[str | None]]] = [
                (sha, pool.submit(self._download, sha, sids)) for sha, sids in asked.items()
            ]
            try:
                for sha, future in futures:
                    why = future.result()
                    if why is None:
                        continue
                    sid = asked[sha][0]
                    if why in (MISSING, DAMAGED):
                        self._refused[sha] = why
                        self.warn(_refusal(sha, sid, documents[sid], why, self.conn.url))
                    else:  # this machine could not keep it: the next sync tries again
                        left.update(asked[sha])
                        self.warn(
                            f"checkpoint {sha[:12]} of session {sid} could not be kept here "
                            f"({why}); the next sync tries again"
                        )
            except BaseException:
                for _, future in futures:
                    future.cancel()
                raise
        return left

    def _download(self, sha: str, sids: list[str]) -> str | None:
        """Fetch one blob into the first session's folder and link it into the others';
        None when done, else why not (MISSING, DAMAGED, or why it could not be kept)."""
        assert self.store is not None
        key = self.key(sha)
        fetched = self.conn.remote.get(key)
        if fetched is None:
            return MISSING
        try:
            blob = open_blob(fetched.data, self.conn.key, sha, f"{self.conn.url}/{key}")
        except BadObject:
            return DAMAGED
        try:
            self.store.save(sids[0], blob)
            linked = sum(self.store.share(sids[0], other, [sha]) for other in sids[1:])
        except OSError as exc:  # a full disk, a folder not ours
            return exc.strerror or str(exc)
        with self._lock:
            self.carried.downloaded += 1
            self.carried.downloaded_bytes += len(blob)
            self.carried.linked += linked
            self._there.add(sha)
        return None


def _linked(store: CheckpointStore, parent: Any, sid: str, sha: str) -> bool:
    """Link the blob ``sha`` from the folder of ``parent`` (an id) if it is there."""
    if not (isinstance(parent, str) and fmt.is_valid_token(parent)):
        return False
    return store.has(parent, sha) and store.share(parent, sid, [sha]) > 0


def _parents_first(sessions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``sessions`` ordered so a session's parent (when among them) comes before it."""
    by_id = dict(sessions)

    def depth(sid: str) -> int:
        seen = {sid}
        count = 0
        parent = by_id[sid].get("parentSession")
        while isinstance(parent, str) and parent in by_id and parent not in seen:
            seen.add(parent)
            count += 1
            parent = by_id[parent].get("parentSession")
        return count

    return sorted(sessions, key=lambda item: (depth(item[0]), item[0]))


def _refusal(sha: str, sid: str, data: dict[str, Any], why: str, url: str) -> str:
    """One line: which checkpoint of which session could not be had, and what that costs."""
    restores = sorted({c.file for c in changes(data) if c.before == sha and c.before != ABSENT})
    wrote = sorted({c.file for c in changes(data) if c.after == sha})
    if restores:
        cost = f"/rewind here cannot restore {', '.join(restores)} to it"
    else:
        cost = f"only the +/- line counts of {', '.join(wrote) or 'a change'} are affected"
    where = "is not on" if why == MISSING else "is damaged on"
    return (
        f"checkpoint {sha[:12]} of session {sid} {where} the remote {url}; not kept "
        f"({cost}); the session itself is synced"
    )


def local_totals(store: CheckpointStore | None) -> dict[str, int]:
    """Checkpoint files and bytes here (a blob linked into several folders counted once)."""
    if store is None:
        return {"localFiles": 0, "localBytes": 0}
    blobs = store.blobs()
    return {"localFiles": len({b.inode for b in blobs}), "localBytes": store.size()}


def remote_totals(conn: Connection) -> dict[str, int]:
    """Checkpoint objects and bytes on the remote (one listing of ``checkpoints/``)."""
    count = size = 0
    for item in conn.remote.list(CHECKPOINTS):
        count += 1
        size += item.size
    return {"remoteObjects": count, "remoteBytes": size}


def totals(conn: Connection, store: Any) -> dict[str, int]:
    """``remote status``'s checkpoint counts, here and on the remote."""
    checkpoints = getattr(store, "checkpoints", None)
    return {**local_totals(checkpoints), **remote_totals(conn)}


def describe_totals(found: dict[str, int]) -> str:
    from taurus_ops.words import human_size

    return (
        f"checkpoints: {plural(found['localFiles'], 'file')}, {human_size(found['localBytes'])} "
        f"here; {plural(found['remoteObjects'], 'object')}, "
        f"{human_size(found['remoteBytes'])} on the remote"
    )
