"""From problems to a repair plan (pure: reads nothing, writes nothing).

Every action that changes or removes a file keeps its original bytes in the
quarantine first; the repair checks each file still holds the bytes the scan read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.checks import RECOVERED_FROM, Problem, Scan, SessionFile, TempFile
from taurus_ops.ops.doctor.document import (
    FileContext,
    Repaired,
    examine,
    is_interrupted_result,
    repair_document,
)
from taurus_ops.ops.doctor.salvage import Salvaged
from taurus_ops.store import format as fmt
from taurus_ops.words import plural

# kinds of action, in the order they are carried out
CHMOD = "chmod"
REMOVE_LOCK = "remove-lock"
REWRITE = "rewrite"  # quarantine the original, write the repaired document in its place
QUARANTINE = "quarantine"  # nothing to salvage (or a superseded copy): move it to the quarantine
RENAME = "new-id"  # a duplicate id: write under a new id, quarantine the original
PROMOTE = "promote-temp"  # a temporary file holding a newer whole version becomes the session
TEMP = "quarantine-temp"
LINK_REPOINT = "repoint-name"
LINK_REMOVE = "remove-name"
INDEX = "index"
CHECKPOINT = "checkpoint"  # the file checkpoints: checkpoint_repair.py plans and carries it out
ORDER = [
    CHMOD,
    REMOVE_LOCK,
    REWRITE,
    RENAME,
    QUARANTINE,
    PROMOTE,
    TEMP,
    LINK_REPOINT,
    LINK_REMOVE,
    CHECKPOINT,
    INDEX,
]


@dataclass
class Action:
    kind: str
    path: Path
    problems: list[Problem]
    summary: str
    data: bytes | None = None  # the new content (REWRITE, RENAME, PROMOTE)
    expect: str | None = None  # sha256 the file must still have
    target: Path | None = (
        None  # RENAME: the new file; PROMOTE: the session; LINK_REPOINT: new target
    )
    mode: int | None = None
    extra_files: list[tuple[Path, bytes]] = field(default_factory=list)  # new sessions to create
    link_target: str | None = None  # a name link's text, for the quarantine log

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "path": str(self.path),
            "summary": self.summary,
            "target": str(self.target) if self.target else None,
            "newFiles": [str(p) for p, _ in self.extra_files],
        }


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def ordered(self) -> list[Action]:
        return sorted(self.actions, key=lambda a: ORDER.index(a.kind))


@dataclass
class Outcome:
    """What the plan would write for one session file."""

    data: dict[str, Any] | None  # None: nothing to salvage
    summary: str
    extras: list[dict[str, Any]] = field(default_factory=list)


def _salvage_outcome(info: SessionFile) -> Outcome:
    result = info.salvage
    assert result is not None
    docs = [d for d in result.documents if isinstance(d.data, dict)]
    usable = [d for d in docs if _has_content(d)]
    if not usable:
        return Outcome(None, "nothing to salvage: move it to the quarantine")
    main, extras = _choose(usable, info.ctx.file_id)
    fixed = repair_document(main.data, info.ctx, tool_calls_lost="toolCalls" not in main.data)
    messages = [m for m in fixed.data["messages"] if not is_interrupted_result(m)]
    parts = [f"keep {plural(len(messages), 'whole message')}"]
    if main.messages_after_damage:
        parts[0] += f" ({main.messages_after_damage} found after the damage)"
    if result.fragments:
        parts.append(
            f"drop {plural(len(result.fragments), 'damaged stretch', 'damaged stretches')}"
        )
    if main.altered:
        parts.append(
            f"{plural(len(main.altered), 'message')} read around unreadable bytes "
            "(U+FFFD; marked `repaired`)"
        )
    parts += fixed.changes
    parts += [f"set aside {s}" for s in fixed.set_aside]
    extra_docs = [e.data for e in extras]
    if extra_docs:
        parts.append(
            "the other document becomes a separate session"
            if len(extra_docs) == 1
            else f"the other {len(extra_docs)} documents become separate sessions"
        )
    return Outcome(fixed.data, "; ".join(parts), extra_docs)


def _has_content(doc: Salvaged) -> bool:
    """A document worth keeping: it has whole messages, or it parsed completely."""
    messages = doc.data.get("messages")
    if isinstance(messages, list) and messages:
        return True
    return doc.complete


def _messages(doc: Salvaged) -> list[Any]:
    messages = doc.data.get("messages")
    return messages if isinstance(messages, list) else []


def _choose(docs: list[Salvaged], file_id: str) -> tuple[Salvaged, list[Salvaged]]:
    """The document to keep in the file, and those that hold something it lacks."""
    main = docs[0]
    others: list[Salvaged] = []
    for doc in docs[1:]:
        mine, theirs = _messages(main), _messages(doc)
        same_id = doc.data.get("sessionId") in (main.data.get("sessionId"), None, file_id)
        if theirs[: len(mine)] == mine and same_id:
            main = doc  # a later version of the same conversation
        elif mine[: len(theirs)] == theirs and same_id:
            continue  # an older version: nothing in it is missing from main
        else:
            others.append(doc)
    return main, others


def _file_outcome(info: SessionFile) -> Outcome:
    if info.salvage is not None:
        return _salvage_outcome(info)
    if not isinstance(info.parsed, dict):
        return Outcome(None, "not a session: move it to the quarantine")
    fixed: Repaired = repair_document(info.parsed, info.ctx)
    parts = fixed.changes + [f"set aside {s}" for s in fixed.set_aside]
    return Outcome(fixed.data, "; ".join(parts) or "rewrite it")


def _new_path(folder: Path, data: dict[str, Any], session_id: str) -> Path:
    created = fmt.parse_time(data.get("created")) or datetime.now(UTC)
    return folder / fmt.file_name(created, session_id)


def derived_id(seed: str, n: int = 0) -> str:
    """An id decided by what it names: the same ``seed`` gives the same id on every run.

    A repair interrupted after writing a split-off document must, when run again, find
    that document under the id it already has instead of writing it again under another.
    """
    number = int.from_bytes(hashlib.sha256(f"{seed}:{n}".encode()).digest()[:8], "big")
    out = []
    for _ in range(fmt.ID_LENGTH):
        number, digit = divmod(number, len(fmt.ID_ALPHABET))
        out.append(fmt.ID_ALPHABET[digit])
    return "".join(out)


def origin(source: Path, digest: str, part: int) -> dict[str, Any]:
    """The ``recoveredFrom`` field of a file the doctor writes from ``source``."""
    return {"file": source.name, "sha256": digest, "part": part}


def make_plan(scan: Scan) -> Plan:
    """Turn the scan's problems into actions; fills each problem's ``fix``.

    Pure and deterministic: the same store gives the same plan, new ids included, so a
    repair cut off at any moment and run again ends where one uninterrupted run would.
    """
    planner = _Planner(scan, taken=set(scan.ids))
    plan = planner.plan
    _plan_modes_and_locks(planner)
    _plan_files(planner)
    for file_id, paths, problem in scan.duplicates:
        _plan_duplicates(planner, file_id, paths, problem)
    _plan_copies(scan, plan, planner.skip)
    for temp, problem in scan.temps:
        _plan_temp(scan, plan, temp, problem, planner.outcomes, planner.session_actions)
    for action in planner.session_actions.values():
        plan.add(action)
    _plan_links(scan, plan)

    from taurus_ops.ops.doctor.checkpoint_repair import plan_checkpoints

    plan_checkpoints(scan, plan)
    if scan.index_problem is not None:
        plan.add(
            Action(
                INDEX, Path(scan.index_problem.path), [scan.index_problem], scan.index_problem.fix
            )
        )
    return plan


@dataclass
class _Planner:
    """The plan being made, with what its steps share: the ids taken so far, and each
    damaged file's outcome and action (a later step may take that action over)."""

    scan: Scan
    plan: Plan = field(default_factory=Plan)
    taken: set[str] = field(default_factory=set)
    outcomes: dict[Path, Outcome] = field(default_factory=dict)
    session_actions: dict[Path, Action] = field(default_factory=dict)

    def fresh_id(self, wanted: Any, seed: str) -> str:
        own = [wanted] if isinstance(wanted, str) and fmt.is_valid_token(wanted) else []
        n = 0
        for candidate in own:
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate
        while (candidate := derived_id(seed, n)) in self.taken:
            n += 1
        self.taken.add(candidate)
        return candidate

    def new_file(
        self, source: Path, digest: str, part: int, doc: dict[str, Any], wanted: Any, mtime_iso: str
    ) -> tuple[Path, bytes | None]:
        """Where and what to write for a document split off ``source`` (or renamed from it).

        None for the bytes: an earlier, interrupted run wrote it already (at that path).
        """
        written = self.scan.recovered.get((digest, part))
        if written:
            return sorted(written)[0], None
        sid = self.fresh_id(wanted, f"{digest}:{part}")
        fixed = repair_document(doc, FileContext("", sid, None, mtime_iso)).data
        fixed[RECOVERED_FROM] = origin(source, digest, part)
        return _new_path(source.parent, fixed, sid), fmt.dumps(fixed)

    def skip(self, problems: list[Problem], why: str) -> None:
        for problem in problems:
            problem.status = "skipped"
            problem.outcome = why
            problem.fix = problem.fix or "(none while it is in use)"
            self.plan.skipped.append(problem)


