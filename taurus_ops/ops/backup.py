"""Backups: one ``.tar.gz`` that plain ``tar -xzf FILE -C ~/`` restores, with a manifest.

Layout. Member paths are relative to the user's home directory, so the default
layout gives ``.taurus/sessions/2025-01-18_abc123.json``, ``.taurus/archive/...``,
``.taurus/templates/...``, ``.taurus/config.yaml`` and the manifest
``.taurus/backup-manifest.json`` (written last). A folder outside the home
directory (``TAURUS_HOME=/srv/taurus`` or a ``sessionDirectory`` elsewhere) is
stored under its absolute path without the leading ``/`` (as GNU tar does), so
``tar -xzf FILE -C /`` puts those back; ``taurus-ops backup restore`` needs neither:
it maps every folder in the manifest to where the current settings say it lives.

Consistency. Each file is opened once and read from that open file, which is
hashed and archived from the same bytes: a chat saving meanwhile replaces the
file by rename, so the backup holds one whole version, never a mix.

Names (the tutorial's ``NAME.json`` symlinks) are stored as symlink members and
listed in the manifest; restore recreates only those, pointing at restored files.
Any other link, a hard link, a device, an absolute path or ``..`` makes an archive
fail verification, and restore writes nothing from an archive that fails.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from taurus_ops.errors import SessionLocked, TaurusError, UsageError
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import (
    FILE_MODE,
    LINK_TMP_SUFFIX,
    atomic_create,
    atomic_write,
    create_file,
    create_temp,
    ensure_dir,
    fsync_dir,
    is_temp_name,
    point_link,
    publish,
)
from taurus_ops.store.lock import SessionLock, is_lock_name, is_locked

BACKUP_PREFIX = "taurus-sessions-backup-"
BACKUP_RE = re.compile(r"^taurus-sessions-backup-(\d{8})-(\d{6})(?:-(\d+))?\.tar\.gz$")
MANIFEST_NAME = "backup-manifest.json"
MANIFEST_FORMAT = "taurus-backup"
MANIFEST_VERSION = 1
COMPRESS_LEVEL = 6  # gzip's own default: what `tar -czf` uses
KINDS = ("sessions", "archive", "templates", "config")
MANIFEST_MAX = 256 << 20  # far beyond any real manifest; a larger member is not one


class BackupError(TaurusError):
    """A backup could not be written, read or restored."""


# -- where things go ------------------------------------------------------------------------
def user_home() -> Path:
    return Path(os.path.normpath(Path.home().absolute()))


def member_for(path: Path, home: Path | None = None) -> str:
    """The archive member name of ``path``: relative to the home directory when inside it,
    else the absolute path without its leading slash."""
    home = home or user_home()
    path = Path(os.path.normpath(Path(path).absolute()))
    try:
        rel = path.relative_to(home)
    except ValueError:
        rel = Path(str(path).lstrip("/"))
    text = rel.as_posix()
    if text in ("", "."):
        raise UsageError(f"{path} is the home directory itself; give Taurus a folder of its own")
    return text


@dataclass
class Root:
    kind: str
    path: str  # on disk, at backup time
    member: str
    is_dir: bool = True


def roots_of(config: Any) -> list[Root]:
    """The folders and files a backup holds, per the backup.* settings."""
    s = config.settings
    home = Path(config.home)
    wanted: list[tuple[str, Path, bool]] = [("sessions", Path(config.session_dir), True)]
    if s.backup.include_archive:
        wanted.append(("archive", Path(config.archive_dir), True))
    if s.backup.include_templates:
        wanted.append(("templates", home / "templates", True))
    if s.backup.include_config:
        wanted.append(("config", home / "config.yaml", False))
    out = []
    seen: set[str] = set()
    for kind, path, is_dir in wanted:
        if is_dir and not path.is_dir():
            continue
        if not is_dir and not path.is_file():
            continue
        real = os.path.realpath(path)
        if real in seen:  # e.g. sessions.archiveDirectory is the session directory itself
            continue
        seen.add(real)
        out.append(Root(kind, str(path), member_for(path), is_dir))
    return out


def destinations(config: Any) -> dict[str, Path]:
    """Where each kind of root lives under the current settings."""
    home = Path(config.home)
    return {
        "sessions": Path(config.session_dir),
        "archive": Path(config.archive_dir),
        "templates": home / "templates",
        "config": home / "config.yaml",
    }


def manifest_member(config: Any) -> str:
    return f"{member_for(Path(config.home))}/{MANIFEST_NAME}"


# -- gathering files --------------------------------------------------------------------------
@dataclass
class Item:
    path: Path
    member: str
    kind: str  # file | dir | link
    link: str = ""  # for a link: its target as stored (relative)


def _skip_name(name: str) -> bool:
    return is_lock_name(name) or is_temp_name(name) or name.endswith(LINK_TMP_SUFFIX)


def gather(config: Any, roots: list[Root], notes: list[str]) -> list[Item]:
    """Every file, folder and name link to archive, in a stable order."""
    backup_dir = os.path.realpath(config.settings.backup.directory)
    excluded = {os.path.realpath(Path(config.home) / "quarantine"), backup_dir}
    items: list[Item] = []
    sessions_in_backup: dict[str, str] = {}  # real path -> member, of session files stored
    name_links: list[tuple[Path, str]] = []

    def unreadable(exc: OSError) -> None:  # a folder os.walk cannot list
        notes.append(f"skipped {exc.filename} ({exc.strerror or exc})")

    for root in roots:
        base = Path(root.path)
        if not root.is_dir:
            items.append(Item(base, root.member, "file"))
            continue
        real_base = os.path.realpath(base)
        # a root nested in this one (an archive inside the session folder) is its own
        # root: walking it here too would store every file twice
        others = {os.path.realpath(r.path) for r in roots if r is not root}
        other_names = {os.path.basename(r) for r in others}
        items.append(Item(base, root.member, "dir"))
        for folder, dirs, files in os.walk(base, onerror=unreadable):
            dirs[:] = sorted(
                d
                for d in dirs
                if os.path.realpath(os.path.join(folder, d)) not in excluded | others
                and not os.path.islink(os.path.join(folder, d))
            )
            rel_folder = Path(folder).relative_to(base)
            # backups kept in a folder that is backed up (backup.directory inside the
            # archive) are not stored again: each would hold all the earlier ones
            in_backup_dir = os.path.normpath(os.path.join(real_base, rel_folder)) == backup_dir
            for d in dirs:
                p = Path(folder) / d
                items.append(Item(p, f"{root.member}/{(rel_folder / d).as_posix()}", "dir"))
            for name in sorted(files):
                if _skip_name(name) or (in_backup_dir and BACKUP_RE.match(name)):
                    continue
                p = Path(folder) / name
                if name in other_names and os.path.realpath(p) in others:
                    continue
                member = f"{root.member}/{(rel_folder / name).as_posix()}"
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    if root.kind == "sessions" and folder == str(base) and name.endswith(".json"):
                        name_links.append((p, member))
                    else:
                        notes.append(f"skipped link {p} (not a session name)")
                elif stat.S_ISREG(st.st_mode):
                    items.append(Item(p, member, "file"))
                    if root.kind in ("sessions", "archive"):
                        real = os.path.join(real_base, rel_folder, name)
                        sessions_in_backup[os.path.normpath(real)] = member
                else:
                    notes.append(f"skipped {p} (not a regular file)")
    # a name is stored with a relative target (however it was made: `ln -s` with an
    # absolute path, into project-a/, into the archive), so plain tar restores it
    # anywhere; a name whose session is not in this backup is left out
    for p, member in name_links:
        target = sessions_in_backup.get(os.path.realpath(p))
        if target is None:
            notes.append(f"skipped link {p} (its session is not in this backup)")
            continue
        relative = posixpath.relpath(target, posixpath.dirname(member))
        items.append(Item(p, member, "link", relative))
    return items


# -- writing ------------------------------------------------------------------------------------
class _ThreadedGzip(io.RawIOBase):
    """A write-only gzip stream compressed on a second thread.

    zlib releases the GIL, so compressing one megabyte overlaps with reading,
    hashing and framing the next, much as ``tar -czf`` overlaps tar and gzip. An
    error in the compressor (a full disk) is raised by the next write or by finish().
    """

    CHUNK = 1 << 20

    def __init__(self, raw: IO[bytes], level: int, label: str = "") -> None:
        import gzip
        import queue
        import threading

        super().__init__()
        self.gz = gzip.GzipFile(
            filename=label, fileobj=raw, mode="wb", compresslevel=level, mtime=0
        )
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.buffer = bytearray()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="backup-gzip", daemon=True)
        self.thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.error is not None:
            raise self.error
        self.buffer += data
        if len(self.buffer) >= self.CHUNK:
            self.queue.put(bytes(self.buffer))
            self.buffer.clear()
        return len(data)

    def _work(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            if self.error is None:
                try:
                    self.gz.write(chunk)
                except BaseException as exc:  # handed to the writing thread
                    self.error = exc

    def finish(self) -> None:
        if self.buffer:
            self.queue.put(bytes(self.buffer))
            self.buffer.clear()
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.gz.close()

    def kill(self) -> None:
        self.error = self.error or OSError("stopped")
        self.queue.put(None)
        self.thread.join()


@dataclass
class Manifest:
    created: str
    home: str
    roots: list[dict[str, Any]]
    files: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "created": self.created,
            **fmt.name_fields("home", self.home),
            "roots": self.roots,
            "files": self.files,
            "links": self.links,
        }


@dataclass
class Created:
    path: Path
    files: int
    bytes: int  # of the files archived (before compression)
    size: int  # of the archive
    removed: list[Path] = field(default_factory=list)  # old backups rotated out
    notes: list[str] = field(default_factory=list)
    outside_home: list[str] = field(default_factory=list)


class _Member(tarfile.TarInfo):
    """A member whose name (or link target) is not valid UTF-8 gets a GNU header.

    A pax header could only carry such bytes with ``hdrcharset=BINARY``, which GNU tar
    before 1.35 warns about; the GNU header holds the exact bytes, and both tar and
    Python extract them as the name they were."""

    def tobuf(
        self,
        format: int | None = tarfile.DEFAULT_FORMAT,
        encoding: str | None = tarfile.ENCODING,
        errors: str = "surrogateescape",
    ) -> bytes:
        if fmt.name_bytes(self.name) is not None or fmt.name_bytes(self.linkname) is not None:
            format = tarfile.GNU_FORMAT
        return super().tobuf(format, encoding, errors)


def _tarinfo(member: str, kind: str, size: int = 0, mtime: float = 0, st: Any = None) -> Any:
    info = _Member(member)
    info.mtime = int(mtime)
    if st is not None:
        info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o700
    else:
        info.type = tarfile.REGTYPE
        info.mode = FILE_MODE
        info.size = size
    return info


def _read_once(path: Path) -> tuple[bytes, os.stat_result]:
    """The whole file as one version: opened once (never through a symlink), read to the end."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), st


