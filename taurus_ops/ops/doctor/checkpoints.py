"""The doctor and the file checkpoints: ``~/.taurus/checkpoints/<session-id>/<sha256>``.

What the scan finds (read-only, like the rest of the scan):

* a blob whose bytes do not match its name. Hashing every blob is the ``--full``
  check (each file once: the links a fork shares with its parent are one file); the
  default pass is a stat of each entry, which finds an empty blob whose name is not the
  sha256 of nothing (what a power cut leaves of a write the disk never had);
* a temporary file left by a checkpoint save that was cut off;
* anything else in the store (a file that is not named by a sha256, a link, a folder);
* a mode other than 0600 (files) or 0700 (folders);
* a folder whose session is nowhere here (the session directory, the archive, a
  project's sub-folder): its size, and the command that removes it, are reported, and
  it is never removed by the doctor;
* a checkpoint a session's ``toolCalls`` (or ``rewinds``) names that is not in its
  folder: which file, as before which message, a rewind could no longer restore; one
  another folder of the family holds (a fork's parent, the id before a repair) is
  linked back in.

The repair (plan kind ``checkpoint``) is in ``checkpoint_repair``; modes go through the
doctor's ``chmod`` action.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.checks import (
    CHECKPOINT_MARK,
    TEMP_GRACE_SECONDS,
    Problem,
    Scan,
    _parse,
)
from taurus_ops.ops.doctor.document import ERROR, INFO, WARNING
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import TMP_MARK, is_temp_name
from taurus_ops.store.checkpoints import (
    ABSENT,
    SHA_RE,
    Change,
    CheckpointStore,
    changes,
    digest,
)
from taurus_ops.store.refs import id_from_file_name
from taurus_ops.store.refs import scan as session_files
from taurus_ops.words import human_size, plural

DAMAGED = "checkpoint-damaged"
TEMP = "checkpoint-temp"
STRAY = "checkpoint-stray"
UNLINKED = "checkpoint-unlinked"
MISSING = "checkpoint-missing"
ORPHAN = "checkpoint-orphan"
STORE = "checkpoint-store"
EMPTY_SHA = digest(b"")
MARK = CHECKPOINT_MARK
SHOWN = 3  # files named in a note before "and N more"


@dataclass
class BlobProblem(Problem):
    """A problem in the checkpoint store, with what its repair needs."""

    digest: str | None = None  # sha256 of the bytes the scan saw (None: a link, or not read)
    links: list[Path] = field(default_factory=list)  # every name of a damaged blob
    source: Path | None = None  # an intact copy (damaged) or the folder holding them (unlinked)
    folder: str = ""  # the checkpoint folder's name
    shas: list[str] = field(default_factory=list)  # unlinked: the blobs to link
    busy: bool = False  # the folder's session is open in a chat


@dataclass
class _Session:
    path: Path
    sid: str  # the id the chat keeps its checkpoints under (the document's, else the file's)
    related: set[str]  # ids whose folders may hold its blobs: file id, previous id, parent
    previous: set[str]  # the id it had before a repair gave it the file's
    changes: list[Change]


class _Hashes:
    """sha256 of blob files, each inode hashed once; damaged inodes reported once."""

    def __init__(self) -> None:
        self.by_inode: dict[tuple[int, int], str | None] = {}
        self.reported: dict[tuple[int, int], BlobProblem] = {}

    def of(self, path: str, st: os.stat_result) -> str | None:
        key = (st.st_dev, st.st_ino)
        if key not in self.by_inode:
            try:
                with open(path, "rb") as handle:
                    self.by_inode[key] = hashlib.file_digest(handle, "sha256").hexdigest()
            except OSError:
                self.by_inode[key] = None  # unreadable: its mode is reported
        return self.by_inode[key]


# -- the scan ---------------------------------------------------------------------------------
def check_checkpoints(scan: Scan, wanted: set[str] | None = None, full: bool = False) -> None:
    """Add every problem of the checkpoint store to ``scan`` (only the folders of the
    sessions in ``wanted``, real paths, when given).

    A session is read only when it has a checkpoint folder (to find what its folder
    lacks), when a folder's owner must be found before calling the folder an orphan, or
    with ``full``, which also finds a session whose folder is gone altogether."""
    store = CheckpointStore.for_home(scan.home)
    names = _root(scan, store, wanted is None)
    folders = set(names or ())
    if not folders and not full:
        return  # no folder: nothing in it to check, and nothing a session could be missing
    files = _session_files(scan)
    known = {file_id for _path, file_id in files}
    known.update(file_id for sub in _subfolders(scan.session_dir) for file_id in _ids_in(sub))
    known.update(id_from_file_name(p.name) for p in scan.locked)
    if wanted is not None:
        files = [(p, i) for p, i in files if os.path.realpath(p) in wanted]
    sessions: dict[Path, _Session] = {}

    def read(chosen: list[tuple[Path, str]]) -> None:
        for path, file_id in chosen:
            if path not in sessions:
                sessions[path] = session = _read(scan, path, file_id)
                known.update({session.sid, *session.previous})

    read(files if full or wanted is not None else [f for f in files if _has(store, f, folders)])
    if wanted is None and folders - {_folder_name(store, i) for i in known}:
        read(files)  # a folder whose owner is not known yet: every session says its id
    busy = {store.folder(id_from_file_name(p.name)).name for p in scan.locked} | {
        store.folder(s.sid).name for s in sessions.values() if s.path in scan.locked
    }
    present: dict[str, set[str] | None] = {}
    if names is not None:
        if wanted is not None:
            mine = {store.folder(s.sid).name for s in sessions.values()}
            names = [n for n in names if n in mine]
        hashes = _Hashes()
        present = {n: _check_folder(scan, store, n, full, hashes, n in busy) for n in names}
        _find_intact(store, hashes, present)
    for session in sessions.values():
        _check_missing(scan, store, session, present)
    if wanted is None and names:
        owned = {_folder_name(store, i) for i in known}
        for name in names:
            if name not in owned and name not in busy:
                _note_orphan(scan, store, name)


def _session_files(scan: Scan) -> list[tuple[Path, str]]:
    """(path, id from the file name) of every session file here, active and archived."""
    folders = [scan.session_dir]
    if scan.archive_dir is not None and not _same(scan.archive_dir, scan.session_dir):
        folders.append(scan.archive_dir)
    return [(p, id_from_file_name(p.name)) for folder in folders for p in session_files(folder)]


def _ids_in(folder: Path) -> list[str]:
    return [id_from_file_name(p.name) for p in session_files(folder)]


def _has(store: CheckpointStore, item: tuple[Path, str], folders: set[str]) -> bool:
    return _folder_name(store, item[1]) in folders


def _folder_name(store: CheckpointStore, session_id: str) -> str:
    """``store.folder(session_id).name``, without making a path for an ordinary id."""
    return session_id if fmt.is_valid_token(session_id) else store.folder(session_id).name


def _read(scan: Scan, path: Path, file_id: str) -> _Session:
    data = _document(scan, path)
    own = data.get("sessionId")
    sid = own if isinstance(own, str) else file_id
    previous = (
        {data["previousSessionId"]} if isinstance(data.get("previousSessionId"), str) else set()
    )
    related = {file_id, *previous}
    if isinstance(data.get("parentSession"), str):
        related.add(data["parentSession"])
    return _Session(path, sid, related - {sid, ""}, previous, changes(data) if data else [])


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return [
                Path(e.path)
                for e in it
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


def _document(scan: Scan, path: Path) -> dict[str, Any]:
    """The session document, as far as the checkpoints go: ``{}`` when it names none (only
    a file whose bytes mention a checkpoint is parsed) or cannot be read."""
    info = scan.files.get(path)
    if info is not None:  # damaged: what the scan parsed or salvaged
        if isinstance(info.parsed, dict):
            return info.parsed
        main = info.salvage.main if info.salvage is not None else None
        return main.data if main is not None and isinstance(main.data, dict) else {}
    seen = scan.checkpoint_docs.get(str(path))
    if seen is not None:  # parsed by this scan already
        return seen
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    if MARK not in raw:
        return {}
    ok, data = _parse(raw)
    return data if ok and isinstance(data, dict) else {}


def _root(scan: Scan, store: CheckpointStore, report: bool) -> list[str] | None:
    """The store's folder names (None when the store cannot be read); with ``report``,
    the store's own mode and whatever is in it that is not a folder."""
    root = store.root
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        if report:
            _stray(scan, root, st, "", "is not a folder (the chat cannot keep checkpoints)")
        return None
    if report:
        _mode(scan, root, st, 0o700, "the checkpoint store")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        if report:
            _unlistable(scan, root, exc)
        return None
    names = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            names.append(entry.name)
        elif report:
            _stray(scan, Path(entry.path), st, "")
    return names


