"""Restoring a verified backup: a plan first, then the writes.

``survey`` looks at the disk (what is at each destination, its checksum, whether a
chat holds it, whether its folder leads out through a link); ``decide`` turns that
and the manifest into a ``RestorePlan`` without touching the disk, so the dry run
prints the very plan a real run carries out, and tests can build the disk's facts by
hand. ``execute_restore`` then writes the planned files (0600, atomically, with their
original mtimes) and recreates the names. Sessions newer on disk are kept unless
forced; a file replaced is first copied to ``~/.taurus/restore-replaced/<time>/``.

File checkpoints go back to ``~/.taurus/checkpoints/<session-id>/`` under the same
rules as every file (one already there with other bytes is kept if newer, else
replaced and its copy kept). A checkpoint the backup holds as a hard link to another
(a fork's and its parent's) is restored as a hard link to that file when it was
restored now or was already there, 0600, and as a copy where the file system has no
hard links (or the other file stays as it was on disk).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import SessionLocked, TaurusError, UsageError
from taurus_ops.ops.backup.archive import read_once
from taurus_ops.ops.backup.layout import BackupError, destinations, norm
from taurus_ops.ops.backup.verify import VerifyReport, iter_files, verify_archive
from taurus_ops.ops.context import JobResult
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import (
    FILE_MODE,
    atomic_create,
    atomic_write,
    ensure_dir,
    fsync_dir,
    point_link,
)
from taurus_ops.store.lock import SessionLock, is_locked
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.ops.context import JobContext

RESTORE = "restore"
REPLACE = "replace"
SAME = "same"
KEEP = "keep"
SESSION_KINDS = ("sessions", "archive")


@dataclass
class RestoreStep:
    member: str
    dest: str
    action: str  # restore | replace | same | keep
    why: str = ""
    size: int = 0
    kind: str = "file"  # file | link
    target: str = ""  # for a link: the file it leads to
    link: str = ""  # a checkpoint stored as a hard link: the member it links to


@dataclass
class RestorePlan:
    archive: Path
    steps: list[RestoreStep] = field(default_factory=list)
    replaced_dir: Path | None = None
    source: str = ""  # where the archive came from, when not ``archive`` itself (a remote)

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)

    def as_json(self) -> dict[str, Any]:
        return {
            "archive": self.source or str(self.archive),
            "steps": [asdict(s) for s in self.steps],
            "replacedDir": str(self.replaced_dir) if self.replaced_dir else None,
        }


# -- where each member goes ---------------------------------------------------------------------
RootMap = list[tuple[str, str, Path]]  # (root member, kind, destination), most specific first


def dest_map(manifest: dict[str, Any], config: Config, to: Path | None) -> RootMap:
    """(root member, kind, destination) for each root; ``to`` restores as plain tar would."""
    dests = destinations(config)
    out = []
    for root in manifest["roots"]:
        member = norm(str(root["member"]))
        kind = str(root["kind"])
        dest = (Path(to) / member) if to is not None else dests[kind]
        out.append((member, kind, dest))
    out.sort(key=lambda t: len(t[0]), reverse=True)  # the most specific root first
    return out


def locate(name: str, roots: RootMap) -> tuple[str, Path] | None:
    for member, kind, dest in roots:
        if name == member:
            return kind, dest
        if name.startswith(member + "/"):
            return kind, dest / name[len(member) + 1 :]
    return None


def _link_target(name: str, target: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(name), target))


# -- the disk's facts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OnDisk:
    """What is at one path, as far as planning a restore needs to know."""

    exists: bool = False  # following links
    is_link: bool = False
    is_file: bool = False  # a regular file (following links)
    sha256: str = ""
    unreadable: str = ""  # why its bytes could not be read
    locked: bool = False  # a running chat holds it
    updated: datetime | None = None  # a session's "updated" time
    mtime: float = 0.0
    real: str = ""  # os.path.realpath


@dataclass
class Disk:
    """The facts ``decide`` works from, by path; a path not recorded is missing.

    ``files`` holds the destinations of the backup's files (their bytes read);
    ``others`` what else planning looks at (names, where a session may have moved),
    only whether something is there and where it leads."""

    files: dict[str, OnDisk] = field(default_factory=dict)
    others: dict[str, OnDisk] = field(default_factory=dict)
    escapes: set[str] = field(default_factory=set)  # destinations whose folder leads out

    def at(self, path: Path | str) -> OnDisk:
        key = str(path)
        found = self.files.get(key) or self.others.get(key)
        return found if found is not None else OnDisk(real=os.path.normpath(key))


def _updated_of(data: bytes) -> datetime | None:
    try:
        doc = fmt.loads(data)
    except ValueError:
        return None
    return fmt.parse_time(doc.get("updated")) if isinstance(doc, dict) else None


def glance(path: Path) -> OnDisk:
    """Whether something is at ``path``, what kind, and where it leads; nothing read."""
    real = os.path.realpath(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return OnDisk(real=real)
    if stat.S_ISLNK(st.st_mode):
        return OnDisk(path.exists(), True, path.is_file(), real=real)
    return OnDisk(True, False, stat.S_ISREG(st.st_mode), mtime=st.st_mtime, real=real)


def look(path: Path, entry_sha: str, session: bool, check_lock: bool) -> OnDisk:
    """The facts about a file's destination. A regular file there is read once; a
    session's ``updated`` time and its lock are looked at only when it differs."""
    seen = glance(path)
    if seen.is_link or not seen.is_file:
        return seen
    try:
        data = path.read_bytes()
    except OSError as exc:  # another user's file, say: left as it is
        return replace(seen, unreadable=str(exc.strerror or exc))
    digest = hashlib.sha256(data).hexdigest()
    differs = digest != entry_sha
    return replace(
        seen,
        sha256=digest,
        locked=differs and check_lock and is_locked(path),
        updated=_updated_of(data) if differs and session else None,
    )


