"""``schedule run|show`` (the APScheduler daemon) and ``timers install|status|uninstall``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app, table

if TYPE_CHECKING:
    from taurus_ops.ops.timers import TimerResult


@click.group("schedule")
def schedule_group() -> None:
    """Run cleanup and backup on their cron schedules (schedule.cleanup, schedule.backup).

    `schedule run` is a foreground daemon (APScheduler); run it under your session
    manager, tmux or the like. Or use `taurus-ops timers install` for systemd timers.

    \b
    Examples:
      taurus-ops schedule show
      taurus-ops schedule run
    """


@schedule_group.command("run")
@example("taurus-ops schedule run\nnohup taurus-ops schedule run >/dev/null 2>&1 &")
@click.pass_context
@pass_app
def run_cmd(app: AppContext, ctx: click.Context) -> None:
    """Run the scheduler in the foreground until SIGTERM or Ctrl-C (then exit 0).

    Jobs are kept in ~/.taurus/schedule.sqlite: runs missed while the machine slept
    happen once when it wakes. One job runs at a time, and each waits for a cleanup,
    backup or doctor started elsewhere. Logs go to ~/.taurus/logs/taurus-ops.log.
    """
    from taurus_ops.ops.schedule import run_daemon

    config = app.config
    config_file = str(app.config_file.absolute()) if app.config_file else None
    session_dir = str(app.session_dir.absolute()) if app.session_dir else None
    click.echo(
        f"taurus-ops scheduler: cleanup {config.settings.schedule.cleanup!r}, "
        f"backup {config.settings.schedule.backup!r}; logging to {config.home / 'logs'}",
        err=True,
    )
    code = run_daemon(config, config_file, session_dir)
    click.echo("scheduler stopped", err=True)
    ctx.exit(code)


@schedule_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@example("taurus-ops schedule show\ntaurus-ops schedule show --json | jq '.jobs[].nextRun'")
@pass_app
def show_cmd(app: AppContext, as_json: bool) -> None:
    """List the scheduled jobs, their cron expressions and next run times."""
    from taurus_ops.ops import schedule
    from taurus_ops.store.format import format_time

    info = schedule.status(app.job)
    if as_json:
        echo_json(info.as_json())
        return
    rows = []
    for j in info.jobs:
        nxt = _when(format_time(j.next_run)) if j.next_run else "never"
        stored = ""
        if j.overdue and j.stored_next_run is not None:
            stored = f" (overdue since {_when(format_time(j.stored_next_run))}: runs once on start)"
        rows.append([j.kind, j.expression, nxt + stored])
    click.echo(table(rows, ["JOB", "CRON", "NEXT RUN"]))
    click.echo("")
    pid = info.daemon_pid
    click.echo(
        f"Scheduler: running (pid {pid})"
        if pid
        else "Scheduler: not running (start it with `taurus-ops schedule run`)"
    )


def _when(iso: str) -> str:
    from taurus_ops.cli.common import local_time

    return local_time(iso, "%Y-%m-%d %H:%M:%S %Z")


@click.group("timers")
def timers_group() -> None:
    """Install systemd user timers that run cleanup and backup on the schedule settings.

    \b
    Examples:
      taurus-ops timers install --dry-run
      taurus-ops timers install
      taurus-ops timers status
      taurus-ops timers uninstall
    """


@timers_group.command("install")
@click.option("--dry-run", "-n", is_flag=True, help="Print the units; write nothing.")
@click.option("--no-enable", is_flag=True, help="Write the units but do not enable them.")
@example("taurus-ops timers install\ntaurus-ops timers install --dry-run")
@pass_app
def install_cmd(app: AppContext, dry_run: bool, no_enable: bool) -> None:
    """Write taurus-ops-{cleanup,backup}.{service,timer} into ~/.config/systemd/user/ and
    enable the timers (or print the exact systemctl commands where systemd is absent)."""
    from taurus_ops.ops import timers

    config = app.config
    if dry_run:
        folder = timers.unit_dir()
        for name, text in timers.render(config).items():
            click.echo(f"# {folder / name}")
            click.echo(text)
        return
    result = timers.install(config, enable=not no_enable)
    for path in result.written:
        click.echo(f"Wrote {path}")
    for cmd in result.ran:
        click.echo(f"Ran: {cmd}")
    _tell(result)


def _tell(result: TimerResult) -> None:
    for error in result.errors:
        click.echo(f"warning: {error}", err=True)
    if result.to_run:
        click.echo("systemctl --user is not available here; run these where it is:")
        for cmd in result.to_run:
            click.echo(f"  {cmd}")


@timers_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@example("taurus-ops timers status")
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """Show which units are installed and, where systemd runs, the timers' next runs."""
    from taurus_ops.ops import timers

    info = timers.status()
    if as_json:
        echo_json(info)
        return
    rows = [[name, "installed" if ok else "-"] for name, ok in info["installed"].items()]
    click.echo(table(rows, ["UNIT", "STATE"]))
    click.echo(f"\nFolder: {info['folder']}")
    if info["systemd"]:
        click.echo(info["systemd"])
    else:
        click.echo("systemctl --user is not available here; timers' next runs unknown.")


@timers_group.command("uninstall")
@example("taurus-ops timers uninstall")
@pass_app
def uninstall_cmd(app: AppContext) -> None:
    """Disable the timers and remove the four units."""
    from taurus_ops.ops import timers

    result = timers.uninstall()
    for path in result.removed:
        click.echo(f"Removed {path}")
    if not result.removed:
        click.echo("No taurus-ops units were installed.")
    for cmd in result.ran:
        click.echo(f"Ran: {cmd}")
    _tell(result)