def write_archive(
    target: Path,
    items: list[Item],
    manifest: Manifest,
    manifest_name: str = MANIFEST_NAME,
    threaded: bool = True,
    notes: list[str] | None = None,
    label: str = "",
    fd: int | None = None,
) -> tuple[int, int]:
    """Write the archive to ``target`` (which must not be visible yet); (files, bytes).

    ``fd``: ``target`` already created (exclusively) and open for writing.

    A file that cannot be read (another user's, say) is left out with a note, as tar
    does, rather than failing the whole backup."""
    total = 0
    count = 0
    stored: set[str] = set()  # members of the files written so far
    if fd is None:
        fd = create_file(target, FILE_MODE)  # exclusive, never through a planted link
    with os.fdopen(fd, "wb") as raw:
        sink: Any
        threaded_sink: _ThreadedGzip | None = None
        if threaded:
            threaded_sink = _ThreadedGzip(raw, COMPRESS_LEVEL, label)
            sink = threaded_sink
        else:
            sink = _gzip_file(raw, label)
        try:
            with tarfile.open(
                fileobj=sink,
                mode="w|",
                format=tarfile.PAX_FORMAT,
                encoding="utf-8",
                errors="surrogateescape",
            ) as tar:
                for item in items:
                    if item.kind == "dir":
                        try:
                            st = os.stat(item.path)
                        except FileNotFoundError:
                            continue
                        tar.addfile(_tarinfo(item.member, "dir", mtime=st.st_mtime, st=st))
                    elif item.kind == "link":
                        goal = posixpath.normpath(
                            posixpath.join(posixpath.dirname(item.member), item.link)
                        )
                        if goal not in stored:  # its session was left out or is gone
                            if notes is not None:
                                notes.append(
                                    f"skipped link {item.path} (its session is not in this backup)"
                                )
                            continue
                        info = _Member(item.member)
                        info.type = tarfile.SYMTYPE
                        info.linkname = item.link
                        info.mode = 0o777
                        info.uname = info.gname = ""
                        with contextlib.suppress(OSError):
                            info.mtime = int(os.lstat(item.path).st_mtime)
                        tar.addfile(info)
                        manifest.links.append(
                            {
                                **fmt.name_fields("path", item.member),
                                **fmt.name_fields("target", item.link),
                            }
                        )
                    else:
                        try:
                            data, st = _read_once(item.path)
                        except FileNotFoundError:
                            continue  # removed (archived, deleted) while backing up
                        except PermissionError as exc:
                            if notes is not None:
                                notes.append(f"skipped {item.path} ({exc.strerror})")
                            continue
                        digest = hashlib.sha256(data).hexdigest()
                        tar.addfile(
                            _tarinfo(item.member, "file", len(data), st.st_mtime, st),
                            io.BytesIO(data),
                        )
                        manifest.files.append(
                            {
                                **fmt.name_fields("path", item.member),
                                "size": len(data),
                                "sha256": digest,
                                "mtime": int(st.st_mtime),
                            }
                        )
                        total += len(data)
                        count += 1
                        stored.add(item.member)
                body = fmt.dumps(manifest.as_json())
                tar.addfile(
                    _tarinfo(manifest_name, "file", len(body), _now_ts()),
                    io.BytesIO(body),
                )
            if threaded_sink is not None:
                threaded_sink.finish()
            else:
                sink.close()
        except BaseException:
            if threaded_sink is not None:
                threaded_sink.kill()
            raise
        raw.flush()
        os.fsync(raw.fileno())
    return count, total


