"""What a backup is: its file name, the member paths inside it, the manifest, its scope.

Member paths are relative to the user's home directory, so the default layout gives
``.taurus/sessions/2025-01-18_abc123.json``, ``.taurus/archive/...``,
``.taurus/templates/...``, ``.taurus/config.yaml``, the file checkpoints of the
sessions backed up, ``.taurus/checkpoints/<session-id>/<sha256>``, and the manifest
``.taurus/backup-manifest.json`` (written last). A checkpoint a fork shares with its
parent (one file, hard-linked into both folders) is stored once, the second name as a
tar hard link to the first; that is the only hard link a backup may hold. A folder outside the home directory
(``TAURUS_HOME=/srv/taurus`` or a ``sessionDirectory`` elsewhere) is stored under its
absolute path without the leading ``/`` (as GNU tar does), so ``tar -xzf FILE -C /``
puts those back; ``taurus-ops backup restore`` maps every folder in the manifest to
where the current settings say it lives.

The scope, a label in the gzip header's name field, says which folders a backup
holds, so rotation only counts backups of the same folders against ``backup.keep``
(the checkpoints follow the sessions, so they are not part of it).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import TaurusError, UsageError
from taurus_ops.store import format as fmt
from taurus_ops.store.checkpoints import FOLDER_NAME as CHECKPOINT_FOLDER
from taurus_ops.store.checkpoints import SHA_RE

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config

BACKUP_PREFIX = "taurus-sessions-backup-"
BACKUP_RE = re.compile(r"^taurus-sessions-backup-(\d{8})-(\d{6})(?:-(\d+))?\.tar\.gz$")
MANIFEST_NAME = "backup-manifest.json"
MANIFEST_FORMAT = "taurus-backup"
MANIFEST_VERSION = 1
COMPRESS_LEVEL = 6  # gzip's own default: what `tar -czf` uses
CHECKPOINTS = "checkpoints"  # the kind of root holding the sessions' file checkpoints
KINDS = ("sessions", "archive", "templates", "config", CHECKPOINTS)
MANIFEST_MAX = 256 << 20  # far beyond any real manifest; a larger member is not one
SCOPE_PREFIX = "taurus-backup-scope-"


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


def inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.normpath(path.absolute())).relative_to(folder)
        return True
    except ValueError:
        return False


def norm(name: str) -> str:
    """A member name as compared everywhere (``a//b/./c`` is ``a/b/c``)."""
    return str(PurePosixPath(name))


@dataclass
class Root:
    kind: str
    path: str  # on disk, at backup time
    member: str
    is_dir: bool = True


def roots_of(config: Config) -> list[Root]:
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
    # last: only the folders of the sessions gathered from the roots before it are kept
    wanted.append((CHECKPOINTS, home / CHECKPOINT_FOLDER, True))
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


def destinations(config: Config) -> dict[str, Path]:
    """Where each kind of root lives under the current settings."""
    home = Path(config.home)
    return {
        "sessions": Path(config.session_dir),
        "archive": Path(config.archive_dir),
        "templates": home / "templates",
        "config": home / "config.yaml",
        CHECKPOINTS: home / CHECKPOINT_FOLDER,
    }


def manifest_member(config: Config) -> str:
    return f"{member_for(Path(config.home))}/{MANIFEST_NAME}"


# -- the manifest -----------------------------------------------------------------------------
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


def new_manifest(roots: list[Root], now: datetime) -> Manifest:
    return Manifest(
        fmt.format_time(now),
        str(user_home()),
        [
            {**asdict(r), **fmt.name_fields("path", r.path), **fmt.name_fields("member", r.member)}
            for r in roots
        ],
    )


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
        target = info.linkname
        if not target or "\0" in target or target.startswith("/"):
            return f"{name!r}: hard link to {target!r}"
        if ".." in PurePosixPath(target).parts:
            return f"{name!r}: hard link to {target!r} ('..' in the path)"
        return None  # allowed only between checkpoints; checked against the manifest later
    return f"{name!r}: special file (device, fifo or the like)"


def checkpoint_problem(name: str, root: str) -> str | None:
    """Why ``name``, under the checkpoints root ``root``, is not ``<folder>/<sha256>``."""
    parts = name[len(root) + 1 :].split("/")
    if len(parts) != 2 or not parts[0] or not SHA_RE.match(parts[1]):
        return f"{name!r}: not a checkpoint (a file named by its sha256 in a session's folder)"
    return None


# -- scope: which folders a backup holds, in the gzip header's name field -----------------------
def scope_label(roots: list[Root]) -> str:
    """A short, stable label for the set of folders backed up (e.g. one project's sessions)."""
    joined = "\n".join(sorted(str(r.path) for r in roots if r.kind != CHECKPOINTS))
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


# -- names --------------------------------------------------------------------------------------
def backup_name(moment: datetime, suffix: int = 0) -> str:
    stamp = moment.astimezone().strftime("%Y%m%d-%H%M%S")
    return f"{BACKUP_PREFIX}{stamp}{'-' + str(suffix) if suffix else ''}.tar.gz"


def stamp_of(name: str) -> tuple[datetime, int] | None:
    """When a backup named ``name`` was made (UTC) and its same-second suffix, or None."""
    match = BACKUP_RE.match(name)
    if not match:
        return None
    try:
        moment = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return moment.astimezone(UTC), int(match.group(3) or 0)


def free_name(folder: Path, moment: datetime) -> Path:
    for suffix in range(0, 1000):
        candidate = folder / backup_name(moment, suffix)
        if not os.path.lexists(candidate):  # a dangling link takes the name too
            return candidate
    raise BackupError(f"too many backups named for {moment} in {folder}")  # pragma: no cover


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, at most 160 characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