def _escapes(name: str, dest: Path, roots: RootMap) -> bool:
    """True if ``dest``'s folder, inside its root, is reached through a symlink that leads
    out of that root: writing there would write through a link planted in the store."""
    for member, _, root in roots:
        if name.startswith(member + "/"):
            real_root = os.path.realpath(root)
            real = os.path.realpath(dest.parent)
            return real != real_root and not real.startswith(real_root + os.sep)
    return False


def _other_dirs(config: Config) -> dict[str, Path]:
    """Where a session of each kind may have moved since (archived, or unarchived)."""
    return {"sessions": Path(config.archive_dir), "archive": Path(config.session_dir)}


def survey(
    manifest: dict[str, Any], roots: RootMap, config: Config, to: Path | None = None
) -> Disk:
    """Read what ``decide`` needs from the disk: every destination the manifest leads to."""
    disk = Disk()
    other_dir = _other_dirs(config) if to is None else {}
    for entry in manifest["files"]:
        name = norm(str(entry["path"]))
        located = locate(name, roots)
        if located is None:
            continue
        kind, dest = located
        session = kind in SESSION_KINDS
        here = disk.files[str(dest)] = look(
            dest, str(entry["sha256"]), session, session and to is None
        )
        if _escapes(name, dest, roots):
            disk.escapes.add(str(dest))
        if kind in other_dir and not here.exists and not here.is_link:  # moved since?
            moved = other_dir[kind] / dest.name
            disk.others[str(moved)] = glance(moved)
    for entry in manifest.get("links", []):
        name = norm(str(entry["path"]))
        for found in (locate(name, roots), locate(_link_target(name, entry["target"]), roots)):
            if found is not None and str(found[1]) not in disk.files:
                disk.others[str(found[1])] = glance(found[1])
    return disk


# -- the plan (pure) --------------------------------------------------------------------------------
def decide(
    archive: Path,
    manifest: dict[str, Any],
    roots: RootMap,
    disk: Disk,
    other_dir: dict[str, Path],
    force: bool = False,
    contents: dict[str, bytes] | None = None,
) -> RestorePlan:
    """What restoring does, per file and name, from the manifest and the disk's facts.

    ``other_dir`` is empty for ``--to`` (restoring as plain tar would); ``contents``
    (member -> bytes) holds the backup's copy of files that differ on disk, to compare
    their ``updated`` times."""
    plan = RestorePlan(Path(archive))
    moved: dict[str, Path] = {}  # member -> where that session lives now (archived since)
    for entry in manifest["files"]:
        name = norm(str(entry["path"]))
        located = locate(name, roots)
        if located is None:  # pragma: no cover - verify checked it
            continue
        kind, dest = located
        step = RestoreStep(name, str(dest), RESTORE, size=int(entry["size"]))
        if "linkTo" in entry:
            step.link = norm(fmt.name_from(entry, "linkTo"))
        plan.steps.append(step)
        backed_up = (contents or {}).get(name)
        _decide_file(step, entry, kind, disk, other_dir, force, backed_up, moved)
    for entry in manifest.get("links", []):
        name_step = _decide_link(entry, roots, disk, moved)
        if name_step is not None:
            plan.steps.append(name_step)
    return plan


