"""``export``: one session (or all) as Markdown, HTML or JSON."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from taurus_ops.cli.common import AppContext, example, pass_app
from taurus_ops.words import plural


def _refuse_store_path(app: AppContext, target: Path) -> None:
    from taurus_ops.errors import UsageError
    from taurus_ops.store.refs import inside

    for folder in (app.store.session_dir, app.store.archive_dir):
        if folder is not None and inside(target, folder):
            raise UsageError(f"refusing to write an export into {folder}: choose another place")


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
    from taurus_ops.errors import UsageError
    from taurus_ops.ops.export import (
        WriteFailed,
        plan_all,
        read_user_template,
        render,
        suffix_for,
        write_output,
    )

    user_source = read_user_template(template) if template is not None else None
    if all_sessions:
        if ref:
            raise UsageError("give either REF or --all, not both")
        if output is None:
            raise UsageError("--all needs -o DIR")
        _refuse_store_path(app, output)
        sources = app.store.files() + (app.store.files(archived=True) if archived else [])
        plan = plan_all(sources, output, suffix_for(fmt_name, template))
        if not force:
            existing = [dst for _, dst in plan if dst.exists()]
            if existing:
                raise UsageError(
                    f"{plural(len(existing), 'file already exists', 'files already exist')} "
                    f"in {output}, e.g. {existing[0].name}"
                    " (use --force to overwrite)"
                )
        names = app.store.names()
        done, failed, masked = 0, [], 0
        for number, (src, dst) in enumerate(plan):
            try:
                session = app.store.load(src)
                result = render(
                    session,
                    fmt_name,
                    template,
                    redact,
                    names.get(os.path.realpath(src), []),
                    user_source,
                )
            except Exception as exc:  # one bad file must not stop the rest
                failed.append(f"{src.name}: {exc}")
                continue
            try:
                write_output(dst, result.text, force)
            except WriteFailed as exc:  # a full disk: reported, and not counted as exported
                failed.append(f"{src.name}: {exc}")
                if exc.out_of_room:
                    rest = len(plan) - number - 1
                    if rest:
                        failed.append(
                            f"the other {plural(rest, 'session')}: not tried (no room left)"
                        )
                    break
                continue
            except UsageError as exc:
                failed.append(f"{src.name}: {exc}")
                continue
            masked += result.redaction.total if result.redaction else 0
            done += 1
        click.echo(f"Exported {plural(done, 'session')} to {output}", err=True)
        if redact:
            click.echo(f"Redaction: masked {plural(masked, 'secret')} in all", err=True)
        for line in failed:
            click.echo(f"skipped {line}", err=True)
        if failed:
            sys.exit(1)
        return
    if not ref:
        raise UsageError("give a session REF (or --all -o DIR)")
    session = app.store.load_ref(ref)
    names = app.store.names().get(os.path.realpath(session.path), [])
    result = render(session, fmt_name, template, redact, names, user_source)
    if output is None or str(output) == "-":
        click.echo(result.text, nl=False)
    else:
        _refuse_store_path(app, output)
        if output.exists() and output.is_dir():
            output = output / (session.path.name.removesuffix(".json") + result.suffix)
        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        write_output(output, result.text, force)
        click.echo(f"Exported to: {output}", err=True)
    if result.redaction is not None:
        click.echo(f"Redaction: {result.redaction.summary()}", err=True)