def _unlistable(scan: Scan, folder: Path, exc: OSError) -> None:
    if any(path == folder for path, _want, _problem in scan.modes):
        return  # its mode is reported: chmod, then the next run looks inside
    scan.add(
        BlobProblem(
            str(folder),
            STORE,
            ERROR,
            f"cannot be listed ({exc.strerror or exc})",
            status="manual",
            outcome="make it readable (chmod 0700), then run the doctor again",
        )
    )


def _mode(scan: Scan, path: Path, st: os.stat_result, want: int, what: str) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    if mode == want:
        return False
    problem = scan.add(
        Problem(
            str(path),
            "permissions",
            WARNING,
            f"{what} is {mode:04o}; checkpoints are 0600 in folders of 0700",
            f"chmod {want:04o}",
        )
    )
    scan.modes.append((path, want, problem))
    return True


def _stray(scan: Scan, path: Path, st: os.stat_result, folder: str, what: str = "") -> None:
    """Something in the store Taurus never puts there."""
    if stat.S_ISLNK(st.st_mode):
        target = _readlink(path)
        scan.add(
            BlobProblem(
                str(path),
                STRAY,
                WARNING,
                what or f"a link (to {target}) in the checkpoint store, which holds only files",
                "remove the link (the quarantine log keeps where it pointed)",
                folder=folder,
            )
        )
    elif stat.S_ISREG(st.st_mode):
        try:
            found: str | None = digest(path.read_bytes())
        except OSError:
            found = None
        scan.add(
            BlobProblem(
                str(path),
                STRAY,
                WARNING,
                what or "not a checkpoint (its name is not a sha256)",
                "move it to the quarantine" if found is not None else "",
                digest=found,
                folder=folder,
            )
        )
    else:
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a special file"
        scan.add(
            BlobProblem(
                str(path),
                STRAY,
                WARNING,
                what or f"{kind} in a checkpoint folder, which holds only files",
                status="manual",
                outcome="move it out of ~/.taurus/checkpoints by hand",
                folder=folder,
            )
        )


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _check_folder(
    scan: Scan, store: CheckpointStore, name: str, full: bool, hashes: _Hashes, busy: bool
) -> set[str] | None:
    """Check one session's folder; returns the blobs in it that are whole (None: unreadable)."""
    folder = store.root / name
    try:
        st = os.lstat(folder)
        _mode(scan, folder, st, 0o700, "the checkpoint folder")
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _unlistable(scan, folder, exc)
        return None
    whole: set[str] = set()
    for entry in entries:  # (a path object only for what is wrong: most entries are not)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        regular = stat.S_ISREG(st.st_mode)
        if regular and SHA_RE.match(entry.name):
            if stat.S_IMODE(st.st_mode) != 0o600:
                _mode(scan, Path(entry.path), st, 0o600, "the checkpoint")
            why = _damage(entry, st, full, hashes)
            if why is None:
                whole.add(entry.name)
            else:
                _note_damaged(scan, Path(entry.path), st, why, hashes, name, busy)
        elif regular and is_temp_name(entry.name):
            if not busy and time.time() - st.st_mtime >= TEMP_GRACE_SECONDS:
                _note_temp(scan, Path(entry.path), name)
        else:
            _stray(scan, Path(entry.path), st, name)
            if busy:
                _busy(scan.problems[-1])
    return whole


