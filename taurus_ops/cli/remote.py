"""``sync``, ``share`` and ``remote init|status``: sessions beyond this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from taurus_ops.cli.common import AppContext, echo_json, example, local_time, pass_app, wait_option

if TYPE_CHECKING:
    from taurus_ops.ops.sync import SyncResult


@click.command("sync")
@click.option("--push", "push", is_flag=True, help="Only upload what changed here.")
@click.option("--pull", "pull", is_flag=True, help="Only download what changed on the remote.")
@click.option("--dry-run", "-n", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (and results) as JSON.")
@wait_option
@example(
    "taurus-ops sync --dry-run\n"
    "taurus-ops sync\n"
    "taurus-ops sync --push\n"
    "taurus-ops sync --pull --json | jq '.results.downloaded'"
)
@pass_app
def sync_cmd(
    app: AppContext, push: bool, pull: bool, dry_run: bool, as_json: bool, wait: float
) -> None:
    """Bring sessions, their names and the archive in step with the remote (remote.url).

    Both ways by default: what changed here is uploaded, what changed on the remote
    is downloaded, each session as its own object. When a session changed on both
    sides, both are kept: this machine's stays, the other arrives as a new session
    (its title names the device). A session open in a chat is never replaced. The file
    checkpoints a session names (for /rewind) go with it, each content once; one that is
    missing or damaged on the remote is a warning, not a failed sync.
    """
    from taurus_ops.errors import UsageError
    from taurus_ops.ops import sync

    if push and pull:
        raise UsageError("--push and --pull together are a plain `taurus-ops sync`")
    direction = sync.PUSH if push else sync.PULL if pull else sync.BOTH
    result = sync.run(app.job, sync.SyncRequest(direction, dry_run, wait))
    for path, why in result.left_out:
        click.echo(f"left out {path}: {why}", err=True)
    if as_json:
        echo_json(result.as_json())
    elif result.moves is None:
        for line in sync.plan_lines(result.plan):
            click.echo(line)
        click.echo(result.dry_summary())
    else:
        _print_moves(result)
    if result.stopped:
        click.echo(f"Error: {result.stopped}", err=True)
    if not result.ok:
        raise SystemExit(1)


def _print_moves(result: SyncResult) -> None:
    moves = result.moves
    assert moves is not None
    for conflict in moves.conflicts:
        click.echo(
            f"conflict: {conflict.id} changed here and on {conflict.device}: yours stays "
            f"as {conflict.id}; theirs is now session {conflict.copy_id} ({conflict.copy_file})"
        )
    for sid, why in [*((s.id, s.why) for s in result.plan.skipped), *moves.skipped]:
        click.echo(f"skipped {sid}: {why}", err=True)
    for sid, why in moves.failed:
        click.echo(f"failed {sid}: {why}", err=True)
    for line in moves.warnings:
        click.echo(f"warning: {line}", err=True)
    if moves.stopped and moves.moved:
        click.echo(f"Stopped by an error; before it: {result.summary()}")
    elif not moves.stopped:
        click.echo(result.summary())


@click.command("share")
@click.argument("ref")
@click.option("--redact", is_flag=True, help="Mask API keys, tokens and passwords first.")
@example("taurus-ops share abc123\ntaurus-ops share password-reset --redact")
@pass_app
def share_cmd(app: AppContext, ref: str, redact: bool) -> None:
    """Put session REF in the team area of the remote (PREFIX/shared/) and print its id.

    A teammate with the same remote runs `taurus chat --session ID` (or `taurus-ops
    show ID`): the session is downloaded to their machine and resumes there.
    """
    from taurus_ops.ops import share

    shared = share.run(app.job, share.ShareRequest(ref, redact))
    if shared.redaction is not None:
        click.echo(f"Redaction: {shared.redaction.summary()}", err=True)
    state = "already shared, unchanged" if shared.unchanged else "shared"
    click.echo(f"{shared.id}: {state} at {shared.url}", err=True)
    click.echo(f"A teammate runs: taurus chat --session {shared.id}", err=True)
    click.echo(shared.id)


@click.group("remote")
def remote_group() -> None:
    """Set up the remote (remote.url) and see how this machine stands with it.

    \b
    Examples:
      taurus-ops remote init
      taurus-ops remote init --encrypt
      taurus-ops remote status
    """


@remote_group.command("init")
@click.option(
    "--encrypt", is_flag=True, help="Make a key and encrypt every object on this machine."
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the key (default: remote.encryptionKeyFile or ~/.taurus/remote.key).",
)
@example("taurus-ops remote init\ntaurus-ops remote init --encrypt")
@pass_app
def init_cmd(app: AppContext, encrypt: bool, key_file: Path | None) -> None:
    """Check the remote can be used and mark it as a Taurus remote (encrypted or not).

    --encrypt writes a new random key (0600) for AES-256-GCM: sessions are encrypted
    here, so the storage provider sees no transcript. Copy the key file to your other
    machines and point remote.encryptionKeyFile at it there.
    """
    from taurus_ops.ops.sync import remote_init

    result = remote_init.run(app.job, remote_init.InitRequest(encrypt, key_file))
    for line in result.lines:
        click.echo(line)


@remote_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@example("taurus-ops remote status\ntaurus-ops remote status --json | jq '.inConflict'")
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """What is here only, on the remote only, changed on either side or in conflict, and when
    each device last synced. Changes nothing."""
    from taurus_ops.ops.sync import status

    info = status(app.job)
    if as_json:
        echo_json(info)
        return
    click.echo(
        f"Remote {info['remote']} ({'encrypted' if info['encrypted'] else 'not encrypted'}); "
        f"this device: {info['device']}, last synced "
        + (local_time(info["lastSyncHere"]) if info["lastSyncHere"] else "never")
    )
    for label, key in (
        ("here only", "localOnly"),
        ("remote only", "remoteOnly"),
        ("changed here", "changedHere"),
        ("changed on the remote", "changedThere"),
        ("in conflict", "inConflict"),
    ):
        ids = info[key]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        click.echo(f"  {label + ':':<23}{len(ids):>6}" + (f"  {shown}" if ids else ""))
    click.echo(f"  {'in step:':<23}{info['inStep']:>6}")
    from taurus_ops.ops.sync.checkpoints import describe_totals

    click.echo(f"  {describe_totals(info['checkpoints'])}")
    for skip in info["skipped"]:
        click.echo(f"  skipped {skip['id']}: {skip['why']}")
    if info["devices"]:
        click.echo("Devices:")
        for device in info["devices"]:
            when = local_time(device["lastSync"]) if device.get("lastSync") else "?"
            click.echo(f"  {device['device']:<24} last synced {when}")
