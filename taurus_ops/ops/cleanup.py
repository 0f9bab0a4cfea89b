"""Retention: which sessions to archive or delete, and doing it safely.

``run(ctx, CleanupRequest(...))`` is the job (the command line and the scheduler
both call it). ``take_snapshot`` reads the state (sessions, their ``updated`` times,
locks, names, the archive); ``plan_cleanup`` is a pure function from rules, snapshot
and time to a ``Plan`` of actions, each with its reasons; ``ops.archive.execute``
carries a plan out. The dry run shows the very plan the real run executes.

Promises (tested with hypothesis): the newest session, a session open in a chat,
a named session (unless ``sessions.cleanupNamed``) and a file that cannot be parsed
are never touched; after a run no unprotected session older than
``sessions.retentionDays`` is left, and no unprotected session beyond the newest
``sessions.maxSessions``. The quarantine (``~/.taurus/quarantine``) is never read.

File checkpoints (``~/.taurus/checkpoints/<session-id>/``, what ``/rewind`` restores)
follow the session. A session deleted (by ``autoArchive: false`` or by
``archive.retentionDays``) takes its checkpoint folder with it, unless another
session file still carries its id; a blob a fork or parent also links stays for it
(the folder's removal only drops this session's links). ``archive.note_checkpoints``
puts this in the plan, with the bytes it frees, so the dry run shows it; the folder goes
only after the session file is gone, never for a delete that failed or was skipped.
An archived session keeps its folder where it is (folders are keyed by session id,
not by where the file lives), so ``unarchive`` and ``/rewind`` work as before. The
folder is named by the id in the file name, which the doctor keeps equal to the
document's ``sessionId``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import TaurusError, UsageError
from taurus_ops.ops.context import JobResult
from taurus_ops.ops.lock import ops_lock
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.refs import id_from_file_name, inside
from taurus_ops.words import human_size, plural

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.store import SessionStore

ARCHIVE = "archive"
DELETE = "delete"
STATE_FILE = "cleanup-state.json"


# -- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    retention_days: int | None = None
    max_sessions: int | None = None
    auto_archive: bool = True
    cleanup_named: bool = False
    archive_retention_days: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        s = config.settings
        return cls(
            retention_days=s.sessions.retention_days,
            max_sessions=s.sessions.max_sessions,
            auto_archive=s.sessions.auto_archive,
            cleanup_named=s.sessions.cleanup_named,
            archive_retention_days=s.archive.retention_days,
        )

    @property
    def active(self) -> bool:
        return any(
            v is not None
            for v in (self.retention_days, self.max_sessions, self.archive_retention_days)
        )

    def describe(self) -> list[str]:
        out = []
        if self.retention_days is not None:
            out.append(f"sessions.retentionDays={self.retention_days}")
        if self.max_sessions is not None:
            out.append(f"sessions.maxSessions={self.max_sessions}")
        if self.archive_retention_days is not None:
            out.append(f"archive.retentionDays={self.archive_retention_days}")
        return out


@dataclass(frozen=True)
class Entry:
    """One session file as the planner sees it."""

    path: str
    id: str
    updated: datetime | None  # None: the file cannot be parsed as a session
    mtime: float
    size: int
    archived: bool = False
    locked: bool = False
    names: tuple[str, ...] = ()
    error: str | None = None
    identity: tuple[int, int] = (0, 0)  # (st_dev, st_ino): spots an interrupted move


@dataclass(frozen=True)
class Snapshot:
    active: tuple[Entry, ...]
    archived: tuple[Entry, ...] = ()


# -- the plan ----------------------------------------------------------------------------
@dataclass
class Action:
    action: str  # archive | delete
    path: str
    id: str
    size: int
    archived: bool
    reasons: list[str]
    names: list[str] = field(default_factory=list)
    mtime: float = 0.0
    # a delete: the checkpoint folder that goes with the session ("" none), the bytes its
    # removal frees, and the bytes of its blobs another session also links (they stay)
    checkpoint_folder: str = ""
    checkpoint_bytes: int = 0
    checkpoint_shared: int = 0

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("checkpoint_folder", "checkpoint_bytes", "checkpoint_shared"):
            del out[key]
        if self.action == DELETE:
            out["checkpointFolder"] = self.checkpoint_folder or None
            out["checkpointBytes"] = self.checkpoint_bytes
            out["checkpointShared"] = self.checkpoint_shared
        return out

    def checkpoint_note(self) -> str:
        """``and its checkpoints (1.2M)`` for a delete whose checkpoint folder goes too."""
        if not self.checkpoint_folder:
            return ""
        sizes = []
        if self.checkpoint_bytes or not self.checkpoint_shared:
            sizes.append(human_size(self.checkpoint_bytes))
        if self.checkpoint_shared:
            sizes.append(f"{human_size(self.checkpoint_shared)} shared with a fork or parent stays")
        return f"and its checkpoints ({'; '.join(sizes)})"


@dataclass
class Skip:
    path: str
    id: str
    why: str
    would: list[str] = field(default_factory=list)  # the rules that would have removed it


@dataclass
class Plan:
    rules: Rules
    now: datetime
    actions: list[Action] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    kept: int = 0
    # the first moment a session kept now comes within an age rule (None: no age rule
    # reaches any): until then, and while the folders stay as they are, the plan holds
    next_change: datetime | None = None

    def note_kept_until(self, moment: datetime) -> None:
        if self.next_change is None or moment < self.next_change:
            self.next_change = moment

    @property
    def bytes(self) -> int:
        return sum(a.size for a in self.actions)

    @property
    def checkpoint_bytes(self) -> int:
        """Bytes of file checkpoints the deletes free (shared blobs counted once)."""
        return sum(a.checkpoint_bytes for a in self.actions)

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.action == kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "now": fmt.format_time(self.now),
            "rules": {
                "retentionDays": self.rules.retention_days,
                "maxSessions": self.rules.max_sessions,
                "autoArchive": self.rules.auto_archive,
                "cleanupNamed": self.rules.cleanup_named,
                "archiveRetentionDays": self.rules.archive_retention_days,
            },
            "actions": [a.as_json() for a in self.actions],
            "skipped": [asdict(s) for s in self.skipped],
            "kept": self.kept,
            "bytes": self.bytes,
            "checkpointBytes": self.checkpoint_bytes,
        }


def _rank_key(entry: Entry) -> tuple[datetime, float, str]:
    assert entry.updated is not None
    return (entry.updated, entry.mtime, entry.path)


def plan_cleanup(rules: Rules, snapshot: Snapshot, now: datetime) -> Plan:
    """The actions the rules call for on ``snapshot`` at ``now``. Touches nothing."""
    plan = Plan(rules, now)
    for entry in snapshot.active:
        if entry.updated is None:
            plan.skipped.append(
                Skip(
                    entry.path, entry.id, f"cannot be parsed ({entry.error}); run taurus-ops doctor"
                )
            )
    _plan_active(plan, snapshot)
    if rules.archive_retention_days:
        _plan_archived(plan, snapshot.archived, rules.archive_retention_days)
    return plan


def _plan_active(plan: Plan, snapshot: Snapshot) -> None:
    """Archive (or delete) each readable session the rules reach, newest first, unless it
    is protected or the archive already holds a file of its name."""
    rules, now = plan.rules, plan.now
    verb = ARCHIVE if rules.auto_archive else DELETE
    readable = [e for e in snapshot.active if e.updated is not None]
    ranked = sorted(readable, key=_rank_key, reverse=True)
    newest = ranked[0].path if ranked else None
    archived_names = {os.path.basename(e.path): e.identity for e in snapshot.archived}
    cutoff = now - timedelta(days=rules.retention_days) if rules.retention_days else None
    for rank, entry in enumerate(ranked, start=1):
        reasons = _reasons(entry, rank, rules, cutoff, now)
        if not reasons:
            plan.kept += 1
            if rules.retention_days:
                assert entry.updated is not None
                plan.note_kept_until(entry.updated + timedelta(days=rules.retention_days))
            continue
        why = _protection(entry, rules, newest)
        twin = archived_names.get(os.path.basename(entry.path))
        if why is None and verb == ARCHIVE and twin is not None:
            if twin == entry.identity and twin != (0, 0):
                reasons.append(
                    "the same file is already linked in the archive (a move was interrupted)"
                )
            else:
                why = "a file of the same name is already in the archive; run taurus-ops doctor"
        if why is not None:
            plan.kept += 1
            plan.skipped.append(Skip(entry.path, entry.id, why, reasons))
            continue
        plan.actions.append(
            Action(
                verb,
                entry.path,
                entry.id,
                entry.size,
                False,
                reasons,
                list(entry.names),
                entry.mtime,
            )
        )


def _reasons(
    entry: Entry, rank: int, rules: Rules, cutoff: datetime | None, now: datetime
) -> list[str]:
    """Why the rules would remove a readable active session (none: it is kept)."""
    assert entry.updated is not None
    reasons = []
    if cutoff is not None and entry.updated < cutoff:
        age = (now - entry.updated).days
        reasons.append(
            f"not updated for {plural(age, 'day')} (sessions.retentionDays={rules.retention_days})"
        )
    if rules.max_sessions is not None and rank > rules.max_sessions:
        reasons.append(
            f"number {rank} by last update, beyond sessions.maxSessions={rules.max_sessions}"
        )
    return reasons


def _plan_archived(plan: Plan, archived: tuple[Entry, ...], retention_days: int) -> None:
    """Delete the archived sessions not updated for ``retention_days``, unless protected."""
    now = plan.now
    archive_cutoff = now - timedelta(days=retention_days)
    for entry in sorted(archived, key=lambda e: e.path):
        if entry.updated is None:
            plan.skipped.append(
                Skip(
                    entry.path,
                    entry.id,
                    f"archived file cannot be parsed ({entry.error}); run taurus-ops doctor",
                )
            )
            continue
        if entry.updated >= archive_cutoff:
            plan.note_kept_until(entry.updated + timedelta(days=retention_days))
            continue
        reason = (
            f"archived and not updated for {plural((now - entry.updated).days, 'day')} "
            f"(archive.retentionDays={retention_days})"
        )
        why = _protection(entry, plan.rules, None)
        if why is not None:
            plan.skipped.append(Skip(entry.path, entry.id, why, [reason]))
            continue
        plan.actions.append(
            Action(
                DELETE,
                entry.path,
                entry.id,
                entry.size,
                True,
                [reason],
                list(entry.names),
                entry.mtime,
            )
        )


def _protection(entry: Entry, rules: Rules, newest: str | None) -> str | None:
    if entry.path == newest:
        return "the newest session is always kept"
    if entry.locked:
        return "open in a running chat (locked)"
    if entry.names and not rules.cleanup_named:
        return f"named ({', '.join(entry.names)}); set sessions.cleanupNamed to include named ones"
    return None


# -- reading the state --------------------------------------------------------------------
def read_entry(
    path: Path, archived: bool, names: dict[str, list[str]], st: os.stat_result | None = None
) -> Entry:
    """An Entry for ``path``: ``updated`` from the file, its mtime where the field is missing."""
    from taurus_ops.store.states import file_state

    state = file_state(path, st)
    return Entry(
        path=str(path),
        id=id_from_file_name(path.name),
        updated=state.updated,
        mtime=state.st.st_mtime,
        size=state.st.st_size,
        archived=archived,
        locked=state.locked,
        names=tuple(names.get(os.path.realpath(path), ())),
        error=state.error,
        identity=(state.st.st_dev, state.st.st_ino),
    )


def take_snapshot(store: Any, include_archive: bool = True) -> Snapshot:
    """Every session (and archived one) as the planner sees it: one stat pass, the
    index's rows for the files it has current, the rest read (never all parsed when an
    index is current)."""
    from taurus_ops.store.states import folder_states

    names = store.names()
    folders = [False, True] if include_archive else [False]
    entries: dict[bool, list[Entry]] = {False: [], True: []}
    for archived in folders:
        for state in folder_states(store, archived):
            real = os.path.realpath(state.path) if names else ""
            entries[archived].append(
                Entry(
                    path=state.path,
                    id=id_from_file_name(os.path.basename(state.path)),
                    updated=state.updated,
                    mtime=state.st.st_mtime,
                    size=state.st.st_size,
                    archived=archived,
                    locked=state.locked,
                    names=tuple(names.get(real, ())),
                    error=state.error,
                    identity=(state.st.st_dev, state.st.st_ino),
                )
            )
    return Snapshot(tuple(entries[False]), tuple(entries[True]))


def check_layout(config: Config) -> None:
    """Refuse an archive directory that is the session directory, inside it, or the quarantine."""
    session_dir = Path(config.session_dir)
    archive_dir = Path(config.archive_dir)
    quarantine = Path(config.home) / "quarantine"
    if inside(archive_dir, session_dir) or inside(session_dir, archive_dir):
        raise UsageError(
            f"sessions.archiveDirectory ({archive_dir}) and sessionDirectory ({session_dir}) "
            "overlap; give the archive its own folder"
        )
    if inside(archive_dir, quarantine):
        raise UsageError(
            f"sessions.archiveDirectory ({archive_dir}) is inside the quarantine; choose another"
        )


def make_plan(
    config: Config, store: SessionStore, now: datetime | None = None, checkpoints: bool = True
) -> Plan:
    """The plan a cleanup would carry out now; ``checkpoints``: with what each delete
    takes of the file checkpoints (the warning on ``list`` only counts sessions)."""
    check_layout(config)
    rules = Rules.from_config(config)
    snapshot = take_snapshot(store, include_archive=True)
    plan = plan_cleanup(rules, snapshot, now or datetime.now(UTC))
    if checkpoints:
        from taurus_ops.ops.archive import note_checkpoints  # (archive builds on the plan)

        note_checkpoints(plan, snapshot, store.checkpoints, Path(store.session_dir))
    return plan


# -- remembering what ran, for the warning -------------------------------------------------
def state_path(home: Path) -> Path:
    return Path(home) / STATE_FILE


def _rules_key(rules: Rules) -> dict[str, Any]:
    return asdict(rules)


def record_run(home: Path, result: CleanupResult) -> None:
    """Note the rules of this real run, so ``list`` stops warning about them."""
    data = {
        "lastRun": fmt.format_time(result.plan.now),
        "rules": _rules_key(result.plan.rules),
        "archived": len(result.archived),
        "deleted": len(result.deleted),
        "bytesFreed": result.bytes_freed,
        "checkpointBytesFreed": result.checkpoint_bytes_freed,
    }
    with contextlib.suppress(OSError):
        atomic_write(state_path(home), fmt.dumps(data), durable=False)


def read_state(home: Path) -> dict[str, Any] | None:
    try:
        data = fmt.loads(state_path(home).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pending_warning(config: Any, store: Any, now: datetime | None = None) -> str | None:
    """A warning line when a configured rule will remove sessions it has never removed before.

    Cheap when nothing is configured (no file is read) and after a cleanup ran with the
    same rules (one small state file is read); otherwise it plans once, and the answer
    is kept (``ops.pending``) until the folders or the rules change or a kept session
    comes of age, so the next ``list`` or ``doctor`` reads one small file. A ``now``
    other than the clock's is always planned for.
    """
    rules = Rules.from_config(config)
    if not rules.active:
        return None
    state = read_state(config.home)
    if state is not None and state.get("rules") == _rules_key(rules):
        return None
    from taurus_ops.ops import pending

    key = pending.key(store, _rules_key(rules)) if now is None else None
    if key is not None:
        found = pending.recall(config.home, key)
        if found is not None:
            return found.warning
    try:
        plan = make_plan(config, store, now, checkpoints=False)
    except TaurusError as exc:
        return f"cleanup cannot run: {exc}"
    warning = describe_pending(plan) if plan.actions else None
    if key is not None:
        pending.remember(config.home, key, warning, plan.next_change)
    return warning


def describe_pending(plan: Plan) -> str:
    parts = []
    archive_n, delete_n = plan.count(ARCHIVE), plan.count(DELETE)
    if archive_n:
        parts.append(f"archive {plural(archive_n, 'session')}")
    if delete_n:
        parts.append(f"delete {plural(delete_n, 'session')}")
    rules = ", ".join(plan.rules.describe())
    return (
        f"{rules} will {' and '.join(parts)} at the next cleanup "
        "(taurus-ops cleanup --dry-run shows them)"
    )


def plan_lines(plan: Plan, home_dir: str | None = None) -> list[str]:
    """The plan as text, one line per action, then the protected ones."""
    home_dir = home_dir or str(Path.home())
    lines = []
    for a in plan.actions:
        where = " (archived)" if a.archived else ""
        why = "; ".join([*a.reasons, a.checkpoint_note()] if a.checkpoint_folder else a.reasons)
        lines.append(f"{a.action:<7} {_short(a.path, home_dir)}{where}: {why}")
    for s in plan.skipped:
        rule = f" (would: {'; '.join(s.would)})" if s.would else ""
        lines.append(f"keep    {_short(s.path, home_dir)}: {s.why}{rule}")
    return lines


def _short(path: str, home_dir: str) -> str:
    if path.startswith(home_dir.rstrip("/") + "/"):
        return "~" + path[len(home_dir.rstrip("/")) :]
    return path


# -- the job ------------------------------------------------------------------------------
OFF_NOTE = (
    "retention is off: set sessions.retentionDays, sessions.maxSessions or "
    "archive.retentionDays in ~/.taurus/config.yaml to clean up"
)


@dataclass(frozen=True)
class CleanupRequest:
    dry_run: bool = False
    wait: float = 0.0  # seconds to wait for another maintenance job to finish
    now: datetime | None = None  # the moment the rules are measured from (default: now)


@dataclass
class Outcome:
    action: Action
    done: bool
    detail: str  # the new path, or why it was not done
    checkpoints_removed: bool = False  # a delete: its checkpoint folder went too
    checkpoint_bytes: int = 0  # the bytes that freed
    checkpoints_kept: str = ""  # a delete whose folder was to go: why (some of) it stayed


@dataclass
class CleanupResult(JobResult):
    """What a cleanup planned and did: ``outcomes`` is empty for a dry run (and when
    retention is off: ``off``, with nothing planned)."""

    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False
    off: bool = False

    @property
    def archived(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.done and o.action.action == ARCHIVE]

    @property
    def deleted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.done and o.action.action == DELETE]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.done]

    @property
    def bytes_freed(self) -> int:
        """Bytes of session files archived or deleted (from the session directory)."""
        return sum(o.action.size for o in self.outcomes if o.done)

    @property
    def checkpoint_bytes_freed(self) -> int:
        """Bytes of file checkpoints the deleted sessions took with them."""
        return sum(o.checkpoint_bytes for o in self.outcomes)

    def freed_text(self) -> str:
        """``12345 bytes`` (and ``, and 678 bytes of checkpoints`` when any went)."""
        text = plural(self.bytes_freed, "byte")
        if any(o.checkpoints_removed for o in self.outcomes):
            text += f" and {plural(self.checkpoint_bytes_freed, 'byte')} of checkpoints"
        return text

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def note(self) -> str | None:
        return OFF_NOTE if self.off else None

    def summary(self) -> str:
        """One line for the log (the scheduler's outcome)."""
        if self.off:
            return "retention is off (nothing configured), nothing to do"
        if self.dry_run:
            size = plural(self.plan.bytes, "byte")
            if any(a.checkpoint_folder for a in self.plan.actions):
                size += f" and {plural(self.plan.checkpoint_bytes, 'byte')} of checkpoints"
            return (
                f"would archive {self.plan.count(ARCHIVE)}, delete {self.plan.count(DELETE)} "
                f"({size}); {len(self.plan.skipped)} kept by protection"
            )
        return (
            f"archived {len(self.archived)}, deleted {len(self.deleted)}, "
            f"freed {self.freed_text()}, {len(self.failed)} left"
        )

    def as_json(self) -> dict[str, Any]:
        if self.off:
            return {"actions": [], "skipped": [], "note": OFF_NOTE}
        out = self.plan.as_json()
        if self.dry_run:
            return out
        out["results"] = [
            {
                "path": o.action.path,
                "action": o.action.action,
                "done": o.done,
                "detail": o.detail,
                **({"checkpointBytesFreed": o.checkpoint_bytes} if o.checkpoints_removed else {}),
                **({"checkpointsKept": o.checkpoints_kept} if o.checkpoints_kept else {}),
            }
            for o in self.outcomes
        ]
        out["archivedCount"] = len(self.archived)
        out["deletedCount"] = len(self.deleted)
        out["failedCount"] = len(self.failed)
        out["bytesFreed"] = self.bytes_freed
        out["checkpointBytesFreed"] = self.checkpoint_bytes_freed
        return out


def run(ctx: JobContext, request: CleanupRequest) -> CleanupResult:
    """One cleanup (``taurus-ops cleanup`` and the scheduler's job): the plan the rules
    call for, carried out unless ``request.dry_run``, under the ops lock; the run is
    recorded (for the warning) and logged. Nothing is read when retention is off."""
    from taurus_ops.ops.archive import execute, note_checkpoints  # (archive builds on the plan)

    rules = Rules.from_config(ctx.config)
    if not rules.active:
        off = Plan(rules, request.now or datetime.now(UTC))
        return CleanupResult(off, dry_run=request.dry_run, off=True)
    check_layout(ctx.config)
    log = ctx.log("cleanup")
    with ops_lock(ctx, request.wait, log=log):
        now = request.now or datetime.now(UTC)  # measured once the lock is held, not before
        snapshot = take_snapshot(ctx.store, include_archive=True)
        plan = plan_cleanup(rules, snapshot, now)
        note_checkpoints(plan, snapshot, ctx.store.checkpoints, Path(ctx.store.session_dir))
        if request.dry_run:
            result = CleanupResult(plan, dry_run=True)
            log.info("cleanup --dry-run: %s", result.summary())
            return result
        log.info("cleanup: start (%s)", ", ".join(rules.describe()))
        result = execute(plan, ctx.store, log)
        record_run(ctx.home, result)
        log.info(
            "cleanup: done: archived %d, deleted %d, freed %s, %d left (see above)",
            len(result.archived),
            len(result.deleted),
            result.freed_text(),
            len(result.failed),
        )
    return result