def _damage(entry: os.DirEntry[str], st: os.stat_result, full: bool, hashes: _Hashes) -> str | None:
    """Why the blob ``entry`` does not hold what its name says (None: it does, as far as
    this pass can tell)."""
    if st.st_size == 0 and entry.name != EMPTY_SHA:
        return "an empty checkpoint (cut short before the disk had it)"
    if st.st_size != 0 and entry.name == EMPTY_SHA:
        return "the checkpoint of an empty file holds bytes"
    if not full:
        return None
    found = hashes.of(entry.path, st)
    if found is None or found == entry.name:
        return None
    return f"its bytes do not match its name (they hash to {found[:12]})"


def _busy(problem: Problem) -> None:
    if isinstance(problem, BlobProblem):
        problem.busy = True


def _note_damaged(
    scan: Scan,
    path: Path,
    st: os.stat_result,
    why: str,
    hashes: _Hashes,
    folder: str,
    busy: bool,
) -> None:
    key = (st.st_dev, st.st_ino)
    earlier = hashes.reported.get(key)
    if earlier is not None:  # another name of the same file (a fork's link): one problem
        earlier.links.append(path)
        earlier.busy = earlier.busy or busy
        return
    found = hashes.by_inode.get(key) or (EMPTY_SHA if st.st_size == 0 else None)
    problem = BlobProblem(
        str(path),
        DAMAGED,
        ERROR,
        why,
        "move it to the quarantine" if found is not None else "",
        digest=found,
        links=[path],
        folder=folder,
        busy=busy,
    )
    hashes.reported[key] = problem
    scan.add(problem)