def _decide_file(
    step: RestoreStep,
    entry: dict[str, Any],
    kind: str,
    disk: Disk,
    other_dir: dict[str, Path],
    force: bool,
    backed_up: bytes | None,
    moved: dict[str, Path],
) -> None:
    here = disk.at(step.dest)
    if here.is_link or (here.exists and not here.is_file):
        step.action, step.why = KEEP, "exists and is not a regular file"
    elif step.dest in disk.escapes:
        step.action, step.why = KEEP, "its folder is a link leading elsewhere; not written"
    elif here.exists:
        _decide_existing(step, entry, kind, here, force, backed_up, bool(other_dir))
    elif kind in other_dir and disk.at(other_dir[kind] / Path(step.dest).name).exists:
        elsewhere = other_dir[kind] / Path(step.dest).name
        where = "archive" if kind == "sessions" else "session directory"
        step.action, step.why = KEEP, f"present in the {where} as {elsewhere}"
        moved[step.member] = elsewhere
    else:
        step.why = "missing on disk"


def _decide_existing(
    step: RestoreStep,
    entry: dict[str, Any],
    kind: str,
    here: OnDisk,
    force: bool,
    backed_up: bytes | None,
    in_place: bool,
) -> None:
    """A regular file is at the destination: same, kept, or replaced."""
    if here.unreadable:
        step.action, step.why = KEEP, f"cannot read it: {here.unreadable}"
    elif here.sha256 == entry["sha256"]:
        step.action, step.why = SAME, "identical on disk"
    elif in_place and kind in SESSION_KINDS and here.locked:
        step.action, step.why = KEEP, "open in a running chat (locked)"
    else:
        newer = _disk_is_newer(here, entry, backed_up, kind)
        if newer and not force:
            step.action, step.why = KEEP, "newer on disk (use --force to replace it)"
        else:
            step.action = REPLACE
            step.why = "newer on disk; replaced (--force)" if newer else "older on disk"


def _disk_is_newer(here: OnDisk, entry: dict[str, Any], backed_up: bytes | None, kind: str) -> bool:
    if kind in SESSION_KINDS and backed_up is not None:
        ours = _updated_of(backed_up)
        if ours is not None and here.updated is not None:
            return here.updated > ours
    return here.mtime > float(entry.get("mtime", 0))


def _decide_link(
    entry: dict[str, Any], roots: RootMap, disk: Disk, moved: dict[str, Path]
) -> RestoreStep | None:
    name = norm(str(entry["path"]))
    target_member = _link_target(name, entry["target"])
    located = locate(name, roots)
    target = locate(target_member, roots)
    if located is None or target is None:  # pragma: no cover - verify checked it
        return None
    dest = located[1]
    goal = moved.get(target_member, target[1])  # a name follows its session
    step = RestoreStep(name, str(dest), RESTORE, kind="link", target=str(goal))
    here = disk.at(dest)
    if here.is_link or here.exists:
        same = here.is_link and here.real == disk.at(goal).real
        step.action = SAME if same else KEEP
        step.why = "already there" if same else "a file or another name is there"
    else:
        step.why = "name missing on disk"
    return step


def plan_restore(
    archive: Path,
    report: VerifyReport,
    config: Config,
    force: bool = False,
    to: Path | None = None,
    contents: dict[str, bytes] | None = None,
) -> RestorePlan:
    """Survey the disk and decide, per file, what restoring ``archive`` does.

    ``contents`` (member -> bytes) is needed only for files that differ on disk, to
    compare their ``updated`` times; the caller passes what it read."""
    assert report.ok and report.manifest is not None
    roots = dest_map(report.manifest, config, to)
    disk = survey(report.manifest, roots, config, to)
    other_dir = _other_dirs(config) if to is None else {}
    return decide(archive, report.manifest, roots, disk, other_dir, force, contents)


