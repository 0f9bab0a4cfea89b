"""``backup create|list|verify|restore|rotate``: options in, one ``ops.backup`` job, results out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from taurus_ops.ops.backup.create import CreateResult
    from taurus_ops.ops.backup.listing import Listed
    from taurus_ops.ops.backup.restore import RestorePlan
    from taurus_ops.ops.backup.verify import VerifyReport

DRY_RUN = click.option(
    "--dry-run", "-n", is_flag=True, help="Print what would be done; change nothing."
)


@click.group("backup")
def backup_group() -> None:
    """Back up sessions to one .tar.gz, check backups, restore them.

    A backup holds the session directory (and, per backup.includeArchive,
    includeTemplates, includeConfig, the archive, ~/.taurus/templates and
    ~/.taurus/config.yaml) with member paths relative to your home folder, so plain
    `tar -xzf FILE -C ~/` restores it too. A manifest inside lists every file's
    sha256 and size. With backup.destination (s3://BUCKET/PREFIX or file:///PATH)
    each backup is also uploaded there, and list, verify and restore take the
    remote copies too.

    \b
    Examples:
      taurus-ops backup create
      taurus-ops backup list
      taurus-ops backup verify ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz
      taurus-ops backup restore ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz --dry-run
      taurus-ops backup restore s3://team-backups/alice/laptop/taurus-sessions-backup-20250118-030000.tar.gz
    """


@backup_group.command("create")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the backup here (a file, or a folder for the standard name).",
)
@DRY_RUN
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@wait_option
@example(
    "taurus-ops backup create\n"
    "taurus-ops backup create --dry-run\n"
    "taurus-ops backup create -o /mnt/usb/\n"
    "tar -tzf ~/.taurus/backups/taurus-sessions-backup-*.tar.gz | head\n"
    "# ~/.taurus/config.yaml:  backup: {destination: s3://team-backups/alice}\n"
    "taurus-ops backup create --json | jq .offsite.uploaded"
)
@pass_app
def create_cmd(
    app: AppContext, output: Path | None, dry_run: bool, as_json: bool, wait: float
) -> None:
    """Write a backup, verify it, then keep only the newest backup.keep in backup.directory.

    Saved as backup.directory/taurus-sessions-backup-YYYYMMDD-HHMMSS.tar.gz unless -o
    says otherwise. A failure (full disk, unwritable folder) removes the partial file
    and leaves older backups untouched. --dry-run says what would be written and which
    old backups rotation would remove.

    With backup.destination set, the verified archive is then uploaded there (under
    this machine's remote.device), its manifest last, sealed with
    remote.encryptionKeyFile when that is set, and rotation applies to this
    machine's remote copies too. Credentials come only from the AWS chain. If the
    upload fails, the local backup is kept and the command says so (exit 1).
    """
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup import create

    request = create.CreateRequest(output=output, dry_run=dry_run, wait=wait)
    result = create.run(app.job, request)
    if as_json:
        echo_json(result.as_json())
    else:
        _print_created(result)
    if not result.ok:
        raise TaurusError(result.error)


def _print_created(result: CreateResult) -> None:
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for folder in result.plan.outside_home:
        click.echo(
            f"note: {folder} is outside your home folder: it is stored under its absolute "
            "path, so plain tar restores it with `-C /`; `taurus-ops backup restore` "
            "puts it back where your settings say",
            err=True,
        )
    made = result.created
    offsite = result.offsite
    if made is None:
        files = sum(1 for item in result.plan.items if item.kind == "file")
        click.echo(f"Would back up {plural(files, 'file')} to {result.path}.")
        if offsite is not None and not offsite.error:
            click.echo(f"Would upload it to {offsite.url}.")
        for path in result.removed:
            click.echo(f"Would remove old backup {path.name}")
        for url in offsite.removed if offsite is not None else []:
            click.echo(f"Would remove old remote backup {url}")
        click.echo("Run without --dry-run to do it.")
        return
    click.echo(
        f"Backed up {plural(made.files, 'file')} ({human_size(made.bytes)}) to {made.path} "
        f"({human_size(made.size)}); verified."
    )
    if offsite is not None and offsite.uploaded is not None:
        sealed = ", encrypted" if offsite.uploaded.encrypted else ""
        click.echo(
            f"Uploaded to {offsite.uploaded.url} ({human_size(offsite.uploaded.size)}{sealed})."
        )
    for path in result.removed:
        click.echo(f"Removed old backup {path.name}")
    for url in offsite.removed if offsite is not None else []:
        click.echo(f"Removed old remote backup {url}")


@backup_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@example("taurus-ops backup list\ntaurus-ops backup list --json | jq -r '.[0].path'")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """List the backups in backup.directory, newest first, and with backup.destination
    the remote ones too (every machine's), saying where each is."""
    from taurus_ops.cli.common import table
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup import listing
    from taurus_ops.store.format import format_time

    result = listing.run(app.job, listing.ListRequest())
    entries = result.entries
    if as_json:
        echo_json(result.as_json())
    elif not entries:
        where = f"{result.folder} or {result.destination}" if result.destination else result.folder
        click.echo(f"No backups in {where} yet. Make one with `taurus-ops backup create`.")
    elif result.destination:
        rows = [
            [local_time(format_time(e.stamp)), human_size(e.size), _where(e), e.path]
            for e in entries
        ]
        click.echo(table(rows, ["CREATED", "SIZE", "WHERE", "BACKUP"]))
    else:
        rows = [[local_time(format_time(e.stamp)), human_size(e.size), e.path] for e in entries]
        click.echo(table(rows, ["CREATED", "SIZE", "FILE"]))
    if entries and not as_json:
        click.echo(f"\nKeeping the newest {result.keep} (backup.keep).")
    if result.incomplete and not as_json:
        click.echo(
            f"note: {plural(result.incomplete, 'incomplete upload')} in {result.destination} "
            "(cut off before its manifest): not a backup; removed by rotation after a day",
            err=True,
        )
    if not result.ok:
        raise TaurusError(result.error)


def _where(entry: Listed) -> str:
    if entry.where == "local":
        return "local"
    return f"remote ({entry.device}{', encrypted' if entry.encrypted else ''})"


@backup_group.command("verify")
@click.argument("file", metavar="FILE|URL")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@example(
    "taurus-ops backup verify ~/.taurus/backups/taurus-sessions-backup-20250118-030000.tar.gz\n"
    "taurus-ops backup verify s3://team-backups/alice/laptop/taurus-sessions-backup-20250118-030000.tar.gz"
)
@pass_app
def verify_cmd(app: AppContext, file: str, as_json: bool) -> None:
    """Check every file's checksum and size against the manifest, and that every member
    is safe to restore. Exit 1 on any problem.

    A remote backup (its URL, as `backup list` shows it) is downloaded to a private
    temporary file and checked against the sha256s its manifest object records first.
    """
    from taurus_ops.ops.backup import verify

    report = verify.run(app.job, verify.VerifyRequest(file))
    if as_json:
        echo_json(report.as_json())
    elif report.ok:
        click.echo(
            f"ok: {report.shown}: {plural(report.files, 'file')}, {human_size(report.bytes)}, "
            "checksums match"
        )
    else:
        _print_problems(report.problems, 50, count_rest=True)
        click.echo(f"Error: {report.shown} failed verification ({_problems(report)})", err=True)
    if not report.ok:
        raise SystemExit(report.exit_code)


@backup_group.command("restore")
@click.argument("file", metavar="FILE|URL")
@DRY_RUN
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
    "taurus-ops backup restore backup.tar.gz --to /tmp/inspect\n"
    "taurus-ops backup restore s3://team-backups/alice/laptop/taurus-sessions-backup-20250118-030000.tar.gz --dry-run"
)
@pass_app
def restore_cmd(
    app: AppContext, file: str, dry_run: bool, force: bool, to: Path | None, as_json: bool
) -> None:
    """Verify a backup, then restore what is missing or older on disk.

    Sessions newer on disk are kept unless --force; a file replaced is first copied to
    ~/.taurus/restore-replaced/. Restored files are 0600. An archive that fails
    verification (bad checksum, absolute paths, '..', links, devices) writes nothing.
    A remote backup (its URL, from `backup list`) is downloaded to a private temporary
    file and checked against its manifest's sha256s before anything is planned.
    """
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup import restore

    request = restore.RestoreRequest(file, dry_run=dry_run, force=force, to=to)
    try:
        result = restore.run(app.job, request)
    except restore.Refused as exc:
        _print_problems(exc.problems, 20)
        raise
    if as_json:
        echo_json(result.as_json())
    else:
        _print_restore(result.plan, dry_run)
        if not dry_run:
            for path, why in result.failed:
                click.echo(f"not restored: {path}: {why}", err=True)
            click.echo(
                f"Restored {plural(len(result.written), 'file')}"
                + (
                    f"; replaced ones copied to {result.plan.replaced_dir}"
                    if result.plan.replaced_dir
                    else ""
                )
                + "."
            )
    if not result.ok:
        raise TaurusError(result.error)


@backup_group.command("rotate")
@DRY_RUN
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@wait_option
@example("taurus-ops backup rotate --dry-run\ntaurus-ops backup rotate")
@pass_app
def rotate_cmd(app: AppContext, dry_run: bool, as_json: bool, wait: float) -> None:
    """Remove all but the newest backup.keep backups now (backup create does this after
    each backup). Only backups of the same folders count; other files are never touched.
    With backup.destination, this machine's remote copies are rotated the same way."""
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops.backup import rotate

    result = rotate.run(app.job, rotate.RotateRequest(dry_run=dry_run, wait=wait))
    if as_json:
        echo_json(result.as_json())
    else:
        verb = "Would remove" if dry_run else "Removed"
        for path in result.removed:
            click.echo(f"{verb} old backup {path.name}")
        for url in result.removed_remote:
            click.echo(f"{verb} old remote backup {url}")
        if not result.removed and not result.removed_remote:
            click.echo(f"Nothing to remove: at most {result.keep} backups kept (backup.keep).")
    if not result.ok:
        raise TaurusError(result.error)


def _print_problems(problems: list[str], most: int, count_rest: bool = False) -> None:
    for problem in problems[:most]:
        click.echo(f"problem: {problem}", err=True)
    if count_rest and len(problems) > most:
        click.echo(f"... and {len(problems) - most} more", err=True)


def _print_restore(plan: RestorePlan, dry_run: bool) -> None:
    from taurus_ops.ops.backup.restore import KEEP, REPLACE, RESTORE, SAME

    for step in plan.steps:
        if step.action == SAME:
            continue
        click.echo(f"{step.action:<8} {step.dest}" + (f": {step.why}" if step.why else ""))
    if dry_run:
        click.echo(
            f"Would restore {plan.count(RESTORE)}, replace {plan.count(REPLACE)}, keep "
            f"{plan.count(KEEP)}; {plan.count(SAME)} identical. Run without --dry-run to do it."
        )


def _problems(report: VerifyReport) -> str:
    return plural(len(report.problems), "problem")