def _note_temp(scan: Scan, path: Path, folder: str) -> None:
    try:
        found = digest(path.read_bytes())
    except OSError:
        return
    target = _temp_target(path)
    fix = "move it to the quarantine"
    if target is not None and found == target.name and not os.path.lexists(target):
        fix += f"; it holds the whole checkpoint {target.name[:12]}, which is put in place"
    scan.add(
        BlobProblem(
            str(path),
            TEMP,
            WARNING,
            "a temporary file left by an interrupted checkpoint save",
            fix,
            digest=found,
            folder=folder,
        )
    )


def _temp_target(path: Path) -> Path | None:
    """The blob a temporary file ``.SHA.tmp-XXXX`` was being saved as."""
    name = path.name[1:]
    mark = name.find(TMP_MARK)
    return path.with_name(name[:mark]) if mark > 0 and SHA_RE.match(name[:mark]) else None


def _find_intact(
    store: CheckpointStore, hashes: _Hashes, present: dict[str, set[str] | None]
) -> None:
    """For each damaged blob, a whole copy of the same content in another folder."""
    for problem in hashes.reported.values():
        sha = Path(problem.path).name
        own = set()
        for link in problem.links:
            with contextlib.suppress(OSError):
                st = os.lstat(link)
                own.add((st.st_dev, st.st_ino))
        for name, whole in sorted(present.items()):
            if not whole or sha not in whole:
                continue
            candidate = store.root / name / sha
            try:
                st = os.lstat(candidate)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in own:
                problem.source = candidate
                problem.fix += f"; put in its place the whole copy in checkpoints/{name}/"
                break