def differing_members(report: VerifyReport, config: Config, to: Path | None) -> set[str]:
    """Members whose destination exists with other bytes (their content is needed to plan)."""
    assert report.manifest is not None
    roots = dest_map(report.manifest, config, to)
    out = set()
    for entry in report.manifest["files"]:
        name = norm(str(entry["path"]))
        located = locate(name, roots)
        if located and located[1].is_file() and not located[1].is_symlink():
            out.add(name)
    return out


def read_members(archive: Path, names: set[str]) -> dict[str, bytes]:
    if not names:
        return {}
    return {name: data for name, _, data in iter_files(archive) if name in names}


# -- carrying it out ----------------------------------------------------------------------------------
@dataclass
class Restored:
    plan: RestorePlan
    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def execute_restore(plan: RestorePlan, report: VerifyReport, home: Path) -> Restored:
    """Write the planned files (0600, atomically, with their original mtimes), then the names.

    Files replaced are first copied to ``~/.taurus/restore-replaced/<time>/``.
    """
    result = Restored(plan)
    assert report.manifest is not None
    expected = {
        norm(str(e["path"])): (int(e["size"]), str(e["sha256"])) for e in report.manifest["files"]
    }
    files = {s.member: s for s in plan.steps if s.kind == "file"}
    todo = [s for s in files.values() if s.action in (RESTORE, REPLACE)]
    # a checkpoint and the hard links to it in the archive: one file, restored as one
    group: dict[str, list[RestoreStep]] = {}
    for step in files.values():
        if step.link:
            group.setdefault(step.link, []).append(step)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if any(s.action == REPLACE for s in todo):
        plan.replaced_dir = _new_folder(Path(home) / "restore-replaced", stamp)
    if todo:
        for name, info, data in iter_files(plan.archive):
            steps = [files[name], *group.get(name, [])] if name in files else []
            writes = [s for s in steps if s.action in (RESTORE, REPLACE)]
            if not writes:
                continue
            if (len(data), hashlib.sha256(data).hexdigest()) != expected.get(name):
                for step in writes:
                    result.failed.append((step.dest, "the archive changed since it was verified"))
                continue
            # a destination holding these bytes (there already, or written now): the
            # others are linked to it where the file system allows
            source = next((Path(s.dest) for s in steps if s.action == SAME), None)
            for step in writes:
                if _restore_one(step, data, info.mtime, plan.replaced_dir, result, source):
                    source = source or Path(step.dest)
    _make_names(plan, result)
    return result


def _restore_one(
    step: RestoreStep,
    data: bytes,
    mtime: float,
    replaced_dir: Path | None,
    result: Restored,
    link_from: Path | None = None,
) -> bool:
    """Write one planned file (one to restore: a hard link to ``link_from`` where it can
    be); whether it was written."""
    try:
        _write_one(step, data, mtime, replaced_dir, link_from)
    except (OSError, TaurusError) as exc:
        result.failed.append((step.dest, str(exc)))
        return False
    result.written.append(step.dest)
    return True


def _make_names(plan: RestorePlan, result: Restored) -> None:
    for step in plan.steps:
        if step.kind != "link" or step.action != RESTORE:
            continue
        dest, target = Path(step.dest), Path(step.target)
        if not target.is_file():
            result.failed.append((step.dest, f"its session {target} is not there"))
            continue
        try:
            point_link(dest, target)
        except OSError as exc:
            result.failed.append((step.dest, exc.strerror or str(exc)))
        else:
            result.written.append(step.dest)


