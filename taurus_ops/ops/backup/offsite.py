"""Offsite copies: each backup uploaded to ``backup.destination`` (S3 or a folder).

Under the destination's prefix, each machine (``remote.device``, default the host
name) keeps its backups in a folder of its own:

    laptop/taurus-sessions-backup-20250118-030000.tar.gz          the archive, as is
    laptop/taurus-sessions-backup-20250118-030000.manifest.json   written last: the commit

The archive object is the very ``.tar.gz`` made here, so plain ``tar -xzf`` restores
a downloaded copy; with ``remote.encryptionKeyFile`` set it is sealed on this machine
first (remote/sealed.py). The manifest object, written only once the archive is
whole on the remote, records the sha256 and size of the object and of the archive,
the scope, the device and whether (and with which key id) it is encrypted. Only an
archive with its manifest is a backup: an upload cut off midway (a killed process, a
dropped connection) leaves either nothing (an S3 PUT is atomic, a folder write is
renamed into place) or an archive without a manifest, which ``backup list`` never
shows and rotation removes after a day. Both writes are conditional creates, so
nothing is ever overwritten. Rotation deletes a manifest before its archive.

Credentials come only from the AWS chain (remote/s3.py); the S3 settings
(``remote.endpointUrl``, ``region``, ``profile``) apply to the destination too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import UsageError
from taurus_ops.ops.backup.layout import BACKUP_RE, BackupError, backup_name, stamp_of
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import ensure_dir

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.remote.base import Remote
    from taurus_ops.remote.codec import Key

REMOTE_FORMAT = "taurus-backup-remote"
MANIFEST_SUFFIX = ".manifest.json"
ORPHAN_AGE = timedelta(days=1)  # an archive without a manifest this old is a cut-off upload
MAX_RECORD = 1 << 20
_ARCHIVE_KEY = re.compile(r"^([^/]+)/(taurus-sessions-backup-\d{8}-\d{6}(?:-\d+)?)\.tar\.gz$")
_RECORD_KEY = re.compile(r"^([^/]+)/(taurus-sessions-backup-\d{8}-\d{6}(?:-\d+)?)\.manifest\.json$")
SCHEMES = ("s3://", "file://")


class Mismatch(BackupError):
    """A downloaded backup is not what its manifest says (damaged, altered, cut short)."""


def is_remote_ref(ref: str) -> bool:
    return ref.startswith(SCHEMES)


def record_name(archive_name: str) -> str:
    return archive_name[: -len(".tar.gz")] + MANIFEST_SUFFIX


@dataclass
class RemoteBackup:
    """One committed backup on the remote: its archive and its manifest object."""

    url: str  # the archive's URL: what `backup list` shows and verify/restore take
    key: str  # the archive's key under the place it was listed from
    device: str
    name: str
    stamp: datetime
    suffix: int
    size: int  # of the object
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str | None:
        scope = self.record.get("scope")
        return scope if isinstance(scope, str) else None

    @property
    def encrypted(self) -> bool:
        return bool(self.record.get("encrypted"))

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.url,
            "size": self.size,
            "created": fmt.format_time(self.stamp),
            "where": "remote",
            "device": self.device,
            "encrypted": self.encrypted,
        }


@dataclass
class Listing:
    backups: list[RemoteBackup] = field(default_factory=list)  # newest first
    orphans: list[str] = field(default_factory=list)  # keys of halves of cut-off uploads


# -- where --------------------------------------------------------------------------------------
@dataclass
class Place:
    """A remote folder of backups: the destination, or the folder of one backup's URL."""

    remote: Remote
    url: str
    key: Key | None
    device: str = ""

    def close(self) -> None:
        self.remote.close()

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}"


def _open(url: str, config: Config) -> Place:
    from taurus_ops.remote import open_backend
    from taurus_ops.remote.codec import load_key
    from taurus_ops.remote.url import device_of, parse_remote_url

    settings = config.settings.remote
    where = parse_remote_url(url)
    key_file = settings.encryption_key_file
    key = load_key(Path(key_file)) if key_file else None
    return Place(open_backend(where, settings), where.url, key, device_of(config.settings))


def open_destination(config: Config) -> Place | None:
    """The configured ``backup.destination``, opened (no request made yet), or None.
    A key file that is missing or not a key, or an unknown profile: RemoteConfigError."""
    url = config.settings.backup.destination
    return _open(url, config) if url else None


def place_of(ref: str, config: Config) -> tuple[Place, str]:
    """The folder holding the backup at URL ``ref``, and the backup's name."""
    from taurus_ops.remote.base import RemoteConfigError

    parent, _, name = ref.rstrip("/").rpartition("/")
    if not BACKUP_RE.match(name):
        raise UsageError(
            f"{ref} does not name a backup (…/taurus-sessions-backup-YYYYMMDD-HHMMSS.tar.gz): "
            "see `taurus-ops backup list`"
        )
    try:
        return _open(parent, config), name
    except ValueError as exc:
        raise RemoteConfigError(f"{ref}: {exc}") from None