def _check_missing(
    scan: Scan, store: CheckpointStore, session: _Session, present: dict[str, set[str] | None]
) -> None:
    """The checkpoints a session names that are not whole in its folder."""
    if not session.changes:
        return
    name = _folder_name(store, session.sid)
    whole = present.get(name, set())
    if whole is None:
        return  # the folder could not be read: reported already
    restore: dict[str, list[Change]] = {}
    counts: set[str] = set()
    for change in session.changes:
        if change.before != ABSENT and change.before not in whole:
            restore.setdefault(change.before, []).append(change)
        if change.after != ABSENT and change.after not in whole:
            counts.add(change.after)
    counts -= set(restore)
    if not restore and not counts:
        return
    elsewhere = _held_elsewhere(store, session, set(restore) | counts, present)
    for source, shas in sorted(elsewhere.items()):
        scan.add(
            BlobProblem(
                str(store.root / name),
                UNLINKED,
                WARNING,
                f"{plural(len(shas), 'checkpoint')} {session.path.name} names "
                f"{'is' if len(shas) == 1 else 'are'} in checkpoints/{source.name}/ "
                "but not in its own folder",
                f"link {'it' if len(shas) == 1 else 'them'} into its folder",
                source=source,
                folder=name,
                shas=sorted(shas),
                busy=session.path in scan.locked,
            )
        )
        for sha in shas:
            restore.pop(sha, None)
            counts.discard(sha)
    if restore or counts:
        scan.add(Problem(str(session.path), MISSING, INFO, _missing_text(name, restore, counts)))


def _held_elsewhere(
    store: CheckpointStore,
    session: _Session,
    shas: set[str],
    present: dict[str, set[str] | None],
) -> dict[Path, set[str]]:
    """Which of ``shas`` a related folder holds whole: folder -> shas."""
    out: dict[Path, set[str]] = {}
    left = set(shas)
    for related in sorted(session.related):
        folder = store.folder(related)
        whole = present.get(folder.name)
        if whole is None:
            whole = {s for s in left if (folder / s).is_file() and (folder / s).stat().st_size}
        found = left & whole
        if found:
            out[folder] = found
            left -= found
    return out


def _missing_text(folder: str, restore: dict[str, list[Change]], counts: set[str]) -> str:
    total = len(restore) + len(counts)
    head = (
        f"{plural(total, 'checkpoint')} this session names {'is' if total == 1 else 'are'} not in "
        f"checkpoints/{folder}/ (pruned by checkpoints.maxBytes, removed, or damaged)"
    )
    if not restore:
        return f"{head}: only the +/- line counts /rewind shows are affected"
    items = sorted({c.position: c for cs in restore.values() for c in cs}.values(), key=_order)
    shown = [_describe(c) for c in items[:SHOWN]]
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{head}: /rewind can no longer restore {', '.join(shown)}{more}"


def _order(change: Change) -> int:
    return change.position


def _describe(change: Change) -> str:
    if change.tool == "rewind":
        return f"{change.file} as before rewind {(change.rewind or 0) + 1} (/rewind undo)"
    if change.message is not None:
        return f"{change.file} as before message {change.message}"
    return f"{change.file} as before change {change.position + 1}"


def _note_orphan(scan: Scan, store: CheckpointStore, name: str) -> None:
    folder = store.root / name
    try:
        if time.time() - os.lstat(folder).st_mtime < TEMP_GRACE_SECONDS:
            return  # a chat may be starting that session now
    except OSError:
        return
    count, size, freed = _sizes(folder)
    shared = (
        f"; {human_size(size - freed)} of it is linked from other sessions' folders and stays"
        if freed != size
        else ""
    )
    where = f"{scan.session_dir}" + (f" nor in {scan.archive_dir}" if scan.archive_dir else "")
    scan.add(
        BlobProblem(
            str(folder),
            ORPHAN,
            INFO,
            f"checkpoints of a session that is not here (not in {where}): "
            f"{plural(count, 'file')}, {human_size(size)}{shared}",
            status="manual",
            outcome=f"if that session is gone for good: rm -r {shlex.quote(str(folder))}",
            folder=name,
        )
    )


def _sizes(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, bytes freed by removing the folder): a file linked elsewhere too stays."""
    seen: dict[tuple[int, int], tuple[int, int, int]] = {}  # inode -> size, links, links here
    count = 0
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        for entry in it:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    continue
                count += 1
                key = (st.st_dev, st.st_ino)
                size, links, here = seen.get(key, (st.st_size, st.st_nlink, 0))
                seen[key] = (size, links, here + 1)
    size = sum(s for s, _, _ in seen.values())
    freed = sum(s for s, links, here in seen.values() if links <= here)
    return count, size, freed