def _plan_modes_and_locks(planner: _Planner) -> None:
    scan = planner.scan
    for path, want, problem in scan.modes:
        if path in scan.locked:
            holder = scan.locked[path]
            planner.skip(
                [problem], f"open in {f'process {holder}' if holder else 'a running chat'}"
            )
            continue
        planner.plan.add(Action(CHMOD, path, [problem], f"chmod {want:04o}", mode=want))
    for lock, problem in scan.locks:
        planner.plan.add(Action(REMOVE_LOCK, lock, [problem], "remove the stale lock"))


def _plan_files(planner: _Planner) -> None:
    """An action for each damaged session file (not yet in the plan: later steps may
    take it over)."""
    for path, info in sorted(planner.scan.files.items()):
        if info.locked:
            by = f"process {info.locked_by}" if info.locked_by else "a running chat"
            planner.skip(info.problems, f"open in {by}; close that chat and run the doctor again")
            continue
        outcome = _file_outcome(info)
        planner.outcomes[path] = outcome
        for problem in info.problems:
            problem.fix = outcome.summary
        planner.session_actions[path] = _file_action(planner, path, info, outcome)


def _file_action(planner: _Planner, path: Path, info: SessionFile, outcome: Outcome) -> Action:
    if outcome.data is None:
        return Action(QUARANTINE, path, info.problems, outcome.summary, expect=info.digest)
    extras = []
    for part, doc in enumerate(outcome.extras, 1):
        new_path, data = planner.new_file(
            path, info.digest, part, doc, doc.get("sessionId"), info.ctx.mtime_iso
        )
        if data is not None:
            extras.append((new_path, data))
    return Action(
        REWRITE,
        path,
        info.problems,
        outcome.summary,
        data=fmt.dumps(outcome.data),
        expect=info.digest,
        extra_files=extras,
    )


