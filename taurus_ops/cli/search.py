"""``search`` and ``index status|rebuild``."""

from __future__ import annotations

import sys

import click

from taurus_ops.cli.common import AppContext, echo_json, example, human_size, local_time, pass_app
from taurus_ops.words import plural


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("-l", "--files-with-matches", "paths_only", is_flag=True,
              help="Print only the matching session files, like grep -l.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the hits as a JSON array.")
@click.option("--role", type=click.Choice(["user", "assistant"]),
              help="Only match messages from this side.")  # fmt: skip
@click.option("--tool", metavar="NAME", help="Only sessions that used this tool.")
@click.option("--since", metavar="DATE",
              help="Only sessions updated since DATE (2025-01-18, 7d, 2w, today).")  # fmt: skip
@click.option("--limit", "-n", type=click.IntRange(min=1),
              help="At most N hits (default 20; -l prints all unless given).")  # fmt: skip
@click.option("--archived", is_flag=True, help="Search archived sessions too.")
@click.option("--case-sensitive", "-s", is_flag=True, help="Match letter case exactly.")
@example(
    "taurus-ops search authentication\n"
    'taurus-ops search "password reset" --since 7d\n'
    "taurus-ops search -l login --tool edit\n"
    "taurus-ops search token --role assistant --json | jq '.[].id'"
)
@pass_app
def search_cmd(
    app: AppContext,
    query: tuple[str, ...],
    paths_only: bool,
    as_json: bool,
    role: str | None,
    tool: str | None,
    since: str | None,
    limit: int | None,
    archived: bool,
    case_sensitive: bool,
) -> None:
    """Find sessions whose messages contain every term of QUERY (words or "quoted phrases").

    Terms match anywhere in the message text, ignoring case unless -s is given, as
    `grep -il` would. Hits are ranked, with a highlighted snippet; -l prints file
    paths in file-name order, one per line, like the tutorial's `grep -l`.
    """
    from taurus_ops.cli.terminal import index_progress
    from taurus_ops.ops.search import (
        SearchQuery,
        add_snippets,
        files_with_matches,
        mark,
        parse_since,
        terms_of,
    )
    from taurus_ops.ops.search import search as run_search
    from taurus_ops.store.index import Index

    request = SearchQuery(
        terms=terms_of(query),
        role=role,
        tool=tool,
        since=parse_since(since) if since else None,
        archived=archived,
        case_sensitive=case_sensitive,
        limit=limit if (limit or paths_only) else 20,
    )
    with Index(app.config) as index, index_progress(index):
        if paths_only:
            paths = files_with_matches(index, request)
            if not paths:
                sys.exit(1)  # like grep: nothing found
            click.echo("\n".join(paths))  # one write: thousands of paths print in a moment
            return
        hits = run_search(index, request)
        add_snippets(index, hits, request)
    if as_json:
        echo_json([h.as_json() for h in hits])
        return
    if not hits:
        click.echo("No sessions match.", err=True)
        sys.exit(1)
    color = sys.stdout.isatty()
    for hit in hits:
        head = f"{hit.id}  {local_time(hit.updated, '%Y-%m-%d')}  {hit.title[:70]}"
        if hit.archived:
            head += "  [archived]"
        if hit.parent:
            head += (
                f"  [fork of {hit.parent} @{hit.forked_at}]"
                if hit.forked_at is not None
                else f"  [continues {hit.parent}]"
            )
        click.echo(click.style(head, bold=True) if color else head)
        if color:
            text = mark(hit.snippet, hit.highlights, "\x1b[1;33m", "\x1b[0m")
        else:
            text = mark(hit.snippet, hit.highlights, "[", "]")
        who = {"user": "You", "assistant": "Claude"}.get(hit.role, hit.role)
        click.echo(f"    {who}: {text}")


@click.group("index")
@example("taurus-ops index status\ntaurus-ops index rebuild")
def index_group() -> None:
    """The search index (~/.taurus/index.sqlite): a cache of the session files.

    It refreshes itself on every search, stats and list; rebuild it if in doubt.
    Deleting it is always safe.
    """


@index_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@example("taurus-ops index status --json")
@pass_app
def index_status(app: AppContext, as_json: bool) -> None:
    """Where the index is, how big, and whether it agrees with the files."""
    from taurus_ops.store.index import Index

    with Index(app.config) as index:
        info = index.status()
        info["problems"] = index.check()
    if as_json:
        echo_json(info)
        return
    click.echo(f"Index:    {info['path']}")
    if not info["exists"]:
        click.echo("Status:   not built yet (the next search builds it)")
        return
    click.echo(f"Size:     {human_size(info['size'])}")
    click.echo(f"Sessions: {info['sessions']}   Messages: {info['messages']}")
    click.echo(f"Stale:    {plural(info['stale'], 'file')} changed since the last refresh")
    for problem in info["problems"]:
        click.echo(f"Problem:  {problem}")


@index_group.command("rebuild")
@example("taurus-ops index rebuild")
@pass_app
def index_rebuild(app: AppContext) -> None:
    """Throw the index away and build it again from the session files."""
    import time

    from taurus_ops.store.index import Index

    start = time.perf_counter()
    from taurus_ops.cli.terminal import index_progress

    with Index(app.config) as index, index_progress(index, "Rebuilding the index"):
        report = index.rebuild()
    took = time.perf_counter() - start
    click.echo(f"Rebuilt {index.path}: {plural(report.added, 'session')} in {took:.1f}s")
