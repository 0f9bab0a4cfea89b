"""``cleanup``, ``archive`` and ``unarchive``."""

from __future__ import annotations

import click

from taurus_ops.cli.common import AppContext, echo_json, example, human_size, pass_app, wait_option
from taurus_ops.words import plural


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
    from taurus_ops.ops.lock import ops_lock
    from taurus_ops.ops.log import ops_logger

    config, store = app.config, app.store
    log = ops_logger(config.home, "taurus_ops.ops.cleanup")
    rules = cleanup.Rules.from_config(config)
    if not rules.active:
        message = (
            "retention is off: set sessions.retentionDays, sessions.maxSessions or "
            "archive.retentionDays in ~/.taurus/config.yaml to clean up"
        )
        if as_json:
            echo_json({"actions": [], "skipped": [], "note": message})
        else:
            click.echo(f"Nothing to do: {message}.")
        return
    with ops_lock(config.home, wait):
        plan = cleanup.make_plan(config, store)
        if dry_run:
            log.info(
                "cleanup --dry-run: would archive %d, delete %d (%s); %d kept by protection",
                plan.count(cleanup.ARCHIVE),
                plan.count(cleanup.DELETE),
                plural(plan.bytes, "byte"),
                len(plan.skipped),
            )
            if as_json:
                echo_json(plan.as_json())
                return
            _print_plan(plan, dry_run=True)
            return
        log.info("cleanup: start (%s)", ", ".join(rules.describe()))
        result = cleanup.execute(plan, store, log)
        cleanup.record_run(config.home, result)
        log.info(
            "cleanup: done: archived %d, deleted %d, freed %s, %d left (see above)",
            len(result.archived),
            len(result.deleted),
            plural(result.bytes_freed, "byte"),
            len(result.failed),
        )
    if as_json:
        echo_json(result.as_json())
    else:
        _print_plan(plan, dry_run=False)
        for outcome in result.failed:
            click.echo(f"not done: {outcome.action.path}: {outcome.detail}", err=True)
        click.echo(
            f"Archived {len(result.archived)}, deleted {len(result.deleted)}, "
            f"freed {human_size(result.bytes_freed)} from the session directory"
            + (f"; {len(result.failed)} left for the next run" if result.failed else "")
            + "."
        )
    if result.failed:
        raise SystemExit(1)


def _print_plan(plan, dry_run: bool) -> None:  # type: ignore[no-untyped-def]
    from taurus_ops.ops.cleanup import ARCHIVE, DELETE, plan_lines

    for line in plan_lines(plan):
        click.echo(line)
    if dry_run:
        if not plan.actions:
            click.echo(f"Nothing to clean up ({plural(plan.kept, 'session')} kept).")
        else:
            click.echo(
                f"Would archive {plural(plan.count(ARCHIVE), 'session')} and delete "
                f"{plural(plan.count(DELETE), 'session')} ({human_size(plan.bytes)}); "
                f"{plan.kept} kept. "
                "Run `taurus-ops cleanup` to do it."
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
    from taurus_ops.ops.cleanup import archive_session, check_layout
    from taurus_ops.ops.lock import ops_lock
    from taurus_ops.ops.log import ops_logger

    config = app.config
    check_layout(config)
    log = ops_logger(config.home, "taurus_ops.ops.cleanup")
    failed = 0
    with ops_lock(config.home):
        for ref in refs:
            try:
                old, new = archive_session(app.store, ref)
            except Exception as exc:
                from taurus_ops.errors import TaurusError

                if not isinstance(exc, TaurusError | OSError):
                    raise
                failed += 1
                click.echo(f"Error: {ref}: {exc}", err=True)
                continue
            log.info("archive: %s -> %s", old, new)
            click.echo(f"Archived {old.name} -> {new}")
    if failed:
        raise SystemExit(1)


@click.command("unarchive")
@click.argument("ref")
@example("taurus-ops unarchive abc123\ntaurus-ops list --archived")
@pass_app
def unarchive_cmd(app: AppContext, ref: str) -> None:
    """Move an archived session back into the session directory."""
    from taurus_ops.ops.cleanup import unarchive_session
    from taurus_ops.ops.lock import ops_lock
    from taurus_ops.ops.log import ops_logger

    config = app.config
    with ops_lock(config.home):
        old, new = unarchive_session(app.store, ref)
    ops_logger(config.home, "taurus_ops.ops.cleanup").info("unarchive: %s -> %s", old, new)
    click.echo(f"Unarchived {old.name} -> {new}")
