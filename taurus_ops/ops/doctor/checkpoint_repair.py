"""The doctor's repair of the file checkpoints (plan kind ``checkpoint``).

The scan (``checkpoints.check_checkpoints``) finds the problems; this module turns each
one it can repair into an action and carries it out. Temporary files, damaged blobs and
stray files go to the quarantine (bytes fsynced and a manifest line first), stray links
are recorded there and removed; a damaged blob whose content another folder holds intact
gets that copy in its place, and a temporary file that holds the whole checkpoint it was
being saved as is put in place too. Each repair takes the file aside by rename and
checks it still holds the bytes the scan saw, so a checkpoint a chat wrote meanwhile is
put back, never lost.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.ops.doctor.checkpoints import (
    DAMAGED,
    STRAY,
    TEMP,
    UNLINKED,
    BlobProblem,
    _temp_target,
)
from taurus_ops.store.atomic import create_exclusive, fsync_dir, publish
from taurus_ops.store.atomic import temp_name as aside_name
from taurus_ops.store.checkpoints import CheckpointMissing, CheckpointStore, digest
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.doctor.checks import Scan
    from taurus_ops.ops.doctor.plan import Action, Plan
    from taurus_ops.ops.doctor.repair import Quarantine


# -- the plan ---------------------------------------------------------------------------------
def plan_checkpoints(scan: Scan, plan: Plan) -> None:
    """One ``checkpoint`` action for each problem of the store the doctor can repair."""
    from taurus_ops.ops.doctor.plan import CHECKPOINT, Action

    for problem in scan.problems:
        if not isinstance(problem, BlobProblem) or problem.status != "found" or not problem.fix:
            continue
        if problem.busy:
            problem.status = "skipped"
            problem.outcome = "its session is open in a chat; close it and run the doctor again"
            plan.skipped.append(problem)
            continue
        plan.add(
            Action(CHECKPOINT, Path(problem.path), [problem], problem.fix, expect=problem.digest)
        )


# -- the repair -------------------------------------------------------------------------------
def apply_checkpoint(action: Action, scan: Scan, quarantine: Quarantine) -> str:
    """Carry out one ``checkpoint`` action; returns what was done."""
    problem = action.problems[0]
    assert isinstance(problem, BlobProblem)
    store = CheckpointStore.for_home(scan.home)
    path = Path(problem.path)
    if problem.code == UNLINKED:
        return _link_back(store, problem)
    if problem.code == STRAY and problem.digest is None:
        if not path.is_symlink():
            raise _changed(f"{path} is no longer a link")
        kept = quarantine.keep_link(path, os.readlink(path), "a link in the checkpoint store")
        path.unlink()
        return f"removed (recorded in {kept})"
    reason = {
        DAMAGED: "a checkpoint whose bytes do not match its name",
        TEMP: "a temporary file left by an interrupted checkpoint save",
        STRAY: "not a checkpoint (found in the checkpoint store)",
    }[problem.code]
    aside, raw = _take(path, problem.digest)
    kept = quarantine.keep_bytes(path, raw, reason)
    note = ""
    if problem.code == DAMAGED:
        note = _drop_links(problem, path, aside)
    elif problem.code == TEMP:
        target = _temp_target(path)
        if target is not None and digest(raw) == target.name and create_exclusive(target, raw):
            note = f"; it held the whole checkpoint {target.name[:12]}, now in place"
    os.unlink(aside)
    fsync_dir(path.parent)
    if problem.code == DAMAGED and problem.source is not None:
        note += _put_intact(problem)
    return f"moved to {kept}{note}"


def _changed(text: str) -> Exception:
    from taurus_ops.ops.doctor.repair import Changed

    return Changed(text)


def _take(path: Path, expect: str | None) -> tuple[Path, bytes]:
    """Rename ``path`` aside (so nothing new is written under its name meanwhile) and read it.

    If it no longer holds the bytes the scan saw it goes back under its name (or, when a
    new file took the name, stays aside as a temporary file the next run looks at)."""
    aside = aside_name(path)
    os.rename(path, aside)
    raw = aside.read_bytes()
    if expect is not None and digest(raw) != expect:
        with contextlib.suppress(FileExistsError):
            publish(aside, path)
        raise _changed(f"{path} changed since the scan; run the doctor again")
    return aside, raw


def _drop_links(problem: BlobProblem, path: Path, aside: Path) -> str:
    """Remove the other names of the damaged file (a fork's links to it)."""
    try:
        taken = os.lstat(aside)
    except OSError:
        return ""
    dropped = []
    for link in problem.links:
        if link == path:
            continue
        with contextlib.suppress(OSError):
            st = os.lstat(link)
            if (st.st_dev, st.st_ino) == (taken.st_dev, taken.st_ino):
                os.unlink(link)
                fsync_dir(link.parent)
                dropped.append(link)
    if not dropped:
        return ""
    return " (with its " + plural(len(dropped), "link") + " in " + _folders(dropped) + ")"


def _folders(paths: Iterable[Path]) -> str:
    return ", ".join(f"checkpoints/{p.parent.name}/" for p in paths)


def _put_intact(problem: BlobProblem) -> str:
    """Give each name of a damaged blob the whole copy found in another folder."""
    source = problem.source
    assert source is not None
    try:
        raw = source.read_bytes()
    except OSError:
        return ""
    if digest(raw) != source.name:
        return ""
    for link in problem.links:
        try:
            os.link(source, link)
        except FileExistsError:
            continue
        except OSError:
            create_exclusive(link, raw)
    return f"; the whole copy in checkpoints/{source.parent.name}/ is in its place"


def _link_back(store: CheckpointStore, problem: BlobProblem) -> str:
    source = problem.source
    assert source is not None
    linked = 0
    for sha in problem.shas:
        try:
            store.read(source.name, sha)  # whole, or not linked
        except CheckpointMissing:
            continue
        linked += store.share(source.name, problem.folder, [sha])
    if not linked and not all(store.has(problem.folder, s) for s in problem.shas):
        raise _changed(f"the checkpoints in {source} are gone or damaged since the scan")
    return f"linked {plural(linked, 'checkpoint')} from checkpoints/{source.name}/"