def _new_folder(parent: Path, stamp: str) -> Path:
    """A folder made now and by nobody else (``stamp``, else ``stamp-2``, ...), so copies
    kept by an earlier restore in the same second are never overwritten."""
    ensure_dir(parent)
    for n in range(1, 10_000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return folder
    raise BackupError(f"too many restores at {stamp} in {parent}")  # pragma: no cover


def _write_one(
    step: RestoreStep,
    data: bytes,
    mtime: float,
    replaced_dir: Path | None,
    link_from: Path | None = None,
) -> None:
    dest = Path(step.dest)
    ensure_dir(dest.parent)
    lock: SessionLock | None = None
    if dest.name.endswith(".json"):
        lock = SessionLock(dest)
        try:
            lock.acquire()
        except SessionLocked:
            raise UsageError("open in a running chat (locked)") from None
    try:
        if step.action == RESTORE and (dest.exists() or dest.is_symlink()):
            raise UsageError("appeared on disk since the plan was made; kept it")
        if step.action == REPLACE and dest.exists():
            assert replaced_dir is not None
            _keep_copy(dest, replaced_dir / step.member)
        if step.action == RESTORE and link_from is not None and _hard_link(link_from, dest):
            return  # the same file: its bytes and mtime are already right
        if step.action == RESTORE:
            try:
                atomic_create(dest, data)  # never over a file that appeared meanwhile
            except FileExistsError:
                raise UsageError("appeared on disk since the plan was made; kept it") from None
        else:
            atomic_write(dest, data, mode=FILE_MODE)
        os.utime(dest, (mtime, mtime), follow_symlinks=False)
    finally:
        if lock is not None:
            lock.release()


def _hard_link(source: Path, dest: Path) -> bool:
    """Link ``dest`` to ``source``, a private regular file (0600); False where it cannot
    be (no hard links on this file system, another owner's mode, a link in the way)."""
    try:
        st = os.lstat(source)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != FILE_MODE:
        return False
    try:
        os.link(source, dest, follow_symlinks=False)
    except FileExistsError:
        raise UsageError("appeared on disk since the plan was made; kept it") from None
    except OSError:
        return False
    fsync_dir(dest.parent)
    return True


def _keep_copy(dest: Path, keep: Path) -> None:
    """Copy the file about to be replaced, with its times (never read through a link)."""
    ensure_dir(keep.parent)
    old, st = read_once(dest)
    atomic_create(keep, old)
    os.utime(keep, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


# -- the job --------------------------------------------------------------------------------------
class Refused(BackupError):
    """The backup failed verification: nothing was restored. ``problems`` says why."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class RestoreRequest:
    ref: str  # a backup file, or a remote backup's URL
    dry_run: bool = False
    force: bool = False  # also replace files newer on disk
    to: Path | None = None  # restore under this folder, as plain tar would
    wait: float = 0.0


@dataclass
class RestoreResult(JobResult):
    plan: RestorePlan
    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def error(self) -> str:
        return f"{plural(len(self.failed), 'file')} could not be restored"

    def as_json(self) -> dict[str, Any]:
        out = self.plan.as_json()
        if not self.dry_run:
            out["written"] = self.written
            out["failed"] = [{"path": p, "why": w} for p, w in self.failed]
        return out


def run(ctx: JobContext, request: RestoreRequest) -> RestoreResult:
    """Verify the backup (refusing one that fails), then under the ops lock plan the
    restore and, unless a dry run, carry it out. A remote backup (its URL) is first
    downloaded to a private temporary file and checked against its manifest."""
    from taurus_ops.ops.backup.offsite import Mismatch, fetched, is_remote_ref

    if is_remote_ref(request.ref):
        try:
            with fetched(request.ref, ctx.config, ctx.home) as (path, _):
                return _restore(ctx, request, path, request.ref)
        except Mismatch as exc:
            message = f"{request.ref} failed verification (1 problem); nothing restored"
            raise Refused(message, [str(exc)]) from None
    archive = Path(request.ref)
    if not archive.is_file():
        raise BackupError(f"no such backup file: {archive}")
    return _restore(ctx, request, archive.absolute(), "")


def _restore(ctx: JobContext, request: RestoreRequest, archive: Path, source: str) -> RestoreResult:
    from taurus_ops.ops.lock import ops_lock

    log = ctx.log("backup")
    shown = source or str(archive)
    report = verify_archive(archive)
    if not report.ok:
        log.warning("restore: refused %s: %s", shown, "; ".join(report.problems[:5]))
        n = plural(len(report.problems), "problem")
        raise Refused(f"{shown} failed verification ({n}); nothing restored", report.problems)
    to = request.to.absolute() if request.to is not None else None
    with ops_lock(ctx.home, request.wait, cancel=ctx.cancel, log=log):
        needed = differing_members(report, ctx.config, to)
        contents = read_members(archive, needed)
        plan = plan_restore(archive, report, ctx.config, request.force, to, contents)
        plan.source = source
        if request.dry_run:
            return RestoreResult(plan, dry_run=True)
        done = execute_restore(plan, report, ctx.home)
    result = RestoreResult(plan, done.written, done.failed)
    log.info(
        "restore: %s: wrote %d, kept %d, identical %d, failed %d",
        shown,
        len(result.written),
        plan.count(KEEP),
        plan.count(SAME),
        len(result.failed),
    )
    return result
