"""What every command shares: the app context, error handling, small output helpers."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from taurus_ops.cli.terminal import os_error_line, reader_gone
from taurus_ops.errors import TaurusError
from taurus_ops.words import human_size

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.store import SessionStore


class AppContext:
    """Built from the global flags; config and store are loaded on first use."""

    def __init__(self, config_file: Path | None = None, session_dir: Path | None = None) -> None:
        self.config_file = config_file
        self.session_dir = session_dir
        self._config: Config | None = None
        self._store: SessionStore | None = None
        self._job: JobContext | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from taurus_ops.config import load_config

            self._config = load_config(self.config_file, self.session_dir)
        return self._config

    @property
    def store(self) -> SessionStore:
        if self._store is None:
            from taurus_ops.store import SessionStore

            self._store = SessionStore.from_config(self.config)
        return self._store

    @property
    def job(self) -> JobContext:
        """The context every ``ops`` job entry point takes (the same config and store)."""
        if self._job is None:
            from taurus_ops.ops.context import JobContext

            self._job = JobContext(self.config, self.store)
        return self._job


pass_app = click.make_pass_decorator(AppContext, ensure=True)


class TaurusClickError(click.ClickException):
    """A domain error shown as ``Error: <one line>`` with the error's exit code."""

    def __init__(self, error: TaurusError | str, exit_code: int = 1) -> None:
        super().__init__(str(error))
        self.exit_code = getattr(error, "exit_code", exit_code)


def run_safely(invoke: Callable[[], Any]) -> Any:
    """Run a command body, turning domain and OS errors into one-line click errors."""
    try:
        return invoke()
    except TaurusError as exc:
        raise TaurusClickError(exc) from None
    except BrokenPipeError:
        reader_gone()
    except OSError as exc:
        raise TaurusClickError(os_error_line(exc)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported only when used.

    ``lazy`` maps a command name to ``"module:attribute"``; a command whose module is
    not installed is simply absent. Errors from any subcommand become one line.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name, target in self.lazy.items() if _exists(target))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and _exists(self.lazy[cmd_name]):
            module_name, attr = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return run_safely(lambda: super(LazyGroup, self).invoke(ctx))
        finally:
            _warn_unlogged()


def _warn_unlogged() -> None:
    """One line for each ops log a command could not write to (a full disk, say)."""
    log = sys.modules.get("taurus_ops.ops.log")  # only a command that logs has loaded it
    if log is None:
        return
    for path, reason in log.take_failures().items():
        click.echo(
            f"warning: could not write the ops log {path} ({reason}); this run is missing from it",
            err=True,
        )


def _exists(target: str) -> bool:
    module_name = target.split(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


# -- options shared by several commands ------------------------------------------------
def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` and ``--session-dir DIR``: the command-line layer of the settings."""
    func = click.option(
        "--session-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Use this session directory (overrides sessionDirectory).",
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read this config file on top of the others.",
    )(func)


def wait_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait SECONDS`` for the maintenance jobs that share the ops lock."""
    return click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        help="Seconds to wait for another maintenance job (cleanup, backup, sync, doctor) to finish.",
    )(func)


# -- output helpers -------------------------------------------------------------------
def echo_json(value: Any) -> None:
    """Print ``value`` as JSON; always valid UTF-8 (an undecodable byte in a name is U+FFFD)."""
    from taurus_ops.store.format import clean_text

    click.echo(clean_text(json.dumps(value, indent=2, ensure_ascii=False, default=str)))


def local_time(iso: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    from taurus_ops.store.format import parse_time

    moment = parse_time(iso)
    return moment.astimezone().strftime(fmt) if moment else "?"


def table(rows: list[list[str]], headers: list[str], last_free: bool = True) -> str:
    """A plain, aligned text table; the last column is left unpadded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell if (last_free and i == len(row) - 1) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def example(text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Append an Examples section to a command's help (every command has one)."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.cleandoc(func.__doc__ or "")  # dedent first, or the block breaks it
        block = "\n".join("  " + line for line in text.strip().splitlines())
        func.__doc__ = f"{doc}\n\n\b\nExamples:\n{block}\n"  # \b (backspace): keep lines
        return func

    return wrap


__all__ = [
    "AppContext",
    "LazyGroup",
    "TaurusClickError",
    "echo_json",
    "example",
    "human_size",
    "local_time",
    "pass_app",
    "run_safely",
    "table",
]
