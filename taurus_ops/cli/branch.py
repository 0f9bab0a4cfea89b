"""``fork`` and ``checkpoints``: sessions as a tree, and the file contents kept for /rewind."""

from __future__ import annotations

import click

from taurus_ops.cli.common import AppContext, echo_json, example, human_size, pass_app, table


@click.command("fork")
@click.argument("ref", metavar="REF[@N]")
@click.option("--name", metavar="NAME", help="Name the new session (NAME.json symlink).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the new session's id, file and parent."
)
@example(
    "taurus-ops fork abc123@12\n"
    "taurus-ops fork password-reset --name password-reset-v2\n"
    "taurus chat -s password-reset-v2"
)
@pass_app
def fork_cmd(app: AppContext, ref: str, name: str | None, as_json: bool) -> None:
    """Start a new session from the first N messages of REF (all without @N).

    N counts messages as `taurus-ops show` numbers them. The new session has its own id
    and file, with "parentSession" and "forkedAt"; REF's file is not changed. A point
    between a tool request and its result is refused, naming the nearest valid ones.
    """
    from taurus_ops.ops import fork

    result = fork.run(app.job, fork.ForkRequest(ref, name))
    if as_json:
        echo_json(result.as_json())
        return
    click.echo(result.describe())
    click.echo(f"  File:     {result.made.session.path}")
    if result.link is not None:
        click.echo(f"  Name:     {name}")
    click.echo(f"  Continue: taurus chat -s {name or result.made.session.id}")


@click.command("checkpoints")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the changes and blobs as JSON.")
@example(
    "taurus-ops checkpoints abc123\ntaurus-ops checkpoints abc123 --json | jq '.changes[].file'"
)
@pass_app
def checkpoints_cmd(app: AppContext, ref: str, as_json: bool) -> None:
    """The file checkpoints of a session: each write and edit, what the file held before and
    what Taurus wrote, and the rewinds; whether each content is still kept.

    They live in ~/.taurus/checkpoints/<session-id>/ (one file per content, named by its
    sha256) and are what `/rewind` puts back.
    """
    from taurus_ops.ops import checkpoints
    from taurus_ops.store.checkpoints import ABSENT

    result = checkpoints.run(app.job, checkpoints.CheckpointsRequest(ref))
    if as_json:
        echo_json(result.as_json())
        return

    def state(sha: str) -> str:
        if sha == ABSENT:
            return "(no file)"
        blob = result.blobs.get(sha)
        return f"{sha[:12]} {human_size(blob.size)}" if blob else f"{sha[:12]} MISSING"

    click.echo(f"Checkpoints of {result.session_id}: {result.folder}")
    click.echo(
        f"  {len(result.changes)} change(s), {len(result.blobs)} content(s) kept, "
        f"{human_size(result.size)}"
    )
    if not result.changes:
        click.echo("  (no write or edit has been checkpointed in this session)")
        return
    rows = []
    for c in result.changes:
        if c.rewind is not None:
            where = f"rewind {c.rewind + 1}"
        else:
            where = str(c.message) if c.message is not None else "?"
        rows.append([where, c.tool, c.outcome, state(c.before), state(c.after), c.file])
    click.echo(table(rows, ["MSG", "TOOL", "OUTCOME", "BEFORE", "WRITTEN", "FILE"]))
