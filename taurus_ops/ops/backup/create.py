"""``backup create``: write a backup, verify it, keep it, rotate the old ones.

    result = create.run(ctx, CreateRequest(output=None, dry_run=False, wait=0))

``plan_create`` decides where the archive goes and what it holds; ``create_backup``
writes it to a new hidden temporary file, verifies it and only then gives it its
name, so a failure at any point (a full disk, an unwritable folder) removes the
partial archive and leaves every older backup as it was. ``run`` holds the ops lock
around all of it, rotates ``backup.directory`` and writes the ops log.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import TaurusError
from taurus_ops.ops.backup.archive import write_archive
from taurus_ops.ops.backup.gather import Item, gather
from taurus_ops.ops.backup.layout import (
    BackupError,
    Root,
    free_name,
    inside,
    manifest_member,
    new_manifest,
    roots_of,
    scope_label,
    user_home,
)
from taurus_ops.ops.backup.offsite import Local, Offsite, open_destination, preview, send
from taurus_ops.ops.backup.rotate import plan_local, remove_local
from taurus_ops.ops.backup.verify import verify_archive
from taurus_ops.ops.context import JobResult
from taurus_ops.store.atomic import create_temp, ensure_dir, fsync_dir, publish
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.ops.context import JobContext


@dataclass(frozen=True)
class CreateRequest:
    output: Path | None = None  # a file, or a folder for the standard name
    dry_run: bool = False
    wait: float = 0.0  # seconds to wait for another maintenance job
    now: datetime | None = None
    verify: bool = True


@dataclass
class CreatePlan:
    target: Path
    folder: Path
    roots: list[Root]
    items: list[Item]
    notes: list[str]
    rotates: bool  # the target is in backup.directory, where rotation applies
    now: datetime

    @property
    def scope(self) -> str:
        return scope_label(self.roots)

    @property
    def outside_home(self) -> list[str]:
        home = user_home()
        return [r.path for r in self.roots if not inside(Path(r.path), home)]


@dataclass
class Created:
    path: Path
    files: int
    bytes: int  # of the files archived (before compression)
    size: int  # of the archive
    removed: list[Path] = field(default_factory=list)  # old backups rotated out
    notes: list[str] = field(default_factory=list)
    outside_home: list[str] = field(default_factory=list)


@dataclass
class CreateResult(JobResult):
    plan: CreatePlan
    created: Created | None = None  # None for a dry run
    removed: list[Path] = field(default_factory=list)  # (a dry run: would be) rotated out
    dry_run: bool = False
    offsite: Offsite | None = None  # with backup.destination: the upload and its rotation

    @property
    def path(self) -> Path:
        return self.plan.target

    @property
    def notes(self) -> list[str]:
        return self.plan.notes

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def error(self) -> str:
        return self.offsite.error if self.offsite is not None else ""

    def as_json(self) -> dict[str, Any]:
        made = self.created
        out: dict[str, Any] = {
            "path": str(self.path),
            "files": made.files if made else sum(1 for i in self.plan.items if i.kind == "file"),
            "bytes": made.bytes if made else None,
            "size": made.size if made else None,
            "removed": [str(p) for p in self.removed],
            "notes": self.notes,
            "outsideHome": self.plan.outside_home,
        }
        if self.dry_run:
            out["dryRun"] = True
        if self.offsite is not None:
            out["offsite"] = self.offsite.as_json()
        return out

    def summary(self) -> str:
        """One line for the log and the scheduler."""
        if self.created is None:
            return f"would write {self.path} ({plural(len(self.plan.items), 'item')})"
        made = self.created
        line = f"wrote {made.path} ({plural(made.files, 'file')}, {plural(made.size, 'byte')}), verified"
        if self.offsite is not None and self.offsite.uploaded is not None:
            line += f"; uploaded to {self.offsite.uploaded.url}"
        return line


# -- planning -----------------------------------------------------------------------------------
def plan_create(
    config: Config, output: Path | None = None, now: datetime | None = None, make: bool = True
) -> CreatePlan:
    """Where the backup goes and what it holds. ``make``: create backup.directory if needed
    (a dry run does not)."""
    now = now or datetime.now(UTC)
    backup_dir = Path(config.settings.backup.directory)
    if output is None:
        folder = backup_dir
        if make:
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
    rotates = os.path.realpath(target.parent) == os.path.realpath(backup_dir)
    return CreatePlan(target, folder, roots, items, notes, rotates, now)


def _ensure_writable_dir(folder: Path) -> None:
    try:
        ensure_dir(folder)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup folder {folder}: {exc.strerror or exc}"
        ) from None
    if not folder.is_dir():
        raise BackupError(f"backup.directory {folder} is not a folder")


# -- writing ------------------------------------------------------------------------------------
def write_backup(
    config: Config, plan: CreatePlan, verify: bool = True, threaded: bool = True
) -> Created:
    """Write the planned archive to a temporary file, verify it, then give it its name."""
    manifest = new_manifest(plan.roots, plan.now)
    try:
        tmp, fd = create_temp(plan.target)  # a new random name, never a file planted there
    except OSError as exc:
        raise BackupError(f"could not write the backup in {plan.folder}: {exc.strerror}") from None
    try:
        count, total = write_archive(
            tmp,
            plan.items,
            manifest,
            manifest_member(config),
            threaded,
            plan.notes,
            plan.scope,
            fd,
        )
        if verify:
            report = verify_archive(tmp)
            if not report.ok:
                raise BackupError(
                    "the new backup did not verify: " + "; ".join(report.problems[:3])
                )
        publish(tmp, plan.target)
        fsync_dir(plan.folder)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, TaurusError):
            reason = exc.strerror or str(exc)
            raise BackupError(
                f"could not write the backup in {plan.folder}: {reason}; "
                "the partial archive was removed, older backups are untouched"
            ) from None
        raise
    size = plan.target.stat().st_size
    return Created(
        plan.target, count, total, size, notes=plan.notes, outside_home=plan.outside_home
    )


def create_backup(
    config: Config,
    output: Path | None = None,
    now: datetime | None = None,
    verify: bool = True,
    threaded: bool = True,
) -> Created:
    """Plan and write one backup (no lock, no rotation, no log: ``run`` adds those)."""
    return write_backup(config, plan_create(config, output, now), verify, threaded)


# -- the job --------------------------------------------------------------------------------------
def run(ctx: JobContext, request: CreateRequest) -> CreateResult:
    """Under the ops lock: plan, write and verify (unless a dry run), rotate, upload to
    backup.destination and rotate there, log."""
    from taurus_ops.ops.lock import ops_lock

    log = ctx.log("backup")
    with ops_lock(ctx.home, request.wait, cancel=ctx.cancel, log=log):
        try:
            result = _create(ctx, request)
        except Exception as exc:
            log.error("backup: failed: %s", exc)
            raise
    _log_created(log, result)
    return result


def _create(ctx: JobContext, request: CreateRequest) -> CreateResult:
    config = ctx.config
    keep = config.settings.backup.keep
    place = open_destination(config)  # its settings are checked before anything is written
    try:
        plan = plan_create(config, request.output, request.now, make=not request.dry_run)
        result = CreateResult(plan, dry_run=request.dry_run)
        if request.dry_run:
            if plan.rotates:  # the new backup will be the newest: keep - 1 of these stay
                result.removed = plan_local(plan.folder, keep - 1, scope=plan.scope)
            if place is not None:
                result.offsite = preview(place, keep, plan.scope)
            return result
        made = result.created = write_backup(config, plan, request.verify)
        if plan.rotates:
            old = plan_local(plan.folder, keep, keep_also=plan.target, scope=plan.scope)
            result.removed = made.removed = remove_local(old)
        if place is not None:
            local = Local(made.path, made.files, made.bytes, plan.scope)
            result.offsite = send(place, local, keep, ctx.home)
        return result
    finally:
        if place is not None:
            place.close()


def _log_created(log: logging.Logger, result: CreateResult) -> None:
    made = result.created
    if made is None:
        log.info("backup: dry run: %s; would remove %d old", result.summary(), len(result.removed))
        if result.offsite is not None and result.offsite.error:
            log.error("backup: offsite: %s", result.offsite.error)
        return
    for note in made.notes:
        log.warning("backup: %s", note)
    log.info(
        "backup: wrote %s (%s, %s, archive %s); removed %d old",
        made.path,
        plural(made.files, "file"),
        plural(made.bytes, "byte"),
        plural(made.size, "byte"),
        len(result.removed),
    )
    for path in result.removed:
        log.info("backup: removed old backup %s", path)
    _log_offsite(log, result.offsite)


def _log_offsite(log: logging.Logger, done: Offsite | None) -> None:
    if done is None:
        return
    if done.uploaded is not None:
        sealed = ", encrypted" if done.uploaded.encrypted else ""
        log.info(
            "backup: uploaded %s (%s%s)",
            done.uploaded.url,
            plural(done.uploaded.size, "byte"),
            sealed,
        )
    for url in done.removed:
        log.info("backup: removed old remote backup %s", url)
    if done.error:
        log.error("backup: offsite: %s", done.error)