# -- listing ------------------------------------------------------------------------------------
def list_backups(place: Place) -> Listing:
    """Every committed backup under the destination (all devices), newest first."""
    archives: dict[tuple[str, str], int] = {}
    records: set[tuple[str, str]] = set()
    for item in place.remote.list(""):
        found = _ARCHIVE_KEY.match(item.key)
        if found:
            archives[(found.group(1), found.group(2))] = item.size
        found = _RECORD_KEY.match(item.key)
        if found:
            records.add((found.group(1), found.group(2)))
    listing = Listing()
    for device, stem in sorted(set(archives) | records):
        name = f"{stem}.tar.gz"
        key = f"{device}/{name}"
        if (device, stem) not in archives or (device, stem) not in records:
            listing.orphans.append(key if (device, stem) in archives else record_name(key))
            continue
        record = _read_record(place, record_name(key))
        stamp = stamp_of(name)
        if record is None or stamp is None:
            continue  # not a manifest of ours: never listed, never removed
        # the name holds the uploading machine's local time; the manifest the moment itself
        moment = fmt.parse_time(record.get("created")) or stamp[0]
        size = archives[(device, stem)]
        listing.backups.append(
            RemoteBackup(place.url_of(key), key, device, name, moment, stamp[1], size, record)
        )
    listing.backups.sort(key=lambda b: (b.stamp, b.suffix), reverse=True)
    return listing


def _read_record(place: Place, key: str) -> dict[str, Any] | None:
    found = place.remote.get(key)
    if found is None or len(found.data) > MAX_RECORD:
        return None
    try:
        record = json.loads(found.data)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != REMOTE_FORMAT:
        return None
    return record


# -- uploading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Local:
    """The local backup to upload, with what its manifest object records."""

    path: Path
    files: int
    bytes: int
    scope: str


def upload(place: Place, local: Local, workdir: Path) -> RemoteBackup:
    """Upload the archive (sealed first if a key is set), then its manifest object."""
    with _private_temp(workdir, ".backup-upload-") as sealed:
        source = local.path
        if place.key is not None:
            from taurus_ops.remote.sealed import seal_file

            with open(sealed, "wb") as sink:
                seal_file(local.path, sink, place.key)
            source = sealed
        record = _record(place, local, source)
        return _commit(place, local, source, record)


def _record(place: Place, local: Local, source: Path) -> dict[str, Any]:
    archive = _sum(local.path)
    stored = _sum(source) if source != local.path else archive
    return {
        "format": REMOTE_FORMAT,
        "version": 1,
        "device": place.device,
        "uploaded": fmt.now_iso(),
        "scope": local.scope,
        "files": local.files,
        "bytes": local.bytes,
        "archiveSha256": archive[1],
        "archiveSize": archive[0],
        "objectSha256": stored[1],
        "objectSize": stored[0],
        "encrypted": "AES-256-GCM" if place.key is not None else None,
        "keyId": place.key.id if place.key is not None else None,
    }


def _commit(place: Place, local: Local, source: Path, record: dict[str, Any]) -> RemoteBackup:
    """Create the archive object under the first free name, then its manifest (the commit).
    A name taken (by a committed backup or a cut-off upload) is never overwritten."""
    from taurus_ops.remote.base import Conflict

    # the local backup's own name where it has one (not a `-o mine.tar.gz`)
    stamp = stamp_of(local.path.name) or (datetime.now(UTC), 0)
    moment = stamp[0]
    for suffix in range(stamp[1], stamp[1] + 100):
        name = backup_name(moment, suffix)
        key = f"{place.device}/{name}"
        try:
            place.remote.put_new_file(key, source, {"sha256": record["objectSha256"]})
        except Conflict:
            continue
        record = {**record, "name": name, "created": fmt.format_time(moment)}
        body = json.dumps(record, indent=2).encode() + b"\n"
        try:
            place.remote.put_new(record_name(key), body, {})
        except Conflict:  # a manifest left without its archive: this name is not ours
            place.remote.delete(key)
            continue
        size = int(record["objectSize"])
        return RemoteBackup(
            place.url_of(key), key, place.device, name, moment, suffix, size, record
        )
    raise BackupError(f"remote {place.url}: no free name for {local.path.name}")  # pragma: no cover


# -- rotation -------------------------------------------------------------------------------------
def plan_rotation(
    listing: Listing,
    device: str,
    keep: int,
    scope: str,
    spare: str = "",
    now: datetime | None = None,
) -> list[str]:
    """Keys rotation removes: this device's backups of this scope beyond ``keep`` (never
    ``spare``, the one just uploaded), and its halves of uploads cut off over a day ago."""
    from taurus_ops.ops.backup.rotate import beyond_keep

    mine = [b for b in listing.backups if b.device == device]
    scopes = {b.key: b.scope for b in mine}
    old = beyond_keep([b.key for b in mine], scopes, keep, scope, spare)
    cutoff = (now or datetime.now(UTC)) - ORPHAN_AGE
    for key in listing.orphans:
        stamp = stamp_of(key.split("/", 1)[1].replace(MANIFEST_SUFFIX, ".tar.gz"))
        if key.startswith(f"{device}/") and key != spare and stamp and stamp[0] < cutoff:
            old.append(key)
    return old