def _gzip_file(raw: IO[bytes], label: str = "") -> Any:
    import gzip

    return gzip.GzipFile(
        filename=label, fileobj=raw, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0
    )


# -- scope: which folders a backup holds, in the gzip header's name field -----------------------
SCOPE_PREFIX = "taurus-backup-scope-"


def scope_label(roots: list[Any]) -> str:
    """A short, stable label for the set of folders backed up (e.g. one project's sessions)."""
    import hashlib

    joined = "\n".join(sorted(str(r.path) for r in roots))
    return SCOPE_PREFIX + hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def scope_of(path: Path) -> str | None:
    """The scope label in a backup's gzip header, or None (an older backup, or not ours)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08" or not head[3] & 0x08:
        return None
    at = 10
    if head[3] & 0x04:  # FEXTRA
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    if end < 0:
        return None
    name = head[at:end].decode("latin-1")
    return name if name.startswith(SCOPE_PREFIX) else None


def _now_ts() -> float:
    return datetime.now(UTC).timestamp()


def backup_name(moment: datetime, suffix: int = 0) -> str:
    stamp = moment.astimezone().strftime("%Y%m%d-%H%M%S")
    return f"{BACKUP_PREFIX}{stamp}{'-' + str(suffix) if suffix else ''}.tar.gz"


def free_name(folder: Path, moment: datetime) -> Path:
    for suffix in range(0, 1000):
        candidate = folder / backup_name(moment, suffix)
        if not os.path.lexists(candidate):  # a dangling link takes the name too
            return candidate
    raise BackupError(f"too many backups named for {moment} in {folder}")  # pragma: no cover


def create_backup(
    config: Any,
    output: Path | None = None,
    now: datetime | None = None,
    verify: bool = True,
    threaded: bool = True,
) -> Created:
    """Write a backup, verify it, then (in backup.directory) remove all but the newest ``keep``.

    A failure at any point (a full disk, an unwritable folder) removes the partial
    archive and leaves every older backup as it was.
    """
    now = now or datetime.now(UTC)
    backup_dir = Path(config.settings.backup.directory)
    if output is None:
        folder = backup_dir
        _ensure_writable_dir(folder)
        target = free_name(folder, now)
    else:
        target = Path(output).absolute()
        if target.is_dir():
            target = free_name(target, now)
        folder = target.parent
        if not folder.is_dir():
            raise BackupError(f"cannot write {target}: folder {folder} does not exist")
        if target.exists() or target.is_symlink():
            raise BackupError(f"{target} already exists; not overwriting it")
    roots = roots_of(config)
    if not roots:
        raise BackupError(f"nothing to back up: {config.session_dir} does not exist")
    notes: list[str] = []
    items = gather(config, roots, notes)
    home = user_home()
    manifest = Manifest(
        fmt.format_time(now),
        str(home),
        [
            {**asdict(r), **fmt.name_fields("path", r.path), **fmt.name_fields("member", r.member)}
            for r in roots
        ],
    )
    outside = [r.path for r in roots if not _inside(Path(r.path), home)]
    try:
        tmp, fd = create_temp(target)  # a new random name, never a file planted there
    except OSError as exc:
        raise BackupError(f"could not write the backup in {folder}: {exc.strerror}") from None
    try:
        count, total = write_archive(
            tmp, items, manifest, manifest_member(config), threaded, notes, scope_label(roots), fd
        )
        if verify:
            report = verify_archive(tmp)
            if not report.ok:
                raise BackupError(
                    "the new backup did not verify: " + "; ".join(report.problems[:3])
                )
        publish(tmp, target)
        fsync_dir(folder)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, TaurusError):
            reason = exc.strerror or str(exc)
            raise BackupError(
                f"could not write the backup in {folder}: {reason}; "
                "the partial archive was removed, older backups are untouched"
            ) from None
        raise
    created = Created(
        target, count, total, target.stat().st_size, notes=notes, outside_home=outside
    )
    if os.path.realpath(target.parent) == os.path.realpath(backup_dir):
        created.removed = rotate(
            backup_dir, config.settings.backup.keep, keep_also=target, scope=scope_label(roots)
        )
    return created


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.normpath(path.absolute())).relative_to(folder)
        return True
    except ValueError:
        return False


def _ensure_writable_dir(folder: Path) -> None:
    try:
        ensure_dir(folder)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup folder {folder}: {exc.strerror or exc}"
        ) from None
    if not folder.is_dir():
        raise BackupError(f"backup.directory {folder} is not a folder")


# -- listing and rotation ---------------------------------------------------------------------
@dataclass
class BackupFile:
    path: Path
    size: int
    stamp: datetime

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "size": self.size, "created": fmt.format_time(self.stamp)}


def list_backups(folder: Path) -> list[BackupFile]:
    """Backups (by their names) in ``folder``, newest first; other files are ignored."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = BACKUP_RE.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        try:
            moment = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
        except ValueError:
            continue
        stamp = moment.astimezone(UTC)
        out.append((stamp, int(match.group(3) or 0), BackupFile(Path(entry.path), 0, stamp)))
    out.sort(key=lambda t: (t[0], t[1]), reverse=True)
    result = []
    for _, _, item in out:
        with contextlib.suppress(FileNotFoundError):
            item.size = item.path.stat().st_size
            result.append(item)
    return result