def _plan_links(scan: Scan, plan: Plan) -> None:
    for link, target, replacement, problem in scan.links:
        if replacement is not None:
            plan.add(
                Action(
                    LINK_REPOINT,
                    link,
                    [problem],
                    problem.fix,
                    target=replacement,
                    link_target=target,
                )
            )
        else:
            plan.add(Action(LINK_REMOVE, link, [problem], problem.fix, link_target=target))


def _effective_messages(scan: Scan, path: Path, outcomes: dict[Path, Outcome]) -> list[Any]:
    if path in outcomes:
        data = outcomes[path].data
        return data.get("messages", []) if data else []
    messages = scan.healthy_docs.get(path, {}).get("messages")
    return messages if isinstance(messages, list) else []


def _plan_duplicates(planner: _Planner, file_id: str, paths: list[Path], problem: Problem) -> None:
    """Files that share an id: the most complete keeps it; each other one is quarantined
    (a copy the kept one contains) or gets a new id (a different conversation)."""
    scan, outcomes = planner.scan, planner.outcomes
    if any(p in scan.locked for p in paths) or any(
        p in scan.files and scan.files[p].locked for p in paths
    ):
        problem.status = "skipped"
        problem.outcome = "one of the copies is open in a chat; close it and run the doctor again"
        planner.plan.skipped.append(problem)
        return
    usable = [p for p in paths if p in scan.healthy_docs or (p in outcomes and outcomes[p].data)]
    if len(usable) < 2:
        problem.fix = "resolved by repairing the damaged copy"
        for p in paths:
            if p in planner.session_actions:
                planner.session_actions[p].problems.append(problem)
                return
        return
    ordered = sorted(usable, key=lambda p: _rank(scan, outcomes, p), reverse=True)
    keep = ordered[0]
    keep_messages = _effective_messages(scan, keep, outcomes)
    notes = [_plan_other(planner, file_id, problem, keep, keep_messages, o) for o in ordered[1:]]
    problem.fix = f"keep {keep.name}; " + "; ".join(notes)


def _rank(scan: Scan, outcomes: dict[Path, Outcome], p: Path) -> tuple[int, int, str]:
    """Which of the files sharing an id keeps it: the most messages, then the active one,
    then the latest ``updated``."""
    updated = str(scan.healthy_docs.get(p, {}).get("updated", ""))
    done = outcomes[p].data if p in outcomes else None
    if done:
        updated = str(done.get("updated", ""))
    active = 0 if scan.archive_dir is not None and p.parent == scan.archive_dir else 1
    return (len(_effective_messages(scan, p, outcomes)), active, updated)