def remove(place: Place, key: str) -> None:
    """Remove a backup: its manifest first (it stops being a backup), then its archive."""
    if key.endswith(".tar.gz"):
        place.remote.delete(record_name(key))
        place.remote.delete(key)
    else:
        place.remote.delete(key)  # a manifest whose archive is gone


# -- downloading ----------------------------------------------------------------------------------
@contextlib.contextmanager
def fetched(ref: str, config: Config, workdir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The backup at URL ``ref``, downloaded to a private temporary file and checked
    against its manifest's sha256s (then decrypted, if sealed); removed afterwards."""
    place, name = place_of(ref, config)
    try:
        record = _read_record(place, record_name(name))
        if record is None:
            raise BackupError(
                f"{ref}: no manifest beside it, so not a complete backup (an upload cut off?)"
            )
        _key_for(record, place, ref)
        with _private_temp(workdir, ".backup-download-") as raw:
            with open(raw, "wb") as sink:
                if place.remote.get_file(name, sink) is None:
                    raise BackupError(f"{ref}: no such backup on the remote")
            _check(raw, record, "object", ref)
            if not record.get("encrypted"):
                yield raw, record
                return
            with _private_temp(workdir, ".backup-download-") as plain:
                _unseal(raw, plain, place, ref)
                _check(plain, record, "archive", ref)
                yield plain, record
    finally:
        place.close()


def _key_for(record: dict[str, Any], place: Place, ref: str) -> None:
    """Refuse early (before downloading) when the key here cannot open the backup."""
    if record.get("encrypted"):
        from taurus_ops.remote.sealed import check_key

        check_key({"cipher": record.get("encrypted"), "keyId": record.get("keyId")}, place.key, ref)


def _unseal(raw: Path, plain: Path, place: Place, ref: str) -> None:
    from taurus_ops.remote.codec import BadObject
    from taurus_ops.remote.sealed import open_file

    try:
        with open(plain, "wb") as sink:
            open_file(raw, sink, place.key, ref)
    except BadObject as exc:
        raise Mismatch(str(exc)) from None


def _check(path: Path, record: dict[str, Any], what: str, ref: str) -> None:
    size, digest = _sum(path)
    if (size, digest) != (record.get(f"{what}Size"), record.get(f"{what}Sha256")):
        raise Mismatch(
            f"{ref}: the download ({size} bytes) does not match the sha256 and size its "
            "manifest records: damaged or altered on the remote"
        )


def _sum(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@contextlib.contextmanager
def _private_temp(folder: Path, prefix: str) -> Iterator[Path]:
    """A new 0600 file in ``folder`` (the Taurus home, 0700), removed afterwards."""
    ensure_dir(folder)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# -- what backup create does offsite ----------------------------------------------------------------
@dataclass
class Offsite:
    """What happened at the destination: the copy uploaded, old copies removed, or why not."""

    url: str  # the destination
    uploaded: RemoteBackup | None = None
    removed: list[str] = field(default_factory=list)  # URLs (a dry run: would be removed)
    error: str = ""  # one line, naming the remote and the problem

    def as_json(self) -> dict[str, Any]:
        return {
            "destination": self.url,
            "uploaded": self.uploaded.url if self.uploaded else None,
            "encrypted": self.uploaded.encrypted if self.uploaded else None,
            "removed": self.removed,
            "error": self.error or None,
        }


def send(place: Place, local: Local, keep: int, workdir: Path) -> Offsite:
    """Upload the new backup, then rotate this device's remote copies. A failure is
    recorded (never raised): the local backup stays whatever the remote does."""
    from taurus_ops.errors import TaurusError

    done = Offsite(place.url)
    try:
        done.uploaded = upload(place, local, workdir)
    except (TaurusError, OSError) as exc:
        problem = str(exc) if isinstance(exc, TaurusError) else f"{exc.strerror or exc}"
        done.error = f"{problem}; the local backup {local.path} is kept"
        return done
    try:
        listing = list_backups(place)
        for key in plan_rotation(listing, place.device, keep, local.scope, done.uploaded.key):
            remove(place, key)
            done.removed.append(place.url_of(key))
    except TaurusError as exc:
        done.error = f"{exc}; the backup was uploaded, old remote copies were not all removed"
    return done


def preview(place: Place, keep: int, scope: str) -> Offsite:
    """A dry run: which remote copies rotation would remove once one more is uploaded."""
    from taurus_ops.errors import TaurusError

    done = Offsite(place.url)
    try:
        listing = list_backups(place)
    except TaurusError as exc:
        done.error = str(exc)
        return done
    done.removed = [place.url_of(k) for k in plan_rotation(listing, place.device, keep - 1, scope)]
    return done