def rotate(
    folder: Path, keep: int, keep_also: Path | None = None, scope: str | None = None
) -> list[Path]:
    """Remove all but the newest ``keep`` backups in ``folder`` (named ones only).

    With ``scope``, only backups of the same folders count: a backup made inside a
    project (its own ``sessionDirectory``) never rotates away full backups, nor the
    other way round. Backups without a scope label (older ones) count with any scope.
    """
    removed = []
    backups = list_backups(folder)
    if scope is not None:
        backups = [b for b in backups if scope_of(b.path) in (scope, None)]
    for item in backups[keep:]:
        if keep_also is not None and item.path == keep_also:
            continue
        with contextlib.suppress(FileNotFoundError):
            item.path.unlink()
            removed.append(item.path)
    return removed


# -- reading and verifying ------------------------------------------------------------------------
def member_problem(info: tarfile.TarInfo) -> str | None:
    """Why a member may not be restored, or None. Stricter than tarfile's data filter."""
    name = info.name
    if not name or "\0" in name:
        return "an empty member name"
    # on POSIX (the only system Taurus runs on) a backslash or a ``C:`` is part of a
    # name like any other character: refusing them made such a file stop every backup
    if name.startswith("/"):
        return f"{name!r}: absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"{name!r}: '..' in the path"
    if info.isreg() or info.isdir():
        return None
    if info.issym():
        return None  # allowed only as a name the manifest lists; checked against it later
    if info.islnk():
        return f"{name!r}: hard link"
    return f"{name!r}: special file (device, fifo or the like)"


