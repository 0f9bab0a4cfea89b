"""``list``, ``show`` and ``name``."""

from __future__ import annotations

import os

import click

from taurus_ops.cli.common import (
    AppContext,
    echo_json,
    example,
    human_size,
    local_time,
    pass_app,
    table,
)


def _cleanup_warning(app: AppContext) -> str | None:
    """A line warning that a configured retention rule will remove sessions, if any."""
    try:
        from taurus_ops.ops.cleanup import pending_warning
    except ImportError:
        return None
    return pending_warning(app.config, app.store)


@click.command("list")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most N sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (see README for fields).")
@click.option("--archived", is_flag=True, help="Include archived sessions.")
@example("taurus-ops list --limit 10\ntaurus-ops list --archived --json | jq '.[0].id'")
@pass_app
def list_cmd(app: AppContext, limit: int | None, as_json: bool, archived: bool) -> None:
    """List sessions, most recently updated first."""
    summaries = app.store.summaries(archived=archived)
    if limit:
        summaries = summaries[:limit]
    warning = _cleanup_warning(app)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json([s.as_json() for s in summaries])
        return
    if not summaries:
        click.echo(f"No sessions in {app.store.session_dir} yet. Start one with `taurus chat`.")
        return
    rows = []
    for s in summaries:
        title = s.title if not s.error else f"(damaged: {s.error})"
        flags = " [archived]" if s.archived else ""
        names = ",".join(s.names)
        rows.append(
            [
                s.id,
                local_time(s.updated),
                str(s.messages),
                str(s.tool_calls),
                human_size(s.size),
                names,
                title[:70] + flags,
            ]
        )
    click.echo(table(rows, ["ID", "UPDATED", "MSGS", "TOOLS", "SIZE", "NAME", "TITLE"]))


@click.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the session document as JSON.")
@click.option("--last", type=click.IntRange(min=1), help="Only the last N messages.")
@example(
    "taurus-ops show abc123\ntaurus-ops show password-reset --last 4\ntaurus-ops show abc --json | jq '.toolCalls[].tool'"
)
@pass_app
def show_cmd(app: AppContext, ref: str, as_json: bool, last: int | None) -> None:
    """Show one session: its details and the conversation.

    REF is an id, a unique id prefix, a file name, a name, or a path in the session directory.
    """
    from taurus_ops.ops.show import details, transcript

    session = app.store.load_ref(ref)
    if as_json:
        echo_json(session.data)
        return
    names = app.store.names().get(os.path.realpath(session.path), [])
    info = details(session, names)
    click.echo(f"Session {info['id']}{'  [archived]' if info['archived'] else ''}")
    click.echo(f"  File:     {info['path']}")
    click.echo(f"  Created:  {local_time(info['created'])}")
    click.echo(f"  Updated:  {local_time(info['updated'])}")
    click.echo(f"  Messages: {info['messages']}   Tool calls: {info['toolCalls']}")
    for label, key in (
        ("Names", "names"),
        ("Dir", "cwd"),
        ("Model", "model"),
        ("Parent", "parentSession"),
    ):
        value = info[key]
        if value:
            click.echo(
                f"  {label + ':':<9} {', '.join(value) if isinstance(value, list) else value}"
            )
    click.echo("")
    for line in transcript(session, last=last):
        click.echo(line)


@click.command("name")
@click.argument("ref")
@click.argument("name", required=False)
@click.option("--force", is_flag=True, help="Move the name if it already points elsewhere.")
@click.option("--remove", is_flag=True, help="Remove the name REF (the session stays).")
@example(
    "taurus-ops name abc123 password-reset-implementation\n"
    "taurus chat --session password-reset-implementation\n"
    "taurus-ops name password-reset-implementation --remove"
)
@pass_app
def name_cmd(app: AppContext, ref: str, name: str | None, force: bool, remove: bool) -> None:
    """Give a session a name, as the symlink NAME.json next to it.

    The name works anywhere an id does (`taurus chat -s NAME`, `taurus-ops show NAME`).
    """
    if remove:
        link = app.store.unname(ref)
        click.echo(f"Removed name {link.name[:-5]}")
        return
    if not name:
        raise click.UsageError("give a NAME (or --remove to drop a name)")
    link = app.store.name(ref, name, replace=force)
    click.echo(f"{link.name} -> {os.readlink(link)}")
