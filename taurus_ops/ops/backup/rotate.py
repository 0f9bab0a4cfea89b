"""Rotation: all but the newest ``backup.keep`` backups of the same folders are removed.

Only files named like backups count (``before-refactor-20250118.json`` beside them is
never touched), and only backups of the same scope: a backup made inside a project
(its own ``sessionDirectory``) never rotates away full backups, nor the other way
round. Backups without a scope label (older ones) count with any scope.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.backup.layout import roots_of, scope_label, scope_of, stamp_of
from taurus_ops.ops.context import JobResult
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    from taurus_ops.ops.backup.offsite import Place
    from taurus_ops.ops.context import JobContext


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
        stamp = stamp_of(entry.name)
        if stamp is None or not entry.is_file(follow_symlinks=False):
            continue
        out.append((stamp, BackupFile(Path(entry.path), 0, stamp[0])))
    out.sort(key=lambda t: t[0], reverse=True)
    result = []
    for _, item in out:
        with contextlib.suppress(FileNotFoundError):
            item.size = item.path.stat().st_size
            result.append(item)
    return result


def beyond_keep(
    names: list[str], scopes: dict[str, str | None], keep: int, scope: str | None, spare: str = ""
) -> list[str]:
    """The backups (by name, newest first) that rotation removes: pure.

    ``names`` are newest first; ``scopes`` gives each one's scope label (None: an older
    backup without one, which counts with any scope); ``spare`` is never removed (the
    backup just made)."""
    counted = [n for n in names if scope is None or scopes.get(n) in (scope, None)]
    return [n for n in counted[keep:] if n != spare]


def rotate(
    folder: Path, keep: int, keep_also: Path | None = None, scope: str | None = None
) -> list[Path]:
    """Remove all but the newest ``keep`` backups in ``folder`` (named ones only)."""
    return remove_local(plan_local(folder, keep, keep_also, scope))


def plan_local(
    folder: Path, keep: int, keep_also: Path | None = None, scope: str | None = None
) -> list[Path]:
    """The local backups rotation would remove, oldest last."""
    backups = list_backups(folder)
    by_name = {str(b.path): b for b in backups}
    scopes = {str(b.path): scope_of(b.path) for b in backups} if scope is not None else {}
    spare = str(keep_also) if keep_also is not None else ""
    return [by_name[n].path for n in beyond_keep(list(by_name), scopes, keep, scope, spare)]


def remove_local(paths: list[Path]) -> list[Path]:
    removed = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


# -- the job ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RotateRequest:
    dry_run: bool = False
    wait: float = 0.0


@dataclass
class RotateResult(JobResult):
    folder: Path
    keep: int
    removed: list[Path] = field(default_factory=list)  # (a dry run: would be) removed
    dry_run: bool = False
    destination: str = ""  # backup.destination, when set
    removed_remote: list[str] = field(default_factory=list)  # URLs
    error: str = ""  # the destination failed: one line

    @property
    def ok(self) -> bool:
        return not self.error

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "folder": str(self.folder),
            "keep": self.keep,
            "removed": [str(p) for p in self.removed],
            "dryRun": self.dry_run,
        }
        if self.destination:
            out.update(
                destination=self.destination,
                removedRemote=self.removed_remote,
                error=self.error or None,
            )
        return out


def run(ctx: JobContext, request: RotateRequest) -> RotateResult:
    """Apply ``backup.keep`` now to the backups of this configuration's folders, here and
    (this machine's copies) at backup.destination."""
    from taurus_ops.ops.backup.offsite import open_destination
    from taurus_ops.ops.lock import ops_lock

    log = ctx.log("backup")
    settings = ctx.config.settings.backup
    folder = Path(settings.directory)
    scope = scope_label(roots_of(ctx.config))
    result = RotateResult(folder, settings.keep, dry_run=request.dry_run)
    verb = "would remove" if request.dry_run else "removed"
    with ops_lock(ctx.home, request.wait, cancel=ctx.cancel, log=log):
        place = open_destination(ctx.config)  # bad settings: refused before anything is removed
        try:
            old = plan_local(folder, settings.keep, scope=scope)
            result.removed = old if request.dry_run else remove_local(old)
            for path in result.removed:
                log.info("backup: %s old backup %s", verb, path)
            if place is not None:
                _rotate_remote(place, result, scope, log)
        finally:
            if place is not None:
                place.close()
    return result


def _rotate_remote(place: Place, result: RotateResult, scope: str, log: logging.Logger) -> None:
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup.offsite import list_backups as list_remote
    from taurus_ops.ops.backup.offsite import plan_rotation, remove

    result.destination = place.url
    try:
        for key in plan_rotation(list_remote(place), place.device, result.keep, scope):
            if not result.dry_run:
                remove(place, key)
            result.removed_remote.append(place.url_of(key))
            verb = "would remove" if result.dry_run else "removed"
            log.info("backup: %s old remote backup %s", verb, place.url_of(key))
    except TaurusError as exc:
        result.error = str(exc)
        log.error("backup: rotate: %s", exc)