@dataclass
class VerifyReport:
    path: Path
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    files: int = 0
    bytes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "bytes": self.bytes,
        }


def _norm(name: str) -> str:
    return str(PurePosixPath(name))


def verify_archive(path: Path) -> VerifyReport:
    """Read the whole archive: every member safe, every checksum and size as the manifest says."""
    report = VerifyReport(Path(path))
    seen: dict[str, tuple[int, str]] = {}
    links: dict[str, str] = {}
    found: tuple[str, bytes, tuple[int, str]] | None = None  # the last manifest so far
    dirs: set[str] = set()
    try:
        # gzip.GzipFile (not tarfile's own stream) checks the CRC and length at the end,
        # so an archive cut short is reported as such wherever the cut falls
        with (
            open(path, "rb") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r|", encoding="utf-8", errors="surrogateescape") as tar,
        ):
            for info in tar:
                name = _norm(info.name) if info.name else ""
                problem = member_problem(info)
                if problem:
                    report.problems.append(problem)
                    continue
                if name in seen or name in links:
                    report.problems.append(f"{name!r}: appears twice")
                    continue
                if info.isdir():
                    dirs.add(name)
                elif info.issym():
                    links[name] = info.linkname
                else:
                    handle = tar.extractfile(info)
                    assert handle is not None
                    digest = hashlib.sha256()
                    size = 0
                    keep = PurePosixPath(name).name == MANIFEST_NAME and info.size <= MANIFEST_MAX
                    body = bytearray()
                    while True:
                        chunk = handle.read(1 << 20)
                        if not chunk:
                            break
                        digest.update(chunk)
                        size += len(chunk)
                        if keep:
                            body.extend(chunk)
                    if not keep:
                        seen[name] = (size, digest.hexdigest())
                        continue
                    # the manifest is written last: an earlier file of that name (a
                    # backup once extracted into the sessions) is an ordinary file
                    if found is not None:
                        earlier, _, earlier_sum = found
                        if earlier == name or earlier in seen:
                            report.problems.append(f"{earlier!r}: appears twice")
                        seen[earlier] = earlier_sum
                    found = (name, bytes(body), (size, digest.hexdigest()))
            while gz.read(1 << 20):  # tar's end padding; then the gzip trailer is checked
                pass
    except FileNotFoundError:
        report.problems.append(f"no such file: {path}")
        return report
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        report.problems.append(f"unreadable archive: {_reason(exc)}")
        return report
    if found is None:
        report.problems.append("no manifest (not a taurus-ops backup)")
        return report
    try:
        manifest = fmt.loads(found[1])
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a taurus-ops manifest")
        files = manifest["files"]
        roots = manifest["roots"]
        mlinks = manifest.get("links", [])
        if not (isinstance(files, list) and isinstance(roots, list) and isinstance(mlinks, list)):
            raise ValueError("files, roots and links must be lists")
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"manifest unreadable: {_reason(exc)}")
        return report
    report.manifest = manifest
    root_members = []
    for root in roots:
        try:
            if not isinstance(root, dict) or root.get("kind") not in KINDS:
                raise ValueError("unknown kind")
            root["member"] = fmt.name_from(root, "member")  # a name not UTF-8: its bytes
            if not root["member"]:
                raise ValueError("no member")
        except (KeyError, ValueError):
            report.problems.append(f"manifest: unknown root {root!r}")
            continue
        member = _norm(root["member"])
        bad = member_problem(tarfile.TarInfo(member))
        if bad:
            report.problems.append(f"manifest root {bad}")
        root_members.append(member)
    listed: set[str] = set()
    for entry in files:
        try:
            entry["path"] = fmt.name_from(entry, "path")  # a name not UTF-8: its exact bytes
            name = _norm(entry["path"])
            size, digest = int(entry["size"]), str(entry["sha256"])
            float(entry.get("mtime", 0))  # restore compares it with the file on disk
        except (KeyError, TypeError, ValueError, AttributeError):
            report.problems.append(f"manifest: bad file entry {entry!r}")
            continue
        listed.add(name)
        if not any(name == r or name.startswith(r + "/") for r in root_members):
            report.problems.append(f"{name!r}: outside every folder the manifest lists")
        got = seen.get(name)
        if got is None:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif got[0] != size:
            report.problems.append(f"{name}: size {got[0]}, the manifest says {size}")
        elif got[1] != digest:
            report.problems.append(f"{name}: checksum mismatch")
        else:
            report.files += 1
            report.bytes += size
    for name in sorted(set(seen) - listed):
        report.problems.append(f"{name}: in the archive but not in the manifest")
    listed_links = {}
    for entry in mlinks:
        try:
            entry["path"] = fmt.name_from(entry, "path")
            entry["target"] = fmt.name_from(entry, "target")
        except (KeyError, ValueError, TypeError, AttributeError):
            report.problems.append(f"manifest: bad link entry {entry!r}")
            continue
        listed_links[_norm(entry["path"])] = entry["target"]
    for name, target in links.items():
        if listed_links.get(name) != target:
            report.problems.append(f"{name!r}: symbolic link not listed as a session name")
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
        if target.startswith("/") or resolved not in listed or not name.endswith(".json"):
            report.problems.append(f"{name!r}: link to {target!r}, not a file in this backup")
    for name in sorted(set(listed_links) - set(links)):
        report.problems.append(f"{name}: name listed in the manifest but missing")
    report.ok = not report.problems
    return report


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


