"""``list``, ``show`` and ``name``."""

from __future__ import annotations

import os
from typing import Any

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
    warning = _cleanup_warning(app)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if tree:
        _list_tree(app, limit, as_json, archived)
        return
    summaries, children = app.store.listing(archived=archived, limit=limit)
    if as_json:
        echo_json([{**s.as_json(), "children": children.get(s.id, [])} for s in summaries])
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


def _list_tree(app: AppContext, limit: int | None, as_json: bool, archived: bool) -> None:
    from taurus_ops.store.family import build, render

    roots = build(app.store.summaries(archived=True))
    if not archived:  # an archived parent stays, to hold its active children
        roots = [r for r in roots if any(not n.summary.archived for n in r.walk())]
    if limit:
        roots = roots[:limit]
    if as_json:

        def node(n: Any) -> dict[str, Any]:
            return {**n.summary.as_json(), "children": [node(c) for c in n.children]}

        echo_json([node(r) for r in roots])
        return
    if not roots:
        click.echo(f"No sessions in {app.store.session_dir} yet. Start one with `taurus chat`.")
        return
    for line in render(roots, when=local_time):
        click.echo(line)


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
    ):
        value = info[key]
        if value:
            click.echo(
                f"  {label + ':':<9} {', '.join(value) if isinstance(value, list) else value}"
            )
    for line in _family_lines(app, session, info):
        click.echo(line)
    click.echo("")
    for line in transcript(session, last=last):
        click.echo(line)


def _family_lines(app: AppContext, session: Any, info: dict[str, Any]) -> list[str]:
    """Parent (and where it was forked) and children, for ``show``."""
    from taurus_ops.store.family import children_of
    from taurus_ops.store.format import printable

    lines = []
    parent, forked = info.get("parentSession"), info.get("forkedAt")
    if isinstance(parent, str) and parent:
        how = (
            f"forked at message {forked}"
            if isinstance(forked, int) and not isinstance(forked, bool)
            else "compacted into this one"
        )
        lines.append(f"  Parent:   {printable(parent)} ({how})")
    kids = children_of(app.store.summaries(archived=True), session.id)
    for label, group in (
        ("Forks", [k for k in kids if k.forked_at is not None]),
        ("Continued", [k for k in kids if k.forked_at is None]),
    ):
        if group:
            shown = ", ".join(
                f"{k.id} (@{k.forked_at})" if k.forked_at is not None else f"{k.id} (compacted)"
                for k in group
            )
            lines.append(f"  {label + ':':<9} {shown}")
    return lines


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
