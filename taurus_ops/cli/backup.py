"""``backup create|list|verify|restore``."""

from __future__ import annotations

from pathlib import Path

import click

from taurus_ops.cli.common import (
    AppContext,
    echo_json,
    example,
    human_size,
    local_time,
    pass_app,
    wait_option,
)
from taurus_ops.words import plural


@click.group("backup")
def backup_group() -> None:
    """Back up sessions to one .tar.gz, check backups, restore them.

    A backup holds the session directory (and, per backup.includeArchive,
    includeTemplates, includeConfig, the archive, ~/.taurus/templates and
    ~/.taurus/config.yaml) with member paths relative to your home folder, so plain
    `tar -xzf FILE -C ~/` restores it too. A manifest inside lists every file's
    sha256 and size.

    \b
    Examples:
      taurus-ops backup create
      taurus-ops backup list
      taurus-ops backup verify ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz
      taurus-ops backup restore ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz --dry-run
    """


@backup_group.command("create")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the backup here (a file, or a folder for the standard name).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@wait_option
@example(
    "taurus-ops backup create\n"
    "taurus-ops backup create -o /mnt/usb/\n"
    "tar -tzf ~/.taurus/backups/taurus-sessions-backup-*.tar.gz | head"
)
@pass_app
def create_cmd(app: AppContext, output: Path | None, as_json: bool, wait: float) -> None:
    """Write a backup, verify it, then keep only the newest backup.keep in backup.directory.

    Saved as backup.directory/taurus-sessions-backup-YYYYMMDD-HHMMSS.tar.gz unless -o
    says otherwise. A failure (full disk, unwritable folder) removes the partial file
    and leaves older backups untouched.
    """
    from taurus_ops.ops.backup import create_backup
    from taurus_ops.ops.lock import ops_lock
    from taurus_ops.ops.log import ops_logger

    config = app.config
    log = ops_logger(config.home, "taurus_ops.ops.backup")
    with ops_lock(config.home, wait):
        try:
            created = create_backup(config, output)
        except Exception as exc:
            log.error("backup: failed: %s", exc)
            raise
    log.info(
        "backup: wrote %s (%s, %s, archive %s); removed %d old",
        created.path,
        plural(created.files, "file"),
        plural(created.bytes, "byte"),
        plural(created.size, "byte"),
        len(created.removed),
    )
    for path in created.removed:
        log.info("backup: removed old backup %s", path)
    if as_json:
        echo_json(
            {
                "path": str(created.path),
                "files": created.files,
                "bytes": created.bytes,
                "size": created.size,
                "removed": [str(p) for p in created.removed],
                "notes": created.notes,
                "outsideHome": created.outside_home,
            }
        )
        return
    for note in created.notes:
        click.echo(f"note: {note}", err=True)
    for path in created.outside_home:
        click.echo(
            f"note: {path} is outside your home folder: it is stored under its absolute "
            "path, so plain tar restores it with `-C /`; `taurus-ops backup restore` "
            "puts it back where your settings say",
            err=True,
        )
    click.echo(
        f"Backed up {plural(created.files, 'file')} ({human_size(created.bytes)}) to {created.path} "
        f"({human_size(created.size)}); verified."
    )
    for path in created.removed:
        click.echo(f"Removed old backup {path.name}")


@backup_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@example("taurus-ops backup list\ntaurus-ops backup list --json | jq -r '.[0].path'")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """List the backups in backup.directory, newest first."""
    from taurus_ops.cli.common import table
    from taurus_ops.ops.backup import list_backups
    from taurus_ops.store.format import format_time

    folder = Path(app.config.settings.backup.directory)
    backups = list_backups(folder)
    if as_json:
        echo_json([b.as_json() for b in backups])
        return
    if not backups:
        click.echo(f"No backups in {folder} yet. Make one with `taurus-ops backup create`.")
        return
    rows = [[local_time(format_time(b.stamp)), human_size(b.size), str(b.path)] for b in backups]
    click.echo(table(rows, ["CREATED", "SIZE", "FILE"]))
    click.echo(f"\nKeeping the newest {app.config.settings.backup.keep} (backup.keep).")