def iter_files(path: Path) -> Iterator[tuple[str, tarfile.TarInfo, bytes]]:
    """(normalised name, info, bytes) of each regular member, streaming."""
    with tarfile.open(path, mode="r|gz", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            if not info.isreg() or member_problem(info):
                continue
            handle = tar.extractfile(info)
            assert handle is not None
            yield _norm(info.name), info, handle.read()


# -- restore ----------------------------------------------------------------------------------------
RESTORE = "restore"
REPLACE = "replace"
SAME = "same"
KEEP = "keep"


@dataclass
class RestoreStep:
    member: str
    dest: str
    action: str  # restore | replace | same | keep
    why: str = ""
    size: int = 0
    kind: str = "file"  # file | link
    target: str = ""  # for a link: the file it leads to


@dataclass
class RestorePlan:
    archive: Path
    steps: list[RestoreStep] = field(default_factory=list)
    replaced_dir: Path | None = None

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)

    def as_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "steps": [asdict(s) for s in self.steps],
            "replacedDir": str(self.replaced_dir) if self.replaced_dir else None,
        }


def _updated_of(data: bytes) -> datetime | None:
    try:
        doc = fmt.loads(data)
    except ValueError:
        return None
    return fmt.parse_time(doc.get("updated")) if isinstance(doc, dict) else None


