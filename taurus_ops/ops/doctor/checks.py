"""What the doctor finds: a read-only scan of the session directory and the archive.

The fast path reads each file once and parses it with orjson; only a file that
does not parse goes through the salvage scanner. A file found healthy is remembered
(``healthy``: ``<home>/doctor-state.json``), so a later scan that finds it unchanged
does not read it again. Nothing here writes anything else.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.document import (
    ERROR,
    INFO,
    WARNING,
    FileContext,
    Finding,
    examine,
)
from taurus_ops.ops.doctor.healthy import RECOVERED_FROM as RECOVERED_FROM
from taurus_ops.ops.doctor.healthy import (
    SETTLE_SECONDS,
    Healthy,
    _fingerprint,
    _note_fingerprint,
    identity,
    read_healthy,
    write_healthy,
)
from taurus_ops.ops.doctor.healthy import STATE_NAME as STATE_NAME
from taurus_ops.ops.doctor.healthy import forget_healthy as forget_healthy
from taurus_ops.ops.doctor.salvage import SalvageResult, salvage
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import TMP_MARK, is_temp_name
from taurus_ops.store.lock import is_held, is_lock_name, read_holder, target_of_lock
from taurus_ops.store.reading import parse
from taurus_ops.store.refs import inside
from taurus_ops.words import plural

CHECKPOINT_MARK = b'"checkpoint"'  # in the bytes of every session that names a checkpoint

TEMP_GRACE_SECONDS = 30.0  # a younger temporary file may belong to a save in progress


@dataclass
class Problem:
    """One thing wrong, on one path."""

    path: str
    code: str
    severity: str  # error, warning or info
    text: str
    fix: str = ""  # what --fix does about it ("" when nothing can be done automatically)
    status: str = "found"  # found, fixed, skipped, failed, manual
    outcome: str = ""  # what happened when fixing (or why it was skipped)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "code": self.code,
            "severity": self.severity,
            "problem": self.text,
            "fix": self.fix or None,
            "status": self.status,
            "outcome": self.outcome or None,
        }


@dataclass
class SessionFile:
    """A session file with problems, and everything the plan needs to repair it."""

    path: Path
    archived: bool
    ctx: FileContext
    digest: str  # sha256 of the bytes read (the repair refuses a file changed since)
    size: int
    findings: list[Finding]
    parsed: Any = None  # the document when the file parsed
    salvage: SalvageResult | None = None  # when it did not
    locked_by: int | None = None
    locked: bool = False
    problems: list[Problem] = field(default_factory=list)


@dataclass
class TempFile:
    path: Path
    target: Path
    is_link: bool
    digest: str = ""
    document: dict[str, Any] | None = None  # a whole session document, if it holds one
    newer: bool = False  # it holds a newer whole version of its session


@dataclass
class Scan:
    """Everything found. ``problems`` is in discovery order; the plan adds what to do."""

    home: Path
    session_dir: Path
    archive_dir: Path | None
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    files: dict[Path, SessionFile] = field(default_factory=dict)  # only files with problems
    healthy_docs: dict[Path, dict[str, Any]] = field(default_factory=dict)  # duplicates
    # every document this scan parsed that names a file checkpoint ({} for one naming none),
    # by path: the checkpoint check reads no file twice
    checkpoint_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    temps: list[tuple[TempFile, Problem]] = field(default_factory=list)
    locks: list[tuple[Path, Problem]] = field(default_factory=list)
    links: list[tuple[Path, str, Path | None, Problem]] = field(default_factory=list)
    modes: list[tuple[Path, int, Problem]] = field(default_factory=list)
    duplicates: list[tuple[str, list[Path], Problem]] = field(default_factory=list)
    digests: dict[Path, str] = field(default_factory=dict)  # sha256 of files read for a comparison
    # files the doctor wrote from another file, by (sha256 of that file, part): see RECOVERED_FROM
    recovered: dict[tuple[str, int], list[Path]] = field(default_factory=dict)
    signatures: dict[tuple[str, str, int], list[Path]] = field(default_factory=dict)
    copies: list[Any] = field(default_factory=list)  # copies.Copies: one document in several files
    elsewhere: list[Any] = field(default_factory=list)  # copies.Elsewhere: an id in two folders
    locked: dict[Path, int | None] = field(default_factory=dict)  # session -> chat pid
    ids: set[str] = field(default_factory=set)  # every file-name id in the store
    index: Any = None  # the index API object when an index exists and disagrees
    index_problem: Problem | None = None

    def add(self, problem: Problem) -> Problem:
        self.problems.append(problem)
        return problem


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _parse(raw: bytes) -> tuple[bool, Any]:
    """(True, the JSON value) or (False, None): the store's one lenient parse."""
    return parse(raw)