def _plan_other(
    planner: _Planner,
    file_id: str,
    problem: Problem,
    keep: Path,
    keep_messages: list[Any],
    other: Path,
) -> str:
    """The action for one file that shares ``keep``'s id; returns the note on it."""
    scan, plan = planner.scan, planner.plan
    messages = _effective_messages(scan, other, planner.outcomes)
    digest = scan.files[other].digest if other in scan.files else scan.digests.get(other)
    earlier = planner.session_actions.pop(other, None)
    problems = [problem] + (earlier.problems if earlier else [])
    extra_files = earlier.extra_files if earlier else []
    if keep_messages[: len(messages)] == messages:
        plan.add(
            Action(
                QUARANTINE,
                other,
                problems,
                f"an older copy of {keep}: move it to the quarantine (its names follow {keep.name})",
                expect=digest,
                target=keep,
                extra_files=extra_files,
            )
        )
        return f"{other.name} is an older copy of {keep.name}: quarantine it"
    base = _renamed_document(planner, other, earlier)
    base["previousSessionId"] = file_id
    mtime_iso = scan.files[other].ctx.mtime_iso if other in scan.files else fmt.now_iso()
    new_path, data = planner.new_file(other, digest or "", 0, base, None, mtime_iso)
    if data is None:  # written by an earlier run: this copy only has to go
        plan.add(
            Action(
                QUARANTINE,
                other,
                problems,
                f"already written as {new_path.name} by an earlier run: move it to "
                f"the quarantine (its names follow {new_path.name})",
                expect=digest,
                target=new_path,
                extra_files=extra_files,
            )
        )
        return f"{other.name} was already written as {new_path.name}"
    sid = fmt.loads(data)["sessionId"]
    plan.add(
        Action(
            RENAME,
            other,
            problems,
            f"a different conversation with the same id: becomes {new_path.name}",
            data=data,
            expect=digest,
            target=new_path,
            extra_files=extra_files,
        )
    )
    return f"{other.name} holds a different conversation: new id {sid}"


def _renamed_document(planner: _Planner, other: Path, earlier: Action | None) -> dict[str, Any]:
    """The document a file that gets a new id holds: repaired, if its repair was planned."""
    if earlier is not None and earlier.data is not None:
        base: dict[str, Any] = fmt.loads(earlier.data)
        return base
    outcome = planner.outcomes.get(other)
    if outcome is not None and outcome.data is not None:
        return dict(outcome.data)
    return dict(planner.scan.healthy_docs.get(other, {}))


def _plan_copies(scan: Scan, plan: Plan, skip: Callable[[list[Problem], str], None]) -> None:
    """One conversation in several files: copies the kept one holds go to the quarantine."""
    for copies in scan.copies:
        if copies.problem.status == "manual":
            continue
        if any(p in scan.locked for p in [copies.keep, *copies.drop]):
            skip([copies.problem], "one of the copies is open in a chat; run the doctor again")
            continue
        for other in copies.drop:
            plan.add(
                Action(
                    QUARANTINE,
                    other,
                    [copies.problem],
                    f"the same conversation as {copies.keep.name}: move it to the quarantine "
                    f"(its names follow {copies.keep.name})",
                    expect=copies.digests[other],
                    target=copies.keep,
                )
            )
    for item in scan.elsewhere:
        if item.drop is None:
            continue
        if item.drop in scan.locked:
            skip([item.problem], "open in a chat; run the doctor again")
            continue
        plan.add(
            Action(
                QUARANTINE,
                item.drop,
                [item.problem],
                item.problem.fix,
                expect=item.digest,
                target=item.keep,
            )
        )


def _plan_temp(
    scan: Scan,
    plan: Plan,
    temp: TempFile,
    problem: Problem,
    outcomes: dict[Path, Outcome],
    session_actions: dict[Path, Action],
) -> None:
    if temp.is_link:
        plan.add(
            Action(LINK_REMOVE, temp.path, [problem], problem.fix, link_target=_readlink(temp.path))
        )
        return
    if temp.document is not None and temp.newer:
        ctx = FileContext.of(temp.target.name, 0)
        ctx.mtime_iso = str(temp.document.get("updated") or fmt.now_iso())
        data = temp.document
        if examine(data, ctx):
            data = repair_document(data, ctx).data
        superseded = session_actions.pop(temp.target, None)
        problems = [problem] + (superseded.problems if superseded else [])
        target_info = scan.files.get(temp.target)
        plan.add(
            Action(
                PROMOTE,
                temp.path,
                problems,
                problem.fix,
                data=fmt.dumps(data),
                expect=temp.digest,
                target=temp.target,
            )
        )
        if target_info is not None:
            for p in target_info.problems:
                p.fix = "replaced by the newer whole version in " + temp.path.name
        return
    plan.add(Action(TEMP, temp.path, [problem], problem.fix, expect=temp.digest))


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None
