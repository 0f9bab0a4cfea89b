"""The ``taurus-ops`` command group and its table of commands (``cli.main`` runs it)."""

from __future__ import annotations

from pathlib import Path

import click

from taurus_ops import __version__
from taurus_ops.cli.common import AppContext, LazyGroup, config_options
from taurus_ops.cli.terminal import prepare_streams

# command name -> "module:attribute"; modules are imported only when their command runs
COMMANDS = {
    "list": "taurus_ops.cli.sessions:list_cmd",
    "show": "taurus_ops.cli.sessions:show_cmd",
    "name": "taurus_ops.cli.sessions:name_cmd",
    "fork": "taurus_ops.cli.branch:fork_cmd",
    "checkpoints": "taurus_ops.cli.branch:checkpoints_cmd",
    "config": "taurus_ops.cli.config_cmd:config_group",
    "cleanup": "taurus_ops.cli.cleanup:cleanup_cmd",
    "archive": "taurus_ops.cli.cleanup:archive_cmd",
    "unarchive": "taurus_ops.cli.cleanup:unarchive_cmd",
    "backup": "taurus_ops.cli.backup:backup_group",
    "schedule": "taurus_ops.cli.schedule:schedule_group",
    "timers": "taurus_ops.cli.schedule:timers_group",
    "doctor": "taurus_ops.cli.doctor:doctor_cmd",
    "search": "taurus_ops.cli.search:search_cmd",
    "index": "taurus_ops.cli.search:index_group",
    "stats": "taurus_ops.cli.stats:stats_cmd",
    "export": "taurus_ops.cli.export:export_cmd",
    "template": "taurus_ops.cli.templates:template_group",
    "serve": "taurus_ops.cli.serve:serve_cmd",
    "sync": "taurus_ops.cli.remote:sync_cmd",
    "share": "taurus_ops.cli.remote:share_cmd",
    "remote": "taurus_ops.cli.remote:remote_group",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@config_options
@click.version_option(__version__, "--version", prog_name="taurus-ops")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, session_dir: Path | None) -> None:
    """Look after saved Taurus sessions: list, search, export, clean up, back up, repair.

    Sessions live in ~/.taurus/sessions (TAURUS_HOME moves the whole home).

    \b
    Examples:
      taurus-ops list --limit 10
      taurus-ops show abc123
      taurus-ops doctor --fix
    """
    prepare_streams()
    ctx.obj = AppContext(config_file, session_dir)