@backup_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@example("taurus-ops backup verify ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz")
@pass_app
def verify_cmd(app: AppContext, file: Path, as_json: bool) -> None:
    """Check every file's checksum and size against the manifest, and that every member
    is safe to restore. Exit 1 on any problem."""
    from taurus_ops.ops.backup import BackupError, verify_archive

    if not file.is_file():
        raise BackupError(f"no such backup file: {file}")
    report = verify_archive(file)
    if as_json:
        echo_json(report.as_json())
    elif report.ok:
        click.echo(
            f"ok: {file}: {plural(report.files, 'file')}, {human_size(report.bytes)}, checksums match"
        )
    else:
        for problem in report.problems[:50]:
            click.echo(f"problem: {problem}", err=True)
        if len(report.problems) > 50:
            click.echo(f"... and {len(report.problems) - 50} more", err=True)
        click.echo(f"Error: {file} failed verification ({_problems(report)})", err=True)
    if not report.ok:
        raise SystemExit(1)


@backup_group.command("restore")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", "-n", is_flag=True, help="Print what would be restored; write nothing.")
@click.option("--force", is_flag=True, help="Also replace files that are newer on disk.")
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Restore under this folder (member paths as they are) instead of where settings say.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan (and results) as JSON.")
@example(
    "taurus-ops backup restore ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz --dry-run\n"
    "taurus-ops backup restore backup.tar.gz\n"
    "taurus-ops backup restore backup.tar.gz --to /tmp/inspect"
)
@pass_app
def restore_cmd(
    app: AppContext, file: Path, dry_run: bool, force: bool, to: Path | None, as_json: bool
) -> None:
    """Verify a backup, then restore what is missing or older on disk.

    Sessions newer on disk are kept unless --force; a file replaced is first copied to
    ~/.taurus/restore-replaced/. Restored files are 0600. An archive that fails
    verification (bad checksum, absolute paths, '..', links, devices) writes nothing.
    """
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops import backup
    from taurus_ops.ops.lock import ops_lock
    from taurus_ops.ops.log import ops_logger

    config = app.config
    log = ops_logger(config.home, "taurus_ops.ops.backup")
    if not file.is_file():
        raise backup.BackupError(f"no such backup file: {file}")
    file = file.absolute()
    report = backup.verify_archive(file)
    if not report.ok:
        for problem in report.problems[:20]:
            click.echo(f"problem: {problem}", err=True)
        log.warning("restore: refused %s: %s", file, "; ".join(report.problems[:5]))
        raise backup.BackupError(
            f"{file} failed verification ({_problems(report)}); nothing restored"
        )
    if to is not None:
        to = to.absolute()
    with ops_lock(config.home):
        needed = backup.differing_members(report, config, to)
        contents = backup.read_members(file, needed)
        plan = backup.plan_restore(file, report, config, force=force, to=to, contents=contents)
        if dry_run:
            _print_restore(plan, as_json, dry_run=True)
            return
        result = backup.execute_restore(plan, report, config.home)
    log.info(
        "restore: %s: wrote %d, kept %d, identical %d, failed %d",
        file,
        len(result.written),
        plan.count(backup.KEEP),
        plan.count(backup.SAME),
        len(result.failed),
    )
    if as_json:
        out = plan.as_json()
        out["written"] = result.written
        out["failed"] = [{"path": p, "why": w} for p, w in result.failed]
        echo_json(out)
    else:
        _print_restore(plan, False, dry_run=False)
        for path, why in result.failed:
            click.echo(f"not restored: {path}: {why}", err=True)
        click.echo(
            f"Restored {plural(len(result.written), 'file')}"
            + (f"; replaced ones copied to {plan.replaced_dir}" if plan.replaced_dir else "")
            + "."
        )
    if result.failed:
        raise TaurusError(f"{plural(len(result.failed), 'file')} could not be restored")


def _print_restore(plan, as_json: bool, dry_run: bool) -> None:  # type: ignore[no-untyped-def]
    from taurus_ops.ops.backup import KEEP, REPLACE, RESTORE, SAME

    if as_json:
        echo_json(plan.as_json())
        return
    for step in plan.steps:
        if step.action == SAME:
            continue
        click.echo(f"{step.action:<8} {step.dest}" + (f": {step.why}" if step.why else ""))
    if dry_run:
        click.echo(
            f"Would restore {plan.count(RESTORE)}, replace {plan.count(REPLACE)}, keep "
            f"{plan.count(KEEP)}; {plan.count(SAME)} identical. Run without --dry-run to do it."
        )


def _problems(report) -> str:  # type: ignore[no-untyped-def]
    n = len(report.problems)
    return plural(n, "problem")
