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


@click.command("list")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most N sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (see README for fields).")
@click.option("--archived", is_flag=True, help="Include archived sessions.")
@click.option("--tree", is_flag=True, help="Show forks and /compact successors under their parent.")
@example(
    "taurus-ops list --limit 10\n"
    "taurus-ops list --tree\n"
    "taurus-ops list --archived --json | jq '.[0].id'"
)
@pass_app
def list_cmd(app: AppContext, limit: int | None, as_json: bool, archived: bool, tree: bool) -> None:
    """List sessions, most recently updated first.

    With --tree, a fork (`taurus-ops fork`, `/fork`) is listed under the session it was
    forked from, with the message it was forked at (`fork @12`), and a /compact
    successor under the session it continues (`compacted`).
    """
    from taurus_ops.ops import listing

    result = listing.run(app.job, listing.ListRequest(limit, archived, tree))
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)
    if as_json:
        echo_json(result.as_json())
        return
    if result.empty:
        click.echo(f"No sessions in {app.store.session_dir} yet. Start one with `taurus chat`.")
        return
    if result.roots is not None:
        from taurus_ops.store.family import render

        for line in render(result.roots, when=local_time):
            click.echo(line)
        return
    rows = []
    for s in result.sessions:
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
    from taurus_ops.ops import show

    result = show.run(app.job, show.ShowRequest(ref, last, document=as_json))
    if as_json:
        echo_json(result.as_json())
        return
    info = result.details
    click.echo(f"Session {info['id']}{'  [archived]' if info['archived'] else ''}")
    click.echo(f"  File:     {info['path']}")
    click.echo(f"  Created:  {local_time(info['created'])}")
    click.echo(f"  Updated:  {local_time(info['updated'])}")
    click.echo(f"  Messages: {info['messages']}   Tool calls: {info['toolCalls']}")
    for label, key in (
        ("Names", "names"),
        ("Dir", "cwd"),
        ("Model", "model"),
    ):
        value = info[key]
        if value:
            click.echo(
                f"  {label + ':':<9} {', '.join(value) if isinstance(value, list) else value}"
            )
    for line in result.family:
        click.echo(line)
    click.echo("")
    for line in result.transcript:
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