def _dest_map(
    manifest: dict[str, Any], config: Any, to: Path | None
) -> list[tuple[str, str, Path]]:
    """(root member, kind, destination) for each root; ``to`` restores as plain tar would."""
    dests = destinations(config)
    out = []
    for root in manifest["roots"]:
        member = _norm(str(root["member"]))
        kind = str(root["kind"])
        dest = (Path(to) / member) if to is not None else dests[kind]
        out.append((member, kind, dest))
    out.sort(key=lambda t: len(t[0]), reverse=True)  # the most specific root first
    return out


def _locate(name: str, roots: list[tuple[str, str, Path]]) -> tuple[str, Path] | None:
    for member, kind, dest in roots:
        if name == member:
            return kind, dest
        if name.startswith(member + "/"):
            return kind, dest / name[len(member) + 1 :]
    return None


def _through_link(name: str, dest: Path, roots: list[tuple[str, str, Path]]) -> bool:
    """True if ``dest``'s folder, inside its root, is reached through a symlink that leads
    out of that root: writing there would write through a link planted in the store."""
    for member, _, root in roots:
        if name.startswith(member + "/"):
            real_root = os.path.realpath(root)
            real = os.path.realpath(dest.parent)
            return real != real_root and not real.startswith(real_root + os.sep)
    return False


