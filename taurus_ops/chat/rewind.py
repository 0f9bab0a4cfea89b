"""File checkpoints in the chat: kept before every write and edit, and put back by /rewind.

``Checkpointer.keep`` runs just before a write or edit replaces a file: the old
content (or its absence) and the new are stored as blobs (store/checkpoints.py),
the ``toolCalls`` entry naming both is saved with outcome ``running``, and only
then is the file written. If a blob cannot be stored the tool fails and the file is
not touched. The store is kept within ``checkpoints.maxBytes``, oldest first.

``Rewinder`` restores files to their content at a message N. It never overwrites
a file whose content differs from what Taurus last wrote there (a hand edit, a bash
command, another program) unless told to, and it keeps every file's content before
overwriting it as a checkpoint too, recorded in the session's ``rewinds``, so that a
rewind can itself be undone. The record is saved before any file changes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.chat.confine import PathRefused
from taurus_ops.chat.conversation import Conversation
from taurus_ops.chat.tools import FileChange, ToolError, Tools
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.checkpoints import (
    ABSENT,
    Change,
    CheckpointMissing,
    CheckpointStore,
    FilePlan,
    digest,
    line_delta,
)
from taurus_ops.words import plural


class Checkpointer:
    """The chat's Keeper: a checkpoint of each file before write or edit changes it."""

    def __init__(
        self,
        store: CheckpointStore,
        conversation: Conversation,
        max_bytes: int,
        notice: Callable[[str], None] = lambda text: None,
        save_first: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.conversation = conversation
        # saves the session before the file is written; the save after the tool ran is the
        # durable one (a crash of the process never loses a write the kernel has taken)
        self.save_first = save_first or conversation.save
        self.max_bytes = max_bytes
        self.notice = notice
        self.total: int | None = None  # bytes the store holds, counted once per chat

    def save(self, data: bytes, durable: bool) -> str:
        sha, created = self.store.save(self.conversation.session.id, data, durable=durable)
        if created and self.total is not None:
            self.total += len(data)
        return sha

    def keep(self, change: FileChange, name: str, fields: dict[str, Any], use_id: str) -> None:
        """Keep the old content (fsynced: it exists nowhere else once the file is replaced)
        and the new one (not fsynced: the file being written holds it, durably), then save
        the tool call naming both; the caller writes the file after this returns."""
        extra: dict[str, Any] = {"realPath": os.fsdecode(change.path)}
        try:
            if change.skipped:
                extra["checkpointSkipped"] = "the file was too large to keep"
            elif change.before is None:
                extra["checkpoint"] = ABSENT
            else:
                extra["checkpoint"] = self.save(change.before, durable=True)
            extra["written"] = self.save(change.after, durable=False)
        except OSError as exc:
            raise ToolError(
                f"could not keep a checkpoint of {change.shown} ({exc.strerror or exc}); "
                "the file was not changed"
            ) from None
        self.conversation.pending_call(name, fields, use_id, fmt.clean(extra))
        self.save_first()
        self.bound({extra.get("checkpoint", ""), extra["written"]})

    def bound(self, keep: set[str]) -> None:
        """Prune the oldest checkpoints while the store holds more than ``max_bytes``."""
        if self.total is None:
            self.total = self.store.size()
        if self.total <= self.max_bytes:
            return
        report = self.store.prune(self.max_bytes, keep)
        self.total = report.remaining
        if report.removed:
            self.notice(
                f"removed the {plural(len({b.inode for b in report.removed}), 'oldest checkpoint')} "
                f"({report.freed:,} bytes) to stay within checkpoints.maxBytes"
            )


@dataclass
class FileStep:
    """One file of a rewind, ready to show and to do."""

    plan: FilePlan
    path: Path | None  # the real path (None: outside the folders the chat may touch)
    current: bytes | None  # what the file holds now (None: no file)
    target: bytes | None  # what it will hold (None: the file is removed)
    problem: str = ""  # why it cannot be done
    added: int = 0
    removed: int = 0

    @property
    def shown(self) -> str:
        return self.plan.file


@dataclass
class RewindPlan:
    count: int | None  # the message rewound to (None for an undo)
    steps: list[FileStep] = field(default_factory=list)
    bash: list[str] = field(default_factory=list)  # commands run after it (not tracked)
    undoes: int | None = None

    @property
    def doable(self) -> list[FileStep]:
        return [s for s in self.steps if not s.problem and s.plan.needed]

    @property
    def elsewhere(self) -> list[FileStep]:
        """Files changed since Taurus last wrote them."""
        return [s for s in self.doable if s.plan.changed_elsewhere]


class Rewinder:
    """Plans and applies rewinds of one session's files."""

    def __init__(self, store: CheckpointStore, tools: Tools) -> None:
        self.store = store
        self.tools = tools

    def locate(self, change: Change, cwd: str | None) -> Path:
        """The real path of a change's file, refused if the chat may not touch it."""
        raw = change.path or change.file
        if not os.path.isabs(raw) and cwd:
            raw = os.path.join(cwd, raw)
        return self.tools.confine.resolve(raw)

    def current(self, change: Change, cwd: str | None) -> str | None:
        """sha256 (or "absent") of the file now; None if it cannot be read."""
        try:
            path = self.locate(change, cwd)
            if not os.path.lexists(path):
                return ABSENT
            return digest(self.tools.confine.read_bytes(path, change.file))
        except (PathRefused, OSError):
            return None

    def steps(self, session_id: str, plans: list[FilePlan], cwd: str | None) -> list[FileStep]:
        out = []
        for plan in plans:
            step = FileStep(plan, None, None, None)
            out.append(step)
            try:
                step.path = self.locate(plan.changes[0], cwd)
                if os.path.lexists(step.path):
                    step.current = self.tools.confine.read_bytes(step.path, plan.file)
                if plan.target != ABSENT:
                    step.target = self.store.read(session_id, plan.target)
            except CheckpointMissing as exc:
                step.problem = str(exc)
            except PathRefused as exc:
                step.problem = str(exc)
            except OSError as exc:
                step.problem = f"cannot read it ({exc.strerror or exc})"
            if not step.problem:
                step.added, step.removed = line_delta(step.current, step.target)
        return out

    def apply(
        self,
        plan: RewindPlan,
        steps: list[FileStep],
        conversation: Conversation,
        blobs_from: str,
    ) -> list[str]:
        """Put back the files of ``steps``, recording it in ``conversation``'s session.

        The content each file holds now is kept as a checkpoint and the record saved
        (files ``running``) before the first file changes. Returns the lines to show."""
        session = conversation.session
        if blobs_from != session.id:
            self.store.share(blobs_from, session.id, {s.plan.target for s in steps})
        items = []
        for step in steps:
            before = (
                ABSENT if step.current is None else self.store.save(session.id, step.current)[0]
            )
            items.append(
                {
                    "file": step.plan.file,
                    "realPath": os.fsdecode(step.path) if step.path else step.plan.path,
                    "checkpoint": before,
                    "written": step.plan.target,
                    "outcome": "running",
                }
            )
        record: dict[str, Any] = {
            "to": plan.count,
            "timestamp": fmt.now_iso(),
            "after": len(session.tool_calls),
            "undoes": plan.undoes,
            "files": fmt.clean(items),
        }
        session.data.setdefault("rewinds", []).append(record)
        conversation.save()
        lines = []
        for step, item in zip(steps, record["files"], strict=True):
            try:
                self.put(step)
            except OSError as exc:
                item["outcome"] = "error"
                lines.append(f"could not restore {step.shown}: {exc.strerror or exc}")
            else:
                item["outcome"] = "ok"
                what = "removed" if step.target is None else "restored"
                lines.append(f"{what} {step.shown} (+{step.added} -{step.removed})")
        conversation.save()
        return lines

    @staticmethod
    def put(step: FileStep) -> None:
        assert step.path is not None
        if step.target is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(step.path)
            return
        try:
            mode: int | None = stat.S_IMODE(os.lstat(step.path).st_mode)
        except FileNotFoundError:
            mode = None
        step.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(step.path, step.target, mode=mode)


def bash_after(data: dict[str, Any], count: int) -> list[str]:
    """The bash commands run after message ``count`` (their effects are not tracked)."""
    from taurus_ops.store.checkpoints import tool_use_positions

    positions = tool_use_positions(data.get("messages") or [])
    out = []
    for call in data.get("toolCalls") or []:
        if not isinstance(call, dict) or call.get("tool") != "bash":
            continue
        number = positions.get(str(call.get("toolUseId")))
        if number is not None and number > count and call.get("outcome") != "refused":
            out.append(fmt.one_line(str(call.get("command", "")), 60))
    return out


def turn_lines(data: dict[str, Any], store: CheckpointStore) -> list[str]:
    """Each turn (a message the user typed) with the N that rewinds to before it and what
    the turn changed: files with +/- lines, and bash commands."""
    from taurus_ops.store.checkpoints import changes, tool_use_positions

    messages = data.get("messages") or []
    session_id = str(data.get("sessionId", ""))
    starts = [
        number
        for number, m in enumerate(messages, 1)
        if m.get("role") == "user" and isinstance(m.get("content"), str) and m["content"].strip()
    ]
    log = [c for c in changes(data) if c.message is not None]
    positions = tool_use_positions(messages)
    lines = []
    for position, start in enumerate(starts):
        end = starts[position + 1] - 1 if position + 1 < len(starts) else len(messages)
        done: dict[str, list[int]] = {}
        for change in log:
            if change.message is not None and start <= change.message <= end:
                added, removed = _delta(store, session_id, change)
                total = done.setdefault(change.file, [0, 0])
                total[0] += added
                total[1] += removed
        commands = [
            str(c.get("command", ""))
            for c in data.get("toolCalls") or []
            if isinstance(c, dict)
            and c.get("tool") == "bash"
            and start <= positions.get(str(c.get("toolUseId")), 0) <= end
        ]
        what = [f"{f} +{a} -{r}" for f, (a, r) in done.items()]
        if commands:
            what.append(f"bash ×{len(commands)}")
        text = fmt.one_line(fmt.text_of(messages[start - 1].get("content")), 50)
        lines.append(f"  {start - 1:>4}  You: {text:<50}  {', '.join(what) or '-'}")
    return lines


def _delta(store: CheckpointStore, session_id: str, change: Change) -> tuple[int, int]:
    def blob(sha: str) -> bytes | None:
        return None if sha == ABSENT else store.read(session_id, sha)

    try:
        return line_delta(blob(change.before), blob(change.after))
    except CheckpointMissing:
        return 0, 0
