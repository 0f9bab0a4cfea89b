"""Moving sessions into the archive and back, and deleting them, safely.

``note_checkpoints`` adds to a cleanup plan the checkpoint folder each delete takes
and the bytes that frees (the dry run shows it; ``execute`` removes them).

``execute`` carries out a cleanup plan (``taurus_ops.ops.cleanup``); ``run`` is the
``archive`` and ``unarchive`` commands. Either way each session is locked while it
moves, so a chat never has one open half-way, and its names are re-pointed.

A session's file checkpoints (``~/.taurus/checkpoints/<session-id>/``) are keyed by
its id, not by where its file lives: archiving or unarchiving leaves them in place, so
``/rewind`` and ``taurus-ops checkpoints`` work on an archived session and after it
comes back. A delete takes the folder the plan names, after the session file is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.errors import SessionLocked, TaurusError, UsageError
from taurus_ops.ops.cleanup import (
    ARCHIVE,
    DELETE,
    Action,
    CleanupResult,
    Outcome,
    Plan,
    Snapshot,
    check_layout,
)
from taurus_ops.ops.context import JobResult
from taurus_ops.ops.lock import ops_lock
from taurus_ops.store.atomic import fsync_dir, point_link
from taurus_ops.store.lock import SessionLock
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.checkpoints import Blob, CheckpointStore
    from taurus_ops.store.store import SessionStore


# -- the checkpoints a delete takes ------------------------------------------------------------
def note_checkpoints(
    plan: Plan, snapshot: Snapshot, checkpoints: CheckpointStore | None, session_dir: Path
) -> None:
    """Mark each delete whose checkpoint folder goes with it, and the bytes that frees.

    A folder goes with the last delete of its id when no other session file (active,
    archived, or in a folder of the session directory) carries that id. A blob is freed
    when every link to it is in a folder that goes; it counts for the last of those
    deletes (the one whose removal frees it, as the run measures it)."""
    deletes = [a for a in plan.actions if a.action == DELETE]
    if not deletes or checkpoints is None:
        return
    gone = {a.path for a in deletes}
    staying = {e.id for e in snapshot.active + snapshot.archived if e.path not in gone}
    staying |= ids_in_subfolders(session_dir)
    last: dict[str, Action] = {}
    for action in deletes:
        if action.id not in staying:
            last[action.id] = action
    going: list[tuple[Action, list[Blob]]] = []
    for action in deletes:  # in the order the run removes them
        if last.get(action.id) is not action:
            continue
        folder = checkpoints.folder(action.id)
        if folder.is_dir():
            action.checkpoint_folder = str(folder)
            going.append((action, checkpoints.blobs(action.id)))
    links_going: dict[tuple[int, int], int] = {}
    owner: dict[tuple[int, int], Action] = {}
    for action, found in going:
        for blob in found:
            links_going[blob.inode] = links_going.get(blob.inode, 0) + 1
            owner[blob.inode] = action
    for action, found in going:
        seen: set[tuple[int, int]] = set()
        for blob in found:
            if blob.inode in seen:
                continue
            seen.add(blob.inode)
            if links_going[blob.inode] < blob.links:
                action.checkpoint_shared += blob.size
            elif owner[blob.inode] is action:
                action.checkpoint_bytes += blob.size


def ids_in_subfolders(session_dir: Path) -> set[str]:
    """The ids of the session files in the folders of the session directory (a project's)."""
    from taurus_ops.store.refs import id_from_file_name, scan

    out: set[str] = set()
    try:
        with os.scandir(session_dir) as it:
            folders = [
                e.path for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return out
    for folder in folders:
        out.update(id_from_file_name(p.name) for p in scan(Path(folder)))
    return out


# -- a cleanup's plan --------------------------------------------------------------------------
def _unchanged(action: Action) -> str | None:
    try:
        st = os.lstat(action.path)
    except FileNotFoundError:
        return "gone since the plan was made"
    if st.st_size != action.size or st.st_mtime != action.mtime:
        return "changed since the plan was made; left for the next run"
    return None


CHUNK = 256  # sessions moved per pair of directory fsyncs


def execute(plan: Plan, store: SessionStore, log: logging.Logger | None = None) -> CleanupResult:
    """Carry out ``plan``.

    Each session is locked while it moves, so a chat cannot open it half-way; one
    that was opened, changed or removed since planning is left alone. Moves go in
    chunks through ``store.move.move_files`` (hard-link each file into the archive,
    fsync once, remove the originals, fsync once; across file systems copy, fsync,
    verify, remove); their names are re-pointed. A crash in between leaves a file in
    both places (the same inode), which the next run finishes. Once the deletes are
    done, the checkpoint folders the plan names for them are removed (a crash before
    that leaves a folder with no session, which the doctor reports).
    """
    result = CleanupResult(plan)
    links = {real: [store.session_dir / f"{n}.json" for n in names]
             for real, names in store.names().items()}  # fmt: skip
    moved: dict[str, Path] = {}
    deleted: set[str] = set()
    for start in range(0, len(plan.actions), CHUNK):
        _run_chunk(plan.actions[start : start + CHUNK], store, links, result, moved, deleted)
    _sweep_names(Path(store.session_dir), moved, deleted)
    _remove_checkpoints(result, store)
    if log is not None:
        for outcome in result.outcomes:
            _log_outcome(log, outcome)
    return result


def _log_outcome(log: logging.Logger, outcome: Outcome) -> None:
    action = outcome.action
    verb = {ARCHIVE: "archived", DELETE: "deleted"}[action.action]
    if not outcome.done:
        log.warning("cleanup: left %s: %s", action.path, outcome.detail)
        return
    log.info("cleanup: %s %s (%s): %s", verb, action.path, plural(action.size, "byte"),
             "; ".join(action.reasons))  # fmt: skip
    if outcome.checkpoints_removed:
        log.info("cleanup: removed the checkpoints of %s (%s, %s freed)", action.id,
                 action.checkpoint_folder, plural(outcome.checkpoint_bytes, "byte"))  # fmt: skip
    elif outcome.checkpoints_kept:
        log.warning("cleanup: kept the checkpoints of %s in %s: %s", action.id,
                    action.checkpoint_folder, outcome.checkpoints_kept)  # fmt: skip


def _remove_checkpoints(result: CleanupResult, store: SessionStore) -> None:
    """Remove the checkpoint folder of each session deleted, as the plan says. A folder
    whose id a session file carries again (one that appeared since planning) stays; a
    blob a fork or parent also links stays for it (only this folder's link goes)."""
    going = [o for o in result.outcomes if o.done and o.action.checkpoint_folder]
    checkpoints = store.checkpoints
    if not going or checkpoints is None:
        return
    held = store.ids() | ids_in_subfolders(Path(store.session_dir))
    for outcome in going:
        action = outcome.action
        folder = checkpoints.folder(action.id)
        if action.id in held:
            outcome.checkpoints_kept = "another session file has its id"
            continue
        if str(folder) != action.checkpoint_folder:  # pragma: no cover - planned from the id
            continue
        outcome.checkpoint_bytes = checkpoints.remove_session(action.id)
        outcome.checkpoints_removed = not os.path.lexists(folder)
        if not outcome.checkpoints_removed:
            outcome.checkpoints_kept = "some could not be removed"


def _run_chunk(
    actions: list[Action],
    store: SessionStore,
    links: dict[str, list[Path]],
    result: CleanupResult,
    moved: dict[str, Path],
    deleted: set[str],
) -> None:
    from taurus_ops.store.move import move_files

    held: list[tuple[Action, SessionLock]] = []
    done: dict[int, Outcome] = {}
    try:
        for action in actions:
            problem = _unchanged(action)
            lock = SessionLock(Path(action.path))
            if problem is None:
                try:
                    lock.acquire()
                except SessionLocked:
                    problem = "open in a running chat (locked)"
                except OSError as exc:  # a lock file another user owns, say
                    problem = f"cannot take its lock: {exc.strerror or exc}"
                else:
                    problem = _unchanged(action)
                    if problem is None:
                        held.append((action, lock))
                        continue
                    lock.release()
            done[id(action)] = Outcome(action, False, problem)
        to_archive = [a for a, _ in held if a.action == ARCHIVE]
        touched_dirs: set[Path] = set()
        if to_archive:
            if store.archive_dir is None:  # a store made by hand: the settings always name one
                raise UsageError("no archive directory is configured (sessions.archiveDirectory)")
            reals = [os.path.realpath(a.path) for a in to_archive]
            outcomes = move_files([Path(a.path) for a in to_archive], store.archive_dir)
            for action, real, moved_file in zip(to_archive, reals, outcomes, strict=True):
                if moved_file.dest is None:
                    done[id(action)] = Outcome(action, False, moved_file.error or "not moved")
                    continue
                for link in links.get(real, []):
                    point_link(link, moved_file.dest, durable=False)
                    touched_dirs.add(link.parent)
                moved[action.path] = moved_file.dest
                done[id(action)] = Outcome(action, True, str(moved_file.dest))
        for action in (a for a, _ in held if a.action == DELETE):
            src = Path(action.path)
            real = os.path.realpath(src)
            try:
                os.unlink(src)
            except OSError as exc:
                done[id(action)] = Outcome(action, False, exc.strerror or str(exc))
                continue
            touched_dirs.add(src.parent)
            gone = []
            for link in links.get(real, []):
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                    gone.append(link.name)
                    touched_dirs.add(link.parent)
            deleted.add(action.path)
            detail = "deleted" + (f" (and its names {', '.join(gone)})" if gone else "")
            done[id(action)] = Outcome(action, True, detail)
        for folder in touched_dirs:
            fsync_dir(folder)
    finally:
        for _, lock in held:
            lock.release()
    result.outcomes.extend(done[id(a)] for a in actions if id(a) in done)


def _sweep_names(session_dir: Path, moved: dict[str, Path], deleted: set[str]) -> None:
    """Names made while cleanup ran that still lead to a moved or deleted file."""
    if not moved and not deleted:
        return
    try:
        entries = list(os.scandir(session_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.is_symlink():
            continue
        link = Path(entry.path)
        target = os.path.normpath(os.path.join(session_dir, os.readlink(link)))
        if target in moved and not link.exists():
            point_link(link, moved[target])
        elif target in deleted and not link.exists():
            with contextlib.suppress(FileNotFoundError):
                link.unlink()


# -- archive and unarchive by hand ---------------------------------------------------------
def archive_session(store: SessionStore, ref: str) -> tuple[Path, Path]:
    """Move the session ``ref`` into the archive (locked while it moves); (old, new) paths."""
    found = store.resolve(ref, include_archive=True)
    if found.archived:
        raise UsageError(f"{ref!r} is already archived: {found.path}")
    with SessionLock(found.path):
        new = store.archive(found.path)
    return found.path, new


def unarchive_session(store: SessionStore, ref: str) -> tuple[Path, Path]:
    """Move the archived session ``ref`` back into the session directory; (old, new) paths."""
    found = store.resolve(ref, include_archive=True)
    if not found.archived:
        raise UsageError(f"{ref!r} is not archived: {found.path}")
    with SessionLock(found.path):
        new = store.unarchive(found.path)
    return found.path, new


@dataclass(frozen=True)
class ArchiveRequest:
    refs: tuple[str, ...]
    unarchive: bool = False  # back from the archive into the session directory


@dataclass
class Moved:
    ref: str
    old: Path
    new: Path


@dataclass
class NotMoved:
    ref: str
    error: TaurusError | OSError


@dataclass
class ArchiveResult(JobResult):
    unarchive: bool
    items: list[Moved | NotMoved] = field(default_factory=list)  # in the order asked

    @property
    def moved(self) -> list[Moved]:
        return [m for m in self.items if isinstance(m, Moved)]

    @property
    def failed(self) -> list[NotMoved]:
        return [m for m in self.items if isinstance(m, NotMoved)]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, object]:
        return {
            "unarchive": self.unarchive,
            "moved": [{"ref": m.ref, "from": str(m.old), "to": str(m.new)} for m in self.moved],
            "failed": [{"ref": m.ref, "why": str(m.error)} for m in self.failed],
        }


def run(ctx: JobContext, request: ArchiveRequest) -> ArchiveResult:
    """Move each session asked for, under the ops lock; one that cannot be moved is noted
    and the rest still go. Each move is logged."""

    if not request.unarchive:
        check_layout(ctx.config)
    verb = "unarchive" if request.unarchive else "archive"
    move = unarchive_session if request.unarchive else archive_session
    log = ctx.log("cleanup")
    result = ArchiveResult(request.unarchive)
    with ops_lock(ctx):
        for ref in request.refs:
            try:
                old, new = move(ctx.store, ref)
            except (TaurusError, OSError) as exc:
                result.items.append(NotMoved(ref, exc))
                continue
            log.info("%s: %s -> %s", verb, old, new)
            result.items.append(Moved(ref, old, new))
    return result
