"""``fork`` and ``checkpoints``: sessions as a tree, and the file contents kept for /rewind."""

from __future__ import annotations

import os

import click

from taurus_ops.cli.common import AppContext, echo_json, example, human_size, pass_app, table
from taurus_ops.errors import UsageError


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
    from taurus_ops.store.fork import describe, fork_session, split_ref
    from taurus_ops.store.refs import check_token

    target, count = split_ref(ref)
    if name is not None:  # checked before anything is made
        check_token(name, "session name")
        link = app.store.session_dir / f"{name}.json"
        if os.path.lexists(link) or name in app.store.ids():
            raise UsageError(f"{name!r} is already a name or an id; choose another --name")
    parent = app.store.load_ref(target)
    made = fork_session(app.store, parent, count, app.store.checkpoints)
    link = app.store.name(str(made.session.path), name) if name else None
    if as_json:
        echo_json(
            {
                "id": made.session.id,
                "path": str(made.session.path),
                "parentSession": parent.id,
                "forkedAt": made.count,
                "name": name,
                "checkpointsLinked": made.linked,
            }
        )
        return
    click.echo(describe(made))
    click.echo(f"  File:     {made.session.path}")
    if link is not None:
        click.echo(f"  Name:     {name}")
    click.echo(f"  Continue: taurus chat -s {name or made.session.id}")


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
    from taurus_ops.store.checkpoints import ABSENT, changes

    session = app.store.load_ref(ref)
    store = app.store.checkpoints
    blobs = {b.sha: b for b in store.blobs(session.id)} if store is not None else {}
    log = changes(session.data)

    def state(sha: str) -> str:
        if sha == ABSENT:
            return "(no file)"
        blob = blobs.get(sha)
        return f"{sha[:12]} {human_size(blob.size)}" if blob else f"{sha[:12]} MISSING"

    if as_json:
        echo_json(
            {
                "id": session.id,
                "folder": str(store.folder(session.id)) if store is not None else None,
                "bytes": store.size(session.id) if store is not None else 0,
                "blobs": [
                    {"sha256": b.sha, "size": b.size, "mtime": b.mtime} for b in blobs.values()
                ],
                "changes": [
                    {
                        "message": c.message,
                        "tool": c.tool,
                        "file": c.file,
                        "realPath": c.path or None,
                        "checkpoint": c.before,
                        "written": c.after,
                        "outcome": c.outcome,
                        "timestamp": c.timestamp,
                        "rewind": c.rewind,
                        "kept": all(s == ABSENT or s in blobs for s in (c.before, c.after)),
                    }
                    for c in log
                ],
            }
        )
        return
    folder = store.folder(session.id) if store is not None else None
    size = store.size(session.id) if store is not None else 0
    click.echo(f"Checkpoints of {session.id}: {folder}")
    click.echo(f"  {len(log)} change(s), {len(blobs)} content(s) kept, {human_size(size)}")
    if not log:
        click.echo("  (no write or edit has been checkpointed in this session)")
        return
    rows = []
    for c in log:
        if c.rewind is not None:
            where = f"rewind {c.rewind + 1}"
        else:
            where = str(c.message) if c.message is not None else "?"
        rows.append([where, c.tool, c.outcome, state(c.before), state(c.after), c.file])
    click.echo(table(rows, ["MSG", "TOOL", "OUTCOME", "BEFORE", "WRITTEN", "FILE"]))