def plan_restore(
    archive: Path,
    report: VerifyReport,
    config: Any,
    force: bool = False,
    to: Path | None = None,
    contents: dict[str, bytes] | None = None,
) -> RestorePlan:
    """Decide, per file, what restoring ``archive`` does. ``contents`` (member -> bytes) is
    needed only for files that differ on disk, to compare their ``updated`` times; the
    caller passes what it read."""
    assert report.ok and report.manifest is not None
    manifest = report.manifest
    roots = _dest_map(manifest, config, to)
    plan = RestorePlan(Path(archive))
    other_dir = {
        "sessions": Path(config.archive_dir),
        "archive": Path(config.session_dir),
    }
    moved: dict[str, Path] = {}  # member -> where that session lives now (archived since)
    for entry in manifest["files"]:
        name = _norm(str(entry["path"]))
        located = _locate(name, roots)
        if located is None:  # pragma: no cover - verify checked it
            continue
        kind, dest = located
        step = RestoreStep(name, str(dest), RESTORE, size=int(entry["size"]))
        plan.steps.append(step)
        if dest.is_symlink() or (dest.exists() and not dest.is_file()):
            step.action, step.why = KEEP, "exists and is not a regular file"
            continue
        if _through_link(name, dest, roots):
            step.action, step.why = KEEP, "its folder is a link leading elsewhere; not written"
            continue
        if dest.exists():
            try:
                digest = _sha256_file(dest)
            except OSError as exc:  # another user's file, say: left as it is
                step.action, step.why = KEEP, f"cannot read it: {exc.strerror or exc}"
                continue
            if digest == entry["sha256"]:
                step.action, step.why = SAME, "identical on disk"
                continue
            if to is None and kind in ("sessions", "archive") and is_locked(dest):
                step.action, step.why = KEEP, "open in a running chat (locked)"
                continue
            newer = _disk_is_newer(dest, entry, (contents or {}).get(name), kind)
            if newer and not force:
                step.action, step.why = KEEP, "newer on disk (use --force to replace it)"
                continue
            step.action = REPLACE
            step.why = "newer on disk; replaced (--force)" if newer else "older on disk"
            continue
        if to is None and kind in other_dir and (other_dir[kind] / dest.name).exists():
            where = "archive" if kind == "sessions" else "session directory"
            step.action, step.why = KEEP, f"present in the {where} as {other_dir[kind] / dest.name}"
            moved[name] = other_dir[kind] / dest.name
            continue
        step.why = "missing on disk"
    for entry in manifest.get("links", []):
        name = _norm(str(entry["path"]))
        target_member = os.path.normpath(os.path.join(os.path.dirname(name), entry["target"]))
        located = _locate(name, roots)
        target = _locate(target_member, roots)
        if located is None or target is None:  # pragma: no cover - verify checked it
            continue
        _, dest = located
        goal = moved.get(target_member, target[1])  # a name follows its session
        step = RestoreStep(name, str(dest), RESTORE, kind="link", target=str(goal))
        plan.steps.append(step)
        if dest.is_symlink() or dest.exists():
            same = dest.is_symlink() and os.path.realpath(dest) == os.path.realpath(goal)
            step.action = SAME if same else KEEP
            step.why = "already there" if same else "a file or another name is there"
        else:
            step.why = "name missing on disk"
    return plan


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _disk_is_newer(dest: Path, entry: dict[str, Any], data: bytes | None, kind: str) -> bool:
    if kind in ("sessions", "archive") and data is not None:
        ours = _updated_of(data)
        try:
            theirs = _updated_of(dest.read_bytes())
        except OSError:
            theirs = None
        if ours is not None and theirs is not None:
            return theirs > ours
    try:
        return os.stat(dest).st_mtime > float(entry.get("mtime", 0))
    except OSError:
        return False


def differing_members(report: VerifyReport, config: Any, to: Path | None) -> set[str]:
    """Members whose destination exists with other bytes (their content is needed to plan)."""
    assert report.manifest is not None
    roots = _dest_map(report.manifest, config, to)
    out = set()
    for entry in report.manifest["files"]:
        name = _norm(str(entry["path"]))
        located = _locate(name, roots)
        if located and located[1].is_file() and not located[1].is_symlink():
            out.add(name)
    return out


def read_members(archive: Path, names: set[str]) -> dict[str, bytes]:
    if not names:
        return {}
    return {name: data for name, _, data in iter_files(archive) if name in names}


@dataclass
class RestoreResult:
    plan: RestorePlan
    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def execute_restore(plan: RestorePlan, report: VerifyReport, home: Path) -> RestoreResult:
    """Write the planned files (0600, atomically, with their original mtimes), then the names.

    Files replaced are first copied to ``~/.taurus/restore-replaced/<time>/``.
    """
    result = RestoreResult(plan)
    assert report.manifest is not None
    expected = {
        _norm(str(e["path"])): (int(e["size"]), str(e["sha256"])) for e in report.manifest["files"]
    }
    todo = {s.member: s for s in plan.steps if s.kind == "file" and s.action in (RESTORE, REPLACE)}
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if any(s.action == REPLACE for s in todo.values()):
        plan.replaced_dir = _new_folder(Path(home) / "restore-replaced", stamp)
    if todo:
        for name, info, data in iter_files(plan.archive):
            step = todo.get(name)
            if step is None:
                continue
            if (len(data), hashlib.sha256(data).hexdigest()) != expected.get(name):
                result.failed.append((step.dest, "the archive changed since it was verified"))
                continue
            try:
                _write_one(step, data, info.mtime, plan.replaced_dir)
            except (OSError, TaurusError) as exc:
                result.failed.append((step.dest, str(exc)))
            else:
                result.written.append(step.dest)
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
    return result


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


def _write_one(step: RestoreStep, data: bytes, mtime: float, replaced_dir: Path | None) -> None:
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
            keep = replaced_dir / step.member
            ensure_dir(keep.parent)
            old, st = _read_once(dest)  # never through a link
            atomic_create(keep, old)
            os.utime(keep, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
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
