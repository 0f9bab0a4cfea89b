"""``taurus-ops doctor``: find damaged sessions and repair them without losing a message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app

PROGRESS_FROM = 500  # files; fewer scan too fast for a bar to help


def _config_and_store(app: AppContext) -> tuple[Any, Any, list[str]]:
    """The configuration, falling back to defaults when a config file is broken (reported)."""
    from taurus_ops.errors import ConfigError

    try:
        return app.config, app.store, []
    except ConfigError as exc:
        from taurus_ops.config.paths import expand_path
        from taurus_ops.config.settings import Config, Settings
        from taurus_ops.store import SessionStore

        values: dict[str, Any] = {}
        if app.session_dir is not None:
            values["sessionDirectory"] = expand_path(str(app.session_dir))
        config = Config(settings=Settings(**values))
        note = f"a configuration file could not be read ({exc.source}); using the default settings"
        return config, SessionStore.from_config(config), [note]


def _cleanup_warning(config: Any, store: Any) -> str | None:
    try:
        from taurus_ops.ops.cleanup import pending_warning
    except ImportError:
        return None
    try:
        return pending_warning(config, store)
    except Exception:  # a warning must never stop the doctor
        return None


def _resolve(store: Any, refs: tuple[str, ...]) -> list[Path] | None:
    if not refs:
        return None
    from taurus_ops.errors import SessionNotFound, UsageError

    paths = []
    for ref in refs:
        try:
            paths.append(store.resolve(ref).path)
        except SessionNotFound as exc:
            raise UsageError(str(exc)) from None
    return paths


@click.command("doctor")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--fix", is_flag=True, help="Repair what was found (originals go to the quarantine).")
@click.option("--dry-run", is_flag=True, help="With --fix: print the plan, change nothing.")
@click.option(
    "--full", is_flag=True, help="Also hash every file checkpoint (slower; finds bit rot)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")
@example(
    "taurus-ops doctor\n"
    "taurus-ops doctor --fix --dry-run\n"
    "taurus-ops doctor --fix\n"
    "taurus-ops doctor abc123 --fix\n"
    "taurus-ops doctor --full\n"
    "taurus-ops doctor --json | jq '.problems[] | select(.severity==\"error\") | .path'"
)
@pass_app
def doctor_cmd(
    app: AppContext, refs: tuple[str, ...], fix: bool, dry_run: bool, full: bool, as_json: bool
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
    Exit status: 0 healthy (or all repaired), 1 problems remain, 2 usage error.
    """
    from taurus_ops.errors import UsageError
    from taurus_ops.ops.doctor import run_doctor

    if dry_run and not fix:
        raise UsageError("--dry-run goes with --fix (without --fix the doctor changes nothing)")
    config, store, notes = _config_and_store(app)
    only = _resolve(store, refs)
    warning = _cleanup_warning(config, store) if not notes else None
    files = list(getattr(config, "files", []) or [])
    if app.config_file is not None:
        files.append(Path(app.config_file))

    def execute(progress: Any = None) -> Any:
        return run_doctor(
            config.home,
            config.session_dir,
            config.archive_dir,
            only=only,
            fix=fix,
            dry_run=dry_run,
            progress=progress,
            config_files=files,
            full=full,
        )

    if not as_json and sys.stderr.isatty() and _count(store) >= PROGRESS_FROM:
        report = _with_progress(execute)
    else:
        report = execute()
    report.warnings[:0] = notes + ([warning] if warning else [])
    if as_json:
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(report.exit_code)


def _count(store: Any) -> int:
    try:
        return len(store.files()) + len(store.files(archived=True))
    except OSError:
        return 0


def _with_progress(execute: Any) -> Any:
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