def check_bytes(raw: bytes, ctx: FileContext) -> tuple[list[Finding], Any, SalvageResult | None]:
    """Findings for one file's bytes, with the parsed document or the salvage result."""
    if not raw.strip(b" \t\r\n"):
        return [Finding("empty", ERROR, "empty file")], None, salvage(raw)
    ok, data = _parse(raw)
    if ok:
        return examine(data, ctx), data, None
    result = salvage(raw)
    what = "; ".join(result.problems()) or "not valid JSON"
    findings = [Finding("unreadable", ERROR, f"does not parse: {what}")]
    return findings, None, result


def _mode_problem(scan: Scan, path: Path, mode: int, want: int, what: str) -> None:
    if stat.S_IMODE(mode) & 0o077:
        problem = scan.add(
            Problem(
                str(path),
                "permissions",
                WARNING,
                f"{what} is {stat.S_IMODE(mode):04o}, readable by others",
                f"chmod {want:04o}",
            )
        )
        scan.modes.append((path, want, problem))


def _temp_target(path: Path) -> Path:
    name = path.name[1:]
    return path.with_name(name[: name.index(TMP_MARK)])


def _same_folder(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def scan_store(
    home: Path,
    session_dir: Path,
    archive_dir: Path | None,
    only: Iterable[Path] | None = None,
    progress: Callable[[int, int], None] | None = None,
    config_files: Iterable[Path] = (),
    now: float | None = None,
    full: bool = False,
) -> Scan:
    """Scan the store (or only the files in ``only``) and return every problem found.

    ``now`` (seconds since the epoch) decides which healthy files are old enough to be
    remembered unread (see SETTLE_SECONDS); ``full`` hashes every file checkpoint too."""
    scan = Scan(Path(home), Path(session_dir), Path(archive_dir) if archive_dir else None)
    wanted = {os.path.realpath(p) for p in only} if only is not None else None
    if wanted is None:
        _check_config(scan, config_files)
        _check_directories(scan)
    found = _list_entries(scan, _folders(scan))
    scan.ids = set(found.by_id)
    # locks first: a session open in a chat is reported, never repaired
    _check_locks(scan, found.locks, wanted)
    sessions = found.sessions
    if wanted is not None:
        sessions = [(e, a, p) for e, a, p in sessions if os.path.realpath(e.path) in wanted]
    _check_sessions(scan, sessions, wanted, now, progress)
    _check_duplicates(scan, found.by_id, wanted)
    _check_the_rest(scan, found, wanted, full)
    return scan


@dataclass
class _Entries:
    """What the session folders hold, sorted by what the scan does with each."""

    sessions: list[tuple[os.DirEntry[str], bool, Path]] = field(default_factory=list)
    temps: list[tuple[os.DirEntry[str], bool]] = field(default_factory=list)
    locks: list[os.DirEntry[str]] = field(default_factory=list)
    links: list[tuple[os.DirEntry[str], bool]] = field(default_factory=list)
    subfolders: list[Path] = field(default_factory=list)
    by_id: dict[str, list[Path]] = field(default_factory=dict)

    def sort(self, entry: os.DirEntry[str], archived: bool) -> None:
        name = entry.name
        if is_lock_name(name):
            self.locks.append(entry)
        elif is_temp_name(name):
            self.temps.append((entry, archived))
        elif entry.is_symlink():
            if name.endswith(".json"):
                self.links.append((entry, archived))
        elif name.endswith(".json") and not name.startswith(".") and entry.is_file():
            path = Path(entry.path)
            self.by_id.setdefault(_file_id(name), []).append(path)
            self.sessions.append((entry, archived, path))
        elif not archived and not name.startswith(".") and entry.is_dir():
            self.subfolders.append(Path(entry.path))  # a project's own session folder, say


def _folders(scan: Scan) -> list[tuple[Path, bool]]:
    """The folders to list, each with whether it is the archive."""
    folders: list[tuple[Path, bool]] = [(scan.session_dir, False)]
    if scan.archive_dir is not None and not _same_folder(scan.archive_dir, scan.session_dir):
        # an archive directory that IS the session directory would list every file
        # twice, and each would look like a duplicate of itself
        folders.append((scan.archive_dir, True))
    return folders


def _check_directories(scan: Scan) -> None:
    """The modes of the Taurus home, the session folders and the quarantine."""
    for folder in (scan.home, scan.session_dir, scan.archive_dir, scan.home / "quarantine"):
        if folder is None:
            continue
        try:
            st = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and (
            inside(folder, scan.home) or folder in (scan.session_dir, scan.archive_dir)
        ):
            _mode_problem(scan, folder, st.st_mode, 0o700, "the directory")


def _list_entries(scan: Scan, folders: list[tuple[Path, bool]]) -> _Entries:
    found = _Entries()
    for folder, archived in folders:
        for entry in _list_folder(scan, folder):
            found.sort(entry, archived)
    return found


def _list_folder(scan: Scan, folder: Path) -> list[os.DirEntry[str]]:
    """The entries of one session folder ([] when it cannot be listed: reported, if not gone)."""
    try:
        return list(os.scandir(folder))
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        scan.add(Problem(str(folder), "not-a-directory", ERROR, "is not a directory"))
    except PermissionError:
        scan.add(Problem(str(folder), "unreadable", ERROR, "cannot be listed (permission denied)"))
    return []


def _check_locks(scan: Scan, locks: list[os.DirEntry[str]], wanted: set[str] | None) -> None:
    """Note each session open in a chat; report each lock no running chat holds."""
    for entry in locks:
        lock = Path(entry.path)
        target = target_of_lock(lock)
        if wanted is not None and os.path.realpath(target) not in wanted:
            continue
        if is_held(lock):
            scan.locked[target] = read_holder(lock)
        else:
            problem = scan.add(
                Problem(
                    str(lock),
                    "stale-lock",
                    WARNING,
                    "a lock left by a chat that is no longer running",
                    "remove it",
                )
            )
            scan.locks.append((lock, problem))


def _check_sessions(
    scan: Scan,
    sessions: list[tuple[os.DirEntry[str], bool, Path]],
    wanted: set[str] | None,
    now: float | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Check each session file, and keep the files found healthy for the next scan."""
    known = read_healthy(scan.home)
    healthy: dict[str, Healthy] = {} if wanted is None else dict(known)
    settled = int(((time.time() if now is None else now) - SETTLE_SECONDS) * 1e9)
    total = len(sessions)
    for done, (entry, archived, path) in enumerate(sessions, 1):
        _check_session(scan, entry, archived, known, healthy, settled, path)
        if progress is not None and (done % 200 == 0 or done == total):
            progress(done, total)
    scan.checked = total
    if healthy != known:
        write_healthy(scan.home, healthy)


def _check_duplicates(scan: Scan, by_id: dict[str, list[Path]], wanted: set[str] | None) -> None:
    """Files that share an id; each is read for the plan to compare their messages."""
    for file_id, paths in sorted(by_id.items()):
        if len(paths) < 2:
            continue
        if wanted is not None and not any(os.path.realpath(p) in wanted for p in paths):
            continue
        names = ", ".join(str(p) for p in sorted(paths))
        problem = scan.add(
            Problem(
                names,
                "duplicate-id",
                ERROR,
                f"{plural(len(paths), 'file')} share the id {file_id!r}",
                "keep the most complete; quarantine copies it contains, give the others new ids",
            )
        )
        scan.duplicates.append((file_id, sorted(paths), problem))
        for path in paths:  # the plan compares their messages
            if path not in scan.files and path not in scan.healthy_docs:
                _read_for_comparison(scan, path)


def _read_for_comparison(scan: Scan, path: Path) -> None:
    try:
        raw = path.read_bytes()
    except OSError:
        return
    ok, data = _parse(raw)
    if ok and isinstance(data, dict):
        scan.healthy_docs[path] = data
        scan.digests[path] = _digest(raw)


def _check_the_rest(scan: Scan, found: _Entries, wanted: set[str] | None, full: bool) -> None:
    """Copies, temporary files, links, the index and the file checkpoints."""
    from taurus_ops.ops.doctor.copies import find_copies, find_elsewhere

    find_copies(scan, wanted)
    find_elsewhere(scan, found.subfolders, found.by_id, wanted)
    for entry, _archived in found.temps:
        _check_temp(scan, entry, wanted)
    for entry, _archived in found.links:
        _check_link(scan, entry, wanted)
    if wanted is None:
        _check_index(scan)
    from taurus_ops.ops.doctor.checkpoints import check_checkpoints

    check_checkpoints(scan, wanted, full)


def _file_id(name: str) -> str:
    """The id a session file's name gives (``FileContext.of(name, ...).file_id``)."""
    parts = fmt.split_file_name(name)
    return fmt.clean_text(parts[1] if parts else (name[:-5] if name.endswith(".json") else name))


def _note_undecodable(scan: Scan, path: Path) -> None:
    """A session file whose name is not valid UTF-8: read, searched and backed up as it is,
    but no reference a user types can name it, so the doctor points it out."""
    scan.add(
        Problem(
            str(path),
            "name-encoding",
            INFO,
            "the file name is not valid UTF-8 (each undecodable byte is shown as \ufffd); "
            "rename it to YYYY-MM-DD_ID.json to refer to it by id",
        )
    )


def _check_session(
    scan: Scan,
    entry: os.DirEntry[str],
    archived: bool,
    known: dict[str, Healthy] | None = None,
    healthy: dict[str, Healthy] | None = None,
    settled: int = 0,
    path: Path | None = None,
) -> None:
    """Check one session file. One found healthy before and unchanged since (``known``)
    is not read again; each file found healthy now whose last change (ctime, which no
    one can set) is before ``settled`` (nanoseconds) goes into ``healthy``."""
    path = Path(entry.path) if path is None else path
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return
    undecodable = fmt.name_bytes(entry.name) is not None
    if undecodable:
        _note_undecodable(scan, path)
    _mode_problem(scan, path, st.st_mode, 0o600, "the file")
    before = known.get(entry.path) if known else None
    if before is not None and before.identity == identity(st):
        _note_fingerprint(scan, path, before)
        if healthy is not None:
            healthy[entry.path] = before
        return
    ctx = FileContext.of(entry.name, st.st_mtime)
    try:
        with open(path, "rb") as handle:
            read_from = os.fstat(handle.fileno())  # what was read, whatever happens later
            raw = handle.read()
    except FileNotFoundError:
        return
    except PermissionError:
        scan.add(
            Problem(
                str(path),
                "unreadable",
                ERROR,
                "cannot be read (permission denied)",
                "chmod 0600, then run the doctor again" if st.st_uid == os.getuid() else "",
            )
        )
        if st.st_uid == os.getuid() and not any(m[0] == path for m in scan.modes):
            scan.modes.append((path, 0o600, scan.problems[-1]))
        return
    findings, parsed, salvaged = check_bytes(raw, ctx)
    if isinstance(parsed, dict):
        scan.checkpoint_docs[str(path)] = parsed if CHECKPOINT_MARK in raw else {}
        print_ = _fingerprint(parsed, raw, identity(read_from))
        _note_fingerprint(scan, path, print_)
        remember = not findings and not undecodable and read_from.st_ctime_ns < settled
        if healthy is not None and remember:
            healthy[entry.path] = print_
    if not findings:
        return
    if healthy is not None:
        healthy.pop(entry.path, None)
    locked = path in scan.locked
    info = SessionFile(
        path,
        archived,
        ctx,
        _digest(raw),
        len(raw),
        findings,
        parsed,
        salvaged,
        scan.locked.get(path),
        locked,
    )
    for finding in findings:
        problem = scan.add(Problem(str(path), finding.code, finding.severity, finding.text))
        if finding.severity != INFO:
            info.problems.append(problem)
    if info.problems:
        scan.files[path] = info


def _check_temp(scan: Scan, entry: os.DirEntry[str], wanted: set[str] | None) -> None:
    path = Path(entry.path)
    try:
        target = _temp_target(path)
    except ValueError:
        return
    if wanted is not None and os.path.realpath(target) not in wanted:
        return
    if target in scan.locked:
        return  # the chat writing that session may be mid-save
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if time.time() - st.st_mtime < TEMP_GRACE_SECONDS:
        return
    is_link = stat.S_ISLNK(st.st_mode)
    temp = TempFile(path, target, is_link)
    fix = "move it to the quarantine"
    text = "a temporary file left by an interrupted save"
    if not is_link and stat.S_ISREG(st.st_mode):
        try:
            raw = path.read_bytes()
        except OSError:
            raw = b""
        temp.digest = _digest(raw)
        ok, data = _parse(raw)
        if ok and isinstance(data, dict) and isinstance(data.get("messages"), list):
            temp.document = data
            if _temp_is_newer(scan, target, data):
                temp.newer = True
                fix = "it holds a newer whole version: make it the session (old one to quarantine)"
    elif is_link:
        text = "a temporary link left by an interrupted rename"
        fix = "remove it (its target is kept in the quarantine log)"
    problem = scan.add(Problem(str(path), "temp-file", WARNING, text, fix))
    scan.temps.append((temp, problem))


def target_messages(scan: Scan, target: Path) -> list[Any] | None:
    """The messages the session file ``target`` holds now (salvaged if damaged), or None."""
    info = scan.files.get(target)
    if info is not None:
        if info.parsed is not None:
            data = info.parsed
        elif info.salvage is not None and info.salvage.main is not None:
            data = info.salvage.main.data
        else:
            return []
    else:
        try:
            ok, data = _parse(target.read_bytes())
        except OSError:
            return None
        if not ok:
            return []
    messages = data.get("messages") if isinstance(data, dict) else None
    return messages if isinstance(messages, list) else []


def _temp_is_newer(scan: Scan, target: Path, data: dict[str, Any]) -> bool:
    current = target_messages(scan, target)
    if current is None:
        return True  # the save never reached its rename: the temp file is the session
    mine = data["messages"]
    return len(mine) > len(current) and mine[: len(current)] == current


def _check_link(scan: Scan, entry: os.DirEntry[str], wanted: set[str] | None) -> None:
    link = Path(entry.path)
    try:
        target = os.readlink(link)
    except OSError:
        return
    real = Path(os.path.realpath(link))
    if wanted is not None and str(real) not in wanted:
        return
    allowed = inside(real, scan.session_dir) or (
        scan.archive_dir is not None and inside(real, scan.archive_dir)
    )
    if not os.path.lexists(real) or not real.exists():
        replacement = None
        for folder in (scan.session_dir, scan.archive_dir):
            if folder is not None:
                candidate = folder / Path(target).name
                if candidate.is_file() and not candidate.is_symlink():
                    replacement = candidate
                    break
        fix = (
            f"point it at {replacement}"
            if replacement
            else "remove it (the quarantine log keeps where it pointed)"
        )
        problem = scan.add(
            Problem(
                str(link),
                "dangling-name",
                WARNING,
                f"name points to a missing file ({target})",
                fix,
            )
        )
        scan.links.append((link, target, replacement, problem))
    elif not allowed:
        problem = scan.add(
            Problem(
                str(link),
                "escaping-name",
                ERROR,
                f"name points outside the session directory ({target})",
                "remove the link (the file it points to is not touched)",
            )
        )
        scan.links.append((link, target, None, problem))
    elif not real.is_file():
        problem = scan.add(
            Problem(
                str(link),
                "bad-name",
                WARNING,
                f"name points to something that is not a session file ({target})",
                "remove the link",
            )
        )
        scan.links.append((link, target, None, problem))


def _check_config(scan: Scan, files: Iterable[Path]) -> None:
    from taurus_ops.config import cache
    from taurus_ops.config.paths import taurus_home, user_config_file
    from taurus_ops.errors import ConfigError

    user = user_config_file()
    seen: set[str] = set()
    for path in [user, *files]:
        key = os.path.realpath(path)
        if key in seen or not (path.is_file() or path.is_symlink()):
            continue
        seen.add(key)
        if path == user and cache.validated(path):  # valid as it is now: no pydantic
            continue
        from taurus_ops.config import read_config_file  # pydantic: only for a file to check

        try:
            read_config_file(path, base=taurus_home())
        except ConfigError as exc:
            scan.add(
                Problem(
                    str(path),
                    "bad-config",
                    ERROR,
                    "; ".join(exc.messages)[:300],
                    "",
                    status="manual",
                    outcome="edit it by hand; `taurus-ops config validate` checks it",
                )
            )


def _check_index(scan: Scan) -> None:
    """An index that disagrees with the files (``taurus_ops.store.index``, when one exists).

    A damaged index or one from another version is a warning (``--fix`` rebuilds it);
    entries merely older than the files are noted (any search refreshes them, and
    ``--fix`` does too). Tolerant of an index module that is missing or fails.
    """
    try:
        from taurus_ops.store.index import Index
    except ImportError:
        return
    index = Index.for_dirs(scan.home, scan.session_dir, scan.archive_dir)
    try:
        found: list[str] = list(index.check())
    except Exception as exc:  # an index that cannot even be checked is as good as damaged
        found = [f"the index cannot be read ({type(exc).__name__}: {exc})"]
    finally:
        index.close()
    if not found:
        return
    stale_only = all(getattr(f, "stale", False) for f in found)
    scan.index_problem = scan.add(
        Problem(
            str(index.path),
            "index-stale" if stale_only else "index",
            INFO if stale_only else WARNING,
            "; ".join(found[:3]),
            "refresh the index" if stale_only else "rebuild the index from the files",
        )
    )
    scan.index = index
