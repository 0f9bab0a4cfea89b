"""What the sync sees of this machine: each session file, its hash, names and archived state.

Only session files (visible ``*.json`` in the session directory and the archive) are
read here, and the executor reads only the file checkpoints those sessions name
(checkpoints.py); the quarantine, the index, locks, logs, config and anything else in
the home never are, so nothing else can ever be uploaded. A file's sha256 is read from the
sync state when its size, modification time and inode are the ones recorded, so a
sync with nothing changed does not read 10,000 files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.remote.codec import state_digest
from taurus_ops.store import format as fmt
from taurus_ops.store.lock import is_locked
from taurus_ops.store.refs import id_from_file_name, scan


@dataclass(frozen=True)
class LocalEntry:
    id: str
    path: str
    file: str
    archived: bool
    names: tuple[str, ...]
    sha256: str
    size: int
    mtime_ns: int
    ino: int
    locked: bool = False

    @property
    def digest(self) -> str:
        return state_digest(self.file, self.sha256, self.archived, self.names)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass
class LocalSnapshot:
    sessions: dict[str, LocalEntry] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why it is left out)


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the identity of exactly that version (one open file)."""
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        return handle.read(), st


def entry_for(
    path: Path,
    archived: bool,
    names: tuple[str, ...],
    known: dict[str, Any] | None = None,
    data: bytes | None = None,
    st: os.stat_result | None = None,
    check_lock: bool = True,
) -> LocalEntry:
    """A LocalEntry for ``path``; ``known`` (its sync-state record) spares re-hashing it."""
    if st is None:
        st = os.stat(path)
    sha = None
    if data is None and known is not None and _same_file(known, path.name, st):
        sha = known.get("sha256")
    if not isinstance(sha, str):
        if data is None:
            data, st = read_file(path)
        sha = hashlib.sha256(data).hexdigest()
    return LocalEntry(
        id=id_from_file_name(path.name),
        path=str(path),
        file=path.name,
        archived=archived,
        names=tuple(sorted(names)),
        sha256=sha,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ino=st.st_ino,
        locked=is_locked(path) if check_lock else False,
    )


def _same_file(known: dict[str, Any], name: str, st: os.stat_result) -> bool:
    return (
        known.get("file") == name
        and known.get("size") == st.st_size
        and known.get("mtimeNs") == st.st_mtime_ns
        and known.get("ino") == st.st_ino
    )


def names_by_target(session_dir: Path) -> dict[str, list[str]]:
    """Real path of a session -> its names (the ``NAME.json`` links in the session directory)."""
    out: dict[str, list[str]] = {}
    try:
        entries = list(os.scandir(session_dir))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.endswith(".json") and not entry.name.startswith(".") and entry.is_symlink():
            real = os.path.realpath(entry.path)
            if os.path.isfile(real) and fmt.is_valid_token(entry.name[:-5]):
                out.setdefault(real, []).append(entry.name[:-5])
    return out


def take_snapshot(
    store: Any, known: dict[str, dict[str, Any]], lock_ids: set[str] | None = None
) -> LocalSnapshot:
    """Every session here (active and archived), keyed by id.

    Whether a chat holds a session open matters only where a download could replace it;
    ``lock_ids`` limits that check to those ids (None: every session).
    """
    snapshot = LocalSnapshot()
    names = names_by_target(Path(store.session_dir))
    seen: dict[str, str] = {}
    folders = [(Path(store.session_dir), False)]
    if store.archive_dir is not None:
        folders.append((Path(store.archive_dir), True))
    for folder, archived in folders:
        real_folder = os.path.realpath(folder)
        for path in sorted(scan(folder)):
            sid = id_from_file_name(path.name)
            if not fmt.is_valid_token(sid):
                snapshot.problems.append((str(path), "not a session file name (DATE_ID.json)"))
                continue
            if sid in seen:
                snapshot.problems.append(
                    (str(path), f"id {sid} is also {seen[sid]}; run taurus-ops doctor")
                )
                snapshot.sessions.pop(sid, None)
                continue
            seen[sid] = str(path)
            real = os.path.join(real_folder, path.name)
            try:
                entry = entry_for(
                    path,
                    archived,
                    tuple(names.get(real, ())),
                    known.get(sid),
                    check_lock=lock_ids is None or sid in lock_ids,
                )
            except FileNotFoundError:
                continue  # removed while scanning
            except OSError as exc:
                snapshot.problems.append((str(path), exc.strerror or str(exc)))
                continue
            snapshot.sessions[sid] = entry
    return snapshot
