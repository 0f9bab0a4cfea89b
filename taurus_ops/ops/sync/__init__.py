"""``taurus-ops sync``: sessions in step between this machine and a remote, both ways.

``run(ctx, SyncRequest(...))`` is the job (the command line and the scheduler call
it). Plan, then execute. ``prepare`` lists the remote once (one listing walk over the
prefix) and reads the local state (hashing only files changed since the last sync);
``plan_sync`` (plan.py, pure) decides; ``Executor`` (execute.py) carries it out, and
the dry run prints the very plan. Every write to the remote is conditional, so two
machines syncing at once never lose each other's work. The ops lock is held
throughout, like cleanup and backup.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.context import JobResult
from taurus_ops.ops.lock import ops_lock
from taurus_ops.ops.sync.execute import Executor, Moves, object_key
from taurus_ops.ops.sync.journal import (
    DONE,
    WRITING,
    can_skip_listing,
    list_journal,
    mark,
    own_unfinished,
    read_journal,
)
from taurus_ops.ops.sync.local import LocalSnapshot, take_snapshot
from taurus_ops.ops.sync.plan import BOTH, PULL, PUSH, Plan, plan_lines, plan_sync
from taurus_ops.ops.sync.state import SyncState, load_state
from taurus_ops.remote import AFTER_CHECKPOINTS, DEVICES, MARKER, SESSIONS, Connection, connect
from taurus_ops.remote.base import Conflict, ObjectInfo, RemoteError
from taurus_ops.store import format as fmt
from taurus_ops.store.format import is_valid_token
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.store import SessionStore

DEVICE_REFRESH = timedelta(hours=1)  # a sync that moved nothing rewrites its record this often

__all__ = [
    "BOTH",
    "PULL",
    "PUSH",
    "Listing",
    "Moves",
    "Prepared",
    "SyncRequest",
    "SyncResult",
    "plan_lines",
    "prepare",
    "run",
    "run_sync",
    "status",
]


@dataclass
class Listing:
    sessions: dict[str, ObjectInfo] = field(default_factory=dict)
    devices: dict[str, ObjectInfo] = field(default_factory=dict)
    marker: ObjectInfo | None = None
    foreign: int = 0  # objects under sessions/ that are not ours to read


@dataclass
class Prepared:
    conn: Connection
    state: SyncState
    local: LocalSnapshot
    listing: Listing
    plan: Plan
    journal: dict[str, ObjectInfo] = field(default_factory=dict)
    full: bool = True  # the sessions were listed (not known from the journal and the state)
    listed_at: str | None = None  # when the journal was read for that listing
    own_unfinished: bool = False  # this device's last sync stopped between writing and done


def list_remote(conn: Connection) -> Listing:
    listing = Listing()
    for item in conn.remote.list("", after=AFTER_CHECKPOINTS):  # (not the checkpoint blobs)
        if item.key == MARKER:
            listing.marker = item
        elif item.key.startswith(SESSIONS):
            name = item.key[len(SESSIONS) :]
            sid = name[:-5] if name.endswith(".json") else ""
            if sid and is_valid_token(sid):
                listing.sessions[sid] = item
            else:
                listing.foreign += 1
        elif item.key.startswith(DEVICES) and item.key.endswith(".json"):
            listing.devices[item.key[len(DEVICES) : -5]] = item
    return listing


def _check_marker(conn: Connection, state: SyncState, listing: Listing) -> None:
    """The remote's encryption agrees with this machine's key (read only when it changed)."""
    if listing.marker is None:
        conn.check_marker(None)
        return
    if state.marker is None or state.marker_etag != listing.marker.etag:
        state.marker = conn.marker()
        state.marker_etag = listing.marker.etag
        state.dirty = True
    conn.check_marker(state.marker)


def prepare(
    config: Config, store: SessionStore, direction: str = BOTH, full: bool = False
) -> Prepared:
    """Read both sides and plan. The sessions are listed unless the journal shows that no
    device wrote one since the last full listing (``full`` lists them anyway)."""
    conn = connect(config)
    try:
        state = load_state(config.home, conn.url, store.session_dir)
        listed_at = fmt.now_iso()
        journal = list_journal(conn)
        unfinished = own_unfinished(state, journal, conn.device)
        quick = not full and not unfinished and can_skip_listing(state, journal)
        if quick:
            listing = Listing(
                sessions={
                    sid: ObjectInfo(object_key(sid), record["etag"], int(record.get("size", 0)))
                    for sid, record in state.sessions.items()
                    if record.get("etag")
                }
            )
            conn.check_marker(state.marker)
        else:
            state.journal = read_journal(conn, state, journal)
            listing = list_remote(conn)
            _check_marker(conn, state, listing)
        changed_there = {
            sid for sid, item in listing.sessions.items() if state.etag(sid) != item.etag
        }
        local = take_snapshot(store, state.sessions, changed_there)
        plan = plan_sync(
            local.sessions,
            listing.sessions,
            {sid: state.digest(sid) for sid in state.sessions},
            {sid: state.etag(sid) for sid in state.sessions},
            direction,
        )
    except BaseException:
        conn.close()
        raise
    return Prepared(conn, state, local, listing, plan, journal, not quick, listed_at, unfinished)


def _in_step(prepared: Prepared, result: Moves) -> bool:
    """After a full listing: every session listed is recorded as the version listed (or one
    this sync wrote over it), so the next sync may trust the state instead of listing."""
    state = prepared.state
    written = {m.id for m in result.moved if m.action in ("uploaded", "same")}
    return all(
        state.etag(sid) == item.etag or (sid in written and state.etag(sid) is not None)
        for sid, item in prepared.listing.sessions.items()
    )


def run_sync(
    config: Config, store: SessionStore, direction: str = BOTH, log: logging.Logger | None = None
) -> tuple[Prepared, Moves]:
    """Plan and carry out one sync; the caller holds the ops lock (``run`` takes it)."""
    prepared = prepare(config, store, direction)
    conn, state = prepared.conn, prepared.state
    try:
        writes = bool(prepared.plan.of("upload-new", "upload", "conflict"))
        if writes and state.marker is None:
            state.marker = conn.ensure_marker()
            state.dirty = True
        if writes:
            mark(conn, state, prepared.journal, WRITING)  # before the first session write
        result = Executor(conn, store, state, log).run(prepared.plan)
        if result.stopped is None:
            if writes or prepared.own_unfinished:
                mark(conn, state, prepared.journal, DONE)  # after the last one
            if prepared.full:
                state.listed_at = prepared.listed_at if _in_step(prepared, result) else None
                state.dirty = True
            state.last_sync = fmt.now_iso()
            _write_device(conn, state, prepared, result)
        state.save()  # only when something changed: a sync that moved nothing writes nothing
    finally:
        conn.close()
    return prepared, result


def _write_device(conn: Connection, state: SyncState, prepared: Prepared, result: Moves) -> None:
    """Note in ``devices/<device>.json`` when this device last synced (never a session's data)."""
    moved = bool(result.moved or result.conflicts)
    written = fmt.parse_time(state.device.get("written"))
    listed = prepared.listing.devices.get(conn.device)
    fresh = written is not None and datetime.now(UTC) - written < DEVICE_REFRESH
    unchanged = listed.etag == state.device.get("etag") if listed is not None else True
    if not moved and fresh and unchanged:  # (a journal-only sync lists no device records)
        return
    record = {
        "device": conn.device,
        "lastSync": state.last_sync,
        "uploaded": result.count("uploaded"),
        "downloaded": result.count("downloaded"),
        "conflicts": len(result.conflicts),
        "sessions": len(prepared.local.sessions),
    }
    data = json.dumps(record, indent=2).encode() + b"\n"
    key = f"{DEVICES}{conn.device}.json"
    expected = listed.etag if listed is not None else state.device.get("etag")
    try:
        for _ in range(2):
            try:
                if expected is None:
                    etag = conn.remote.put_new(key, data, {})
                else:
                    etag = conn.remote.put_replace(key, data, expected, {})
                break
            except Conflict:
                found = conn.remote.get(key)
                expected = found.etag if found is not None else None
        else:
            return
    except RemoteError:
        return  # only a note for `remote status`; the next sync writes it
    state.device = {"etag": etag, "written": state.last_sync}
    state.dirty = True


# -- the job ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncRequest:
    direction: str = BOTH  # BOTH, PUSH (only upload) or PULL (only download)
    dry_run: bool = False
    wait: float = 0.0  # seconds to wait for another maintenance job to finish


@dataclass
class SyncResult(JobResult):
    """One sync: the plan (all a dry run has) and, for a real run, what moved."""

    remote: str
    device: str
    plan: Plan
    left_out: list[tuple[str, str]]  # (path, why): local files that are not sessions to sync
    dry_run: bool = False
    moves: Moves | None = None

    @classmethod
    def of(cls, prepared: Prepared, moves: Moves | None = None) -> SyncResult:
        """The result of a real run (with its ``moves``) or, without them, of a dry run."""
        return cls(
            prepared.conn.url,
            prepared.conn.device,
            prepared.plan,
            list(prepared.local.problems),
            dry_run=moves is None,
            moves=moves,
        )

    @property
    def stopped(self) -> str | None:
        """The remote error that stopped the sync part-way, if one did."""
        return self.moves.stopped if self.moves is not None else None

    @property
    def failed(self) -> list[tuple[str, str]]:
        return self.moves.failed if self.moves is not None else []

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.failed

    def summary(self) -> str:
        """What a real run did, as the command prints it and the log keeps it."""
        moves = self.moves
        assert moves is not None, "a dry run has moved nothing"
        parts = [f"uploaded {moves.count('uploaded')}", f"downloaded {moves.count('downloaded')}"]
        if moves.conflicts:
            parts.append(plural(len(moves.conflicts), "conflict") + " (both versions kept)")
        if moves.failed:
            parts.append(f"{len(moves.failed)} failed")
        if moves.checkpoints.summary():
            parts.append(moves.checkpoints.summary())
        return (
            f"Synced with {self.remote} as {self.device}: {', '.join(parts)}; "
            f"{self.plan.unchanged} already in step."
        )

    def dry_summary(self) -> str:
        plan = self.plan
        up = len(plan.of("upload-new", "upload"))
        down = len(plan.of("download-new", "download"))
        conflicts = len(plan.of("conflict"))
        return (
            f"Would upload {up} and download {down} "
            f"({plan.unchanged} in step, {plural(conflicts, 'possible conflict')}) with "
            f"{self.remote}. Run `taurus-ops sync` to do it."
        )

    def outcome(self) -> str:
        """The scheduler's one-line outcome of a real run."""
        moves = self.moves
        assert moves is not None, "a dry run has moved nothing"
        return (
            f"uploaded {moves.count('uploaded')}, downloaded {moves.count('downloaded')}, "
            f"{len(moves.conflicts)} conflicts (both kept), {len(moves.failed)} failed; "
            f"{self.plan.unchanged} in step with {self.remote}"
        )

    def as_json(self) -> dict[str, Any]:
        out = {
            "remote": self.remote,
            "device": self.device,
            "dryRun": self.dry_run,
            **self.plan.as_json(),
            "leftOut": [{"path": p, "why": w} for p, w in self.left_out],
        }
        if self.moves is not None:
            out["results"] = self.moves.as_json()
        return out


def run(ctx: JobContext, request: SyncRequest) -> SyncResult:
    """One sync (``taurus-ops sync`` and the scheduler's job) under the ops lock: the plan,
    carried out unless ``request.dry_run``; a real run is logged. A remote error that
    stops it part-way is ``result.stopped``, not raised."""

    log = ctx.log("sync")
    with ops_lock(ctx, request.wait, log=log):
        if request.dry_run:
            prepared = prepare(ctx.config, ctx.store, request.direction)
            prepared.conn.close()
            return SyncResult.of(prepared)
        prepared, moves = run_sync(ctx.config, ctx.store, request.direction, log)
    result = SyncResult.of(prepared, moves)
    log.info("sync: %s", result.summary())
    return result


# -- remote status ----------------------------------------------------------------------------
def status(ctx: JobContext) -> dict[str, Any]:
    """What is here only, there only, changed on one side, in conflict; when devices synced.
    Changes nothing here or there (``taurus-ops remote status``)."""
    prepared = prepare(ctx.config, ctx.store, BOTH, full=True)
    conn, plan = prepared.conn, prepared.plan
    try:
        devices = []
        for name, item in sorted(prepared.listing.devices.items()):
            found = conn.remote.get(item.key)
            record: dict[str, Any] = {"device": name}
            if found is not None:
                try:
                    data = json.loads(found.data)
                    if isinstance(data, dict):
                        record.update(
                            {
                                k: data.get(k)
                                for k in (
                                    "lastSync",
                                    "uploaded",
                                    "downloaded",
                                    "conflicts",
                                    "sessions",
                                )
                            }
                        )
                except ValueError:
                    pass
            devices.append(record)
        from taurus_ops.ops.sync.checkpoints import totals

        checkpoints = totals(conn, ctx.store)
    finally:
        conn.close()

    def ids(*kinds: str) -> list[str]:
        return [a.id for a in plan.actions if a.kind in kinds]

    return {
        "remote": conn.url,
        "device": conn.device,
        "encrypted": conn.key is not None,
        "lastSyncHere": prepared.state.last_sync,
        "localOnly": ids("upload-new"),
        "remoteOnly": ids("download-new"),
        "changedHere": ids("upload"),
        "changedThere": ids("download"),
        "inConflict": ids("conflict"),
        "skipped": [s.as_json() for s in plan.skipped],
        "inStep": plan.unchanged,
        "devices": devices,
        "problems": [{"path": p, "why": w} for p, w in prepared.local.problems],
        "foreignObjects": prepared.listing.foreign,  # under sessions/ but not a session key
        "checkpoints": checkpoints,
    }
