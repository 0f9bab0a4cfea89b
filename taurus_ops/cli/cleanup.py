"""``cleanup``, ``archive`` and ``unarchive``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from taurus_ops.cli.common import AppContext, echo_json, example, human_size, pass_app, wait_option
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.cleanup import CleanupResult


@click.command("cleanup")
@click.option("--dry-run", "-n", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (and results) as JSON.")
@wait_option
@example(
    "taurus-ops cleanup --dry-run\n"
    "taurus-ops cleanup\n"
    "taurus-ops cleanup --dry-run --json | jq '.actions[].path'"
)
@pass_app
def cleanup_cmd(app: AppContext, dry_run: bool, as_json: bool, wait: float) -> None:
    """Archive (or delete) sessions as sessions.retentionDays and sessions.maxSessions say.

    Sessions not updated for retentionDays days, and those beyond the newest
    maxSessions, move to sessions.archiveDirectory (deleted instead when
    sessions.autoArchive is false); archived ones older than archive.retentionDays are
    deleted. Never touched: the newest session, one open in a chat, a named one
    (unless sessions.cleanupNamed), a file that cannot be parsed. Retention is off
    until configured. Every run is logged to ~/.taurus/logs/taurus-ops.log.
    """
    from taurus_ops.ops import cleanup

    result = cleanup.run(app.job, cleanup.CleanupRequest(dry_run=dry_run, wait=wait))
    if as_json:
        echo_json(result.as_json())
    elif result.off:
        click.echo(f"Nothing to do: {result.note}.")
    else:
        _print_result(result)
    if not result.ok:
        raise SystemExit(1)


def _print_result(result: CleanupResult) -> None:
    from taurus_ops.ops.cleanup import ARCHIVE, DELETE, plan_lines

    plan = result.plan
    lines = plan_lines(plan)
    if lines:
        click.echo("\n".join(lines))  # one write: a plan may have 100,000 lines
    if result.dry_run:
        if not plan.actions:
            click.echo(f"Nothing to clean up ({plural(plan.kept, 'session')} kept).")
        else:
            click.echo(
                f"Would archive {plural(plan.count(ARCHIVE), 'session')} and delete "
                f"{plural(plan.count(DELETE), 'session')} ({human_size(plan.bytes)}"
                + (
                    f", and {human_size(plan.checkpoint_bytes)} of their checkpoints"
                    if any(a.checkpoint_folder for a in plan.actions)
                    else ""
                )
                + "); "
                f"{plan.kept} kept. "
                "Run `taurus-ops cleanup` to do it."
            )
        return
    for outcome in result.failed:
        click.echo(f"not done: {outcome.action.path}: {outcome.detail}", err=True)
    click.echo(
        f"Archived {len(result.archived)}, deleted {len(result.deleted)}, "
        f"freed {human_size(result.bytes_freed)} from the session directory"
        + (
            f" and {human_size(result.checkpoint_bytes_freed)} of file checkpoints"
            if any(o.checkpoints_removed for o in result.outcomes)
            else ""
        )
        + (f"; {len(result.failed)} left for the next run" if result.failed else "")
        + "."
    )


@click.command("archive")
@click.argument("refs", nargs=-1, required=True)
@example("taurus-ops archive abc123\ntaurus-ops archive password-reset 7f3k2m9q")
@pass_app
def archive_cmd(app: AppContext, refs: tuple[str, ...]) -> None:
    """Move sessions into the archive (sessions.archiveDirectory).

    Names keep working (they are re-pointed); archived sessions stay listable with
    `taurus-ops list --archived` and resumable.
    """
    from taurus_ops.ops import archive

    result = archive.run(app.job, archive.ArchiveRequest(refs))
    for item in result.items:
        if isinstance(item, archive.NotMoved):
            click.echo(f"Error: {item.ref}: {item.error}", err=True)
        else:
            click.echo(f"Archived {item.old.name} -> {item.new}")
    if not result.ok:
        raise SystemExit(1)


@click.command("unarchive")
@click.argument("ref")
@example("taurus-ops unarchive abc123\ntaurus-ops list --archived")
@pass_app
def unarchive_cmd(app: AppContext, ref: str) -> None:
    """Move an archived session back into the session directory."""
    from taurus_ops.ops import archive

    result = archive.run(app.job, archive.ArchiveRequest((ref,), unarchive=True))
    (item,) = result.items
    if isinstance(item, archive.NotMoved):
        raise item.error  # the one session asked for: its error is the command's
    click.echo(f"Unarchived {item.old.name} -> {item.new}")
