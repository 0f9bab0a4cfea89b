"""``export``: one session (or all) as Markdown, HTML or JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from taurus_ops.cli.common import AppContext, example, pass_app
from taurus_ops.words import plural


@click.command("export")
@click.argument("ref", required=False)
@click.option("--format", "-f", "fmt_name", type=click.Choice(["markdown", "html", "json"]),
              default="markdown", show_default=True, help="Output format.")  # fmt: skip
@click.option("--template", "-t", type=click.Path(dir_okay=False, path_type=Path),
              help="Render with this Jinja template (sandboxed) instead.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="Write to FILE (a folder with --all); default: standard output.")  # fmt: skip
@click.option("--redact", is_flag=True, help="Mask API keys, tokens, private keys and passwords.")
@click.option("--all", "all_sessions", is_flag=True, help="Export every session into -o DIR.")
@click.option("--archived", is_flag=True, help="With --all: archived sessions too.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@example(
    "taurus-ops export abc123 > abc123.md\n"
    "taurus-ops export abc123 --format html -o abc123.html\n"
    "taurus-ops export password-reset --redact -o share.md\n"
    "taurus-ops export abc123 --template my-report.md.j2\n"
    "taurus-ops export --all -o ~/exports --format html"
)
@pass_app
def export_cmd(
    app: AppContext,
    ref: str | None,
    fmt_name: str,
    template: Path | None,
    output: Path | None,
    redact: bool,
    all_sessions: bool,
    archived: bool,
    force: bool,
) -> None:
    """Export session REF as Markdown (the tutorial's export-session.sh layout), HTML or JSON.

    HTML is one self-contained page that prints well. --redact masks secrets
    before they leave and says how many. A --template runs in Jinja's sandbox: it
    sees the session's data and nothing else (see README for the variables).
    """
    from taurus_ops.ops import export

    request = export.ExportRequest(
        ref, all_sessions, fmt_name, template, output, redact, archived, force
    )
    result = export.run(app.job, request)
    if result.folder is not None:
        click.echo(f"Exported {plural(result.exported, 'session')} to {result.folder}", err=True)
        if redact:
            click.echo(f"Redaction: masked {plural(result.masked, 'secret')} in all", err=True)
        for line in result.failed:
            click.echo(f"skipped {line}", err=True)
        if not result.ok:
            sys.exit(1)
        return
    if result.text is not None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"Exported to: {result.written}", err=True)
    if result.redaction is not None:
        click.echo(f"Redaction: {result.redaction.summary()}", err=True)
