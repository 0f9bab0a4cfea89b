"""The sync state: what each session was at the last sync, here and on the remote.

``~/.taurus/sync/<hash>.json`` (0600), one file per (remote, session directory). For
each session: the file name, archived state, names and sha256 it had here, the file's
size, mtime and inode (to spare re-hashing it), and the remote object's version. A
session changed here if its state differs from the record, and on the remote if the
object's version differs. Besides, the file checkpoints known to be on the remote
(uploaded, found there, or fetched from there: an object under its sha256 never
changes), so no blob is uploaded twice, and those found missing or damaged there (not
asked for again). Losing the file loses nothing: the next sync compares contents
instead, and a blob already there is simply found there again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.remote.codec import state_digest
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, ensure_dir

FOLDER = "sync"


@dataclass
class SyncState:
    path: Path
    remote: str
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    marker: dict[str, Any] | None = None
    marker_etag: str | None = None
    device: dict[str, Any] = field(default_factory=dict)  # our devices/ record: etag, written
    last_sync: str | None = None
    journal: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> etag, state
    listed_at: str | None = None  # the last full listing after which the state was in step
    blobs: set[str] = field(default_factory=set)  # checkpoint sha256s the remote holds
    refused: dict[str, str] = field(default_factory=dict)  # sha256 -> why it could not be had
    dirty: bool = False  # changed since loaded or saved

    def digest(self, sid: str) -> str | None:
        record = self.sessions.get(sid)
        if not record:
            return None
        return state_digest(
            record.get("file", ""),
            record.get("sha256", ""),
            bool(record.get("archived")),
            list(record.get("names", [])),
        )

    def etag(self, sid: str) -> str | None:
        record = self.sessions.get(sid)
        return record.get("etag") if record else None

    def record(self, sid: str, entry: Any, etag: str) -> None:
        """Remember ``entry`` (a LocalEntry) as in step with the remote version ``etag``."""
        self.dirty = True
        self.sessions[sid] = {
            "file": entry.file,
            "archived": entry.archived,
            "names": list(entry.names),
            "sha256": entry.sha256,
            "size": entry.size,
            "mtimeNs": entry.mtime_ns,
            "ino": entry.ino,
            "etag": etag,
        }

    def forget(self, sid: str) -> None:
        if self.sessions.pop(sid, None) is not None:
            self.dirty = True

    def save(self, force: bool = False) -> None:
        """Write the state if anything in it changed (or ``force``)."""
        if not (self.dirty or force):
            return
        data = {
            "format": 1,
            "remote": self.remote,
            "lastSync": self.last_sync,
            "marker": self.marker,
            "markerEtag": self.marker_etag,
            "device": self.device,
            "journal": self.journal,
            "listedAt": self.listed_at,
            "sessions": self.sessions,
            "checkpoints": sorted(self.blobs),
            "checkpointsRefused": dict(sorted(self.refused.items())),
        }
        ensure_dir(self.path.parent)
        atomic_write(self.path, fmt.dumps(data))
        self.dirty = False


def state_path(home: Path, remote_url: str, session_dir: Path) -> Path:
    key = f"{remote_url}\0{os.path.realpath(session_dir)}"
    return Path(home) / FOLDER / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def load_state(home: Path, remote_url: str, session_dir: Path) -> SyncState:
    path = state_path(home, remote_url, session_dir)
    state = SyncState(path, remote_url)
    try:
        data = fmt.loads(path.read_bytes())
    except (OSError, ValueError):
        return state
    if not isinstance(data, dict) or data.get("remote") != remote_url:
        return state
    sessions = data.get("sessions")
    if isinstance(sessions, dict):
        state.sessions = {k: v for k, v in sessions.items() if isinstance(v, dict)}
    marker = data.get("marker")
    state.marker = marker if isinstance(marker, dict) else None
    state.marker_etag = data.get("markerEtag") if isinstance(data.get("markerEtag"), str) else None
    device = data.get("device")
    state.device = device if isinstance(device, dict) else {}
    state.last_sync = data.get("lastSync") if isinstance(data.get("lastSync"), str) else None
    journal = data.get("journal")
    if isinstance(journal, dict):
        state.journal = {k: v for k, v in journal.items() if isinstance(v, dict)}
    state.listed_at = data.get("listedAt") if isinstance(data.get("listedAt"), str) else None
    blobs = data.get("checkpoints")
    if isinstance(blobs, list):
        state.blobs = {b for b in blobs if isinstance(b, str)}
    refused = data.get("checkpointsRefused")
    if isinstance(refused, dict):
        state.refused = {k: str(v) for k, v in refused.items() if isinstance(k, str)}
    return state
