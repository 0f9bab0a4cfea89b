"""``backup list``: the backups kept here and at ``backup.destination``, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.backup.rotate import BackupFile, list_backups
from taurus_ops.ops.context import JobResult

if TYPE_CHECKING:
    from taurus_ops.ops.backup.offsite import RemoteBackup
    from taurus_ops.ops.context import JobContext


@dataclass(frozen=True)
class ListRequest:
    pass


@dataclass(frozen=True)
class Listed:
    """One backup, here or on the remote."""

    path: str  # a file here, or the remote archive's URL
    size: int
    stamp: datetime
    where: str  # "local" or "remote"
    device: str = ""  # the machine that uploaded a remote one
    encrypted: bool = False


@dataclass
class ListResult(JobResult):
    folder: Path
    keep: int
    backups: list[BackupFile] = field(default_factory=list)
    remote: list[RemoteBackup] = field(default_factory=list)
    destination: str = ""  # backup.destination, when set
    incomplete: int = 0  # halves of cut-off uploads at the destination (not backups)
    error: str = ""  # the destination could not be listed: one line

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def entries(self) -> list[Listed]:
        """Local and remote backups together, newest first (the local copy first)."""
        out = [Listed(str(b.path), b.size, b.stamp, "local") for b in self.backups]
        out += [
            Listed(b.url, b.size, b.stamp, "remote", b.device, b.encrypted) for b in self.remote
        ]
        return sorted(out, key=lambda e: (e.stamp, e.where == "local"), reverse=True)

    def as_json(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.entries:
            item = BackupFile(Path(entry.path), entry.size, entry.stamp).as_json()
            item["path"] = entry.path  # a URL stays a URL
            item["where"] = entry.where
            if entry.where == "remote":
                item.update(device=entry.device, encrypted=entry.encrypted)
            out.append(item)
        return out


def run(ctx: JobContext, request: ListRequest) -> ListResult:
    """The backups in backup.directory and, with backup.destination, the remote ones
    (every machine's: a backup can be restored anywhere)."""
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup.offsite import list_backups as list_remote
    from taurus_ops.ops.backup.offsite import open_destination

    settings = ctx.config.settings.backup
    folder = Path(settings.directory)
    result = ListResult(folder, settings.keep, list_backups(folder))
    place = open_destination(ctx.config)
    if place is None:
        return result
    result.destination = place.url
    try:
        listing = list_remote(place)
    except TaurusError as exc:
        result.error = str(exc)
        return result
    finally:
        place.close()
    result.remote, result.incomplete = listing.backups, len(listing.orphans)
    return result
