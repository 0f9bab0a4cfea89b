"""``taurus-ops doctor``: find damaged sessions and repair them without losing a message."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.ops.doctor import Report
    from taurus_ops.store.store import SessionStore

PROGRESS_FROM = 500  # files; fewer scan too fast for a bar to help


def _context(app: AppContext) -> tuple[JobContext, tuple[str, ...]]:
    """The job context, on the built-in settings when a config file is broken (reported)."""
    from taurus_ops.errors import ConfigError

    try:
        return app.job, ()
    except ConfigError as exc:
        from taurus_ops.ops.doctor import fallback_context

        ctx, note = fallback_context(app.session_dir, exc)
        return ctx, (note,)


@click.command("doctor")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--fix", is_flag=True, help="Repair what was found (originals go to the quarantine).")
@click.option("--dry-run", is_flag=True, help="With --fix: print the plan, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")
@click.option(
    "--full",
    is_flag=True,
    help="Read every file, also those unchanged since found healthy, and hash every file "
    "checkpoint (slower; finds bit rot).",
)
@example(
    "taurus-ops doctor\n"
    "taurus-ops doctor --fix --dry-run\n"
    "taurus-ops doctor --fix\n"
    "taurus-ops doctor --full\n"
    "taurus-ops doctor abc123 --fix\n"
    "taurus-ops doctor --json | jq '.problems[] | select(.severity==\"error\") | .path'"
)
@pass_app
def doctor_cmd(
    app: AppContext, refs: tuple[str, ...], fix: bool, dry_run: bool, as_json: bool, full: bool
) -> None:
    """Find damaged sessions and everything else wrong with the store, and repair it.

    Checks every session file (or only REF...) in the session directory and the
    archive: files that do not parse (cut off mid-write, NUL tail, trailing
    garbage, two documents, BOM, invalid UTF-8, control characters, empty),
    documents the API would refuse (dangling tool_use, unknown roles, missing
    fields, bad timestamps), ids that disagree with the file name or repeat,
    one conversation split off into two files, an id also used in a sub-folder
    (a project folder), dangling or escaping name links, temporary files and stale locks, loose
    permissions, a broken config file and a stale index. In the file checkpoints
    (~/.taurus/checkpoints): empty or (with --full) damaged contents, temporary files,
    stray files, loose modes, folders of sessions that are gone (size and the command to
    remove them; never removed) and checkpoints a session names that are missing (which
    file and message /rewind can no longer restore).

    --fix salvages every whole message, keeps each original byte for byte in
    ~/.taurus/quarantine/<date>/ first, and never touches a session open in a chat.
    A file found healthy is not read again until it changes (size, mtime, inode);
    --full reads every file.
    Exit status: 0 healthy (or all repaired), 1 problems remain, 2 usage error.
    """
    from taurus_ops.errors import UsageError
    from taurus_ops.ops import doctor

    if dry_run and not fix:
        raise UsageError("--dry-run goes with --fix (without --fix the doctor changes nothing)")
    ctx, notes = _context(app)
    request = doctor.DoctorRequest(
        refs=refs,
        fix=fix,
        dry_run=dry_run,
        full=full,
        config_files=(app.config_file,) if app.config_file is not None else (),
        notes=notes,
    )
    if not as_json and sys.stderr.isatty() and _count(ctx.store) >= PROGRESS_FROM:
        report = _with_progress(
            lambda progress: doctor.run(ctx, replace(request, progress=progress))
        )
    else:
        report = doctor.run(ctx, request)
    if as_json:
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(report.exit_code)


def _count(store: SessionStore) -> int:
    try:
        return len(store.files()) + len(store.files(archived=True))
    except OSError:
        return 0


def _with_progress(execute: Callable[[Callable[[int, int], None]], Report]) -> Report:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("checking sessions"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("scan", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return execute(progress)
