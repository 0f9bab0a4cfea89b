"""``stats``: the tutorial's session-stats.sh, plus tokens, cost and activity."""

from __future__ import annotations

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--since", metavar="DATE",
              help="Only sessions updated since DATE (2025-01-18, 7d, 2w, today).")  # fmt: skip
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True,
              help="How many days the sessions-per-day chart shows.")  # fmt: skip
@example("taurus-ops stats\ntaurus-ops stats --since 7d\ntaurus-ops stats --json | jq .tools")
@pass_app
def stats_cmd(app: AppContext, as_json: bool, since: str | None, days: int) -> None:
    """Session statistics: totals, this week, tools, messages, files, tokens and cost.

    The figures match the tutorial's session-stats.sh on the same directory, except
    that a named session is counted once (the script counts each name link again).
    Costs are estimates from list prices.
    """
    from taurus_ops.ops.stats import render_text, session_stats
    from taurus_ops.store.index import Index

    moment = None
    if since:
        from taurus_ops.ops.search import parse_since

        moment = parse_since(since)
    from taurus_ops.cli.terminal import index_progress

    with Index(app.config) as index, index_progress(index):
        stats = session_stats(index, since=moment)
    checkpoints = app.store.checkpoints
    if checkpoints is not None:
        stats.checkpoint_bytes = checkpoints.size()
        stats.checkpoint_limit = app.config.settings.checkpoints.max_bytes
    if as_json:
        echo_json(stats.as_json())
        return
    for line in render_text(stats, days=days):
        click.echo(line)
