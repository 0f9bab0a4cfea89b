"""File checkpoints: what a file held before the chat's ``write`` or ``edit`` changed it.

Layout, beside the sessions in the Taurus home::

    ~/.taurus/checkpoints/<session-id>/<sha256>      (folders 0700, files 0600)

Each blob is named by the sha256 of its bytes, so a content is stored once per
session however often it recurs. A blob is created exclusively and atomically (a
fsynced temporary file hard-linked to its name, ``atomic.create_exclusive``): a
name, once there, always holds exactly the bytes it names. A fork links the blobs
its copied tool calls name into its own folder, so every session's folder holds
everything that session needs: removing one session's folder never takes a blob a
fork or a parent still uses (the file system keeps a blob while any link remains).

In the session document, each ``write``/``edit`` entry of ``toolCalls`` carries
``"checkpoint"`` (the sha256 of the file's content before the change, or
``"absent"`` when there was no file) and ``"written"`` (the sha256 of what Taurus
wrote), both stored as blobs. The entry is saved, with outcome ``"running"``,
before the file is touched; so after a crash at any moment the session names a
checkpoint of every change that may have reached the file. A rewind adds a record
to the session's ``"rewinds"`` list::

    {"to": 12, "timestamp": "...", "after": 7, "undoes": null,
     "files": [{"file": "src/a.py", "checkpoint": "<sha>", "written": "<sha>"}]}

where ``after`` is how many ``toolCalls`` entries came before it, ``checkpoint``
what the file held before the rewind (kept, so the rewind can be undone) and
``written`` what the rewind put back.

What other jobs call: ``CheckpointStore.size()`` (stats), ``blobs(id)`` and
``referencing(sha)`` (listing and accounting), ``remove_session(id)`` (deleting a
session), ``prune(max_bytes)`` (the ``checkpoints.maxBytes`` bound, oldest first),
``verify(id)`` (the doctor), ``session_ids()`` and ``folder(id)`` (backup, sync).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from taurus_ops.errors import TaurusError
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import TMP_MARK, create_exclusive, ensure_dir

FOLDER_NAME = "checkpoints"
ABSENT = "absent"  # the file did not exist
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
FILE_TOOLS = ("write", "edit")
LARGE_DIFF = 2_000_000  # bytes; past this, +/- lines are counted without aligning the texts


class CheckpointMissing(TaurusError):
    """A checkpoint a session names is not in the store (pruned or removed) or is damaged."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_ref(value: object) -> TypeGuard[str]:
    """A checkpoint reference: a sha256 or ``"absent"``."""
    return value == ABSENT or (isinstance(value, str) and bool(SHA_RE.match(value)))


@dataclass(frozen=True)
class Blob:
    session_id: str
    sha: str
    size: int
    mtime: float
    inode: tuple[int, int]  # (device, inode): links to one blob share it
    links: int = 1  # names the file system has for it (other sessions' folders hold the rest)


@dataclass
class PruneReport:
    removed: list[Blob] = field(default_factory=list)
    freed: int = 0  # bytes given back to the file system
    remaining: int = 0  # bytes still held


class CheckpointStore:
    """The checkpoint folders under one Taurus home."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_home(cls, home: Path) -> CheckpointStore:
        return cls(Path(home) / FOLDER_NAME)

    # -- one session's folder ------------------------------------------------------------
    def folder(self, session_id: str) -> Path:
        """The session's folder: its id, or for an id no file name could hold (a hand-made
        file's ``"sessionId": "a b/c"``) a name made from it, never a path elsewhere."""
        if fmt.is_valid_token(session_id):
            return self.root / session_id
        return self.root / ("id-" + digest(session_id.encode("utf-8", "replace"))[:24])

    def path(self, session_id: str, sha: str) -> Path:
        if not SHA_RE.match(sha):
            raise CheckpointMissing(f"{sha!r} is not a checkpoint name")
        return self.folder(session_id) / sha

    def save(self, session_id: str, data: bytes, durable: bool = True) -> tuple[str, bool]:
        """Store ``data`` for the session: (its sha256, whether it was written now).

        A content already there is not written again; its time is refreshed (pruning
        goes by it). One whose size is wrong (cut short by a power failure before the
        disk had it) is replaced. ``durable`` fsyncs the new blob and its folder."""
        sha = digest(data)
        target = self.path(session_id, sha)
        try:
            if os.stat(target).st_size == len(data):
                _touch(target)
                return sha, False
            os.unlink(target)  # not whole: its name must hold exactly what it names
        except FileNotFoundError:
            pass
        ensure_dir(target.parent)
        created = create_exclusive(target, data, durable=durable)
        if not created:
            _touch(target)
        return sha, created

    def has(self, session_id: str, sha: str) -> bool:
        return sha == ABSENT or (
            SHA_RE.match(sha) is not None and self.path(session_id, sha).is_file()
        )

    def read(self, session_id: str, sha: str) -> bytes:
        """The bytes of a checkpoint, checked against its name."""
        path = self.path(session_id, sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointMissing(
                f"checkpoint {sha[:12]} of session {session_id} is gone (pruned by "
                "checkpoints.maxBytes, or removed)"
            ) from None
        if digest(data) != sha:
            raise CheckpointMissing(f"checkpoint {sha[:12]} of session {session_id} is damaged")
        return data

    def share(self, from_id: str, to_id: str, shas: Iterable[str]) -> int:
        """Give session ``to_id`` the blobs ``shas`` of ``from_id`` (hard links; a copy where
        the file system has none). Returns how many it now holds that it did not."""
        count = 0
        for sha in sorted({s for s in shas if s != ABSENT and SHA_RE.match(s)}):
            source = self.path(from_id, sha)
            target = self.path(to_id, sha)
            if target.is_file() or not source.is_file():
                continue
            ensure_dir(target.parent)
            try:
                os.link(source, target)
            except FileExistsError:
                continue
            except OSError:
                try:
                    data = self.read(from_id, sha)
                except CheckpointMissing:
                    continue
                create_exclusive(target, data)
            count += 1
        return count

    # -- every folder --------------------------------------------------------------------
    def session_ids(self) -> list[str]:
        try:
            with os.scandir(self.root) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def blobs(self, session_id: str | None = None) -> list[Blob]:
        """The blobs of one session, or of all of them (temporary files left out)."""
        ids = [session_id] if session_id is not None else self.session_ids()
        out = []
        for sid in ids:
            try:
                with os.scandir(self.folder(sid)) as it:
                    entries = [e for e in it if SHA_RE.match(e.name)]
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    out.append(
                        Blob(
                            sid,
                            entry.name,
                            st.st_size,
                            st.st_mtime,
                            (st.st_dev, st.st_ino),
                            st.st_nlink,
                        )
                    )
            except (FileNotFoundError, NotADirectoryError):
                continue
        return out

    def size(self, session_id: str | None = None) -> int:
        """Bytes held (a blob linked into several sessions counted once)."""
        return _unique_bytes(self.blobs(session_id))

    def referencing(self, sha: str) -> list[str]:
        """The sessions (forks included) whose folders hold the blob ``sha``."""
        return [sid for sid in self.session_ids() if (self.root / sid / sha).is_file()]

    def remove_session(self, session_id: str) -> int:
        """Remove a session's folder; returns the bytes freed (a blob another session links
        stays, for it)."""
        blobs = self.blobs(session_id)
        freed = sum(b.size for b in _unique(blobs) if b.links <= 1)
        shutil.rmtree(self.folder(session_id), ignore_errors=True)
        return freed

    def prune(self, max_bytes: int, keep: Iterable[str] = ()) -> PruneReport:
        """Remove blobs, least recently stored or used first, until at most ``max_bytes`` are
        held. All links of a blob go together; blobs in ``keep`` (shas) stay."""
        blobs = self.blobs()
        report = PruneReport(remaining=_unique_bytes(blobs))
        if report.remaining <= max_bytes:
            return report
        kept = set(keep)
        groups: dict[tuple[int, int], list[Blob]] = {}
        for blob in blobs:
            groups.setdefault(blob.inode, []).append(blob)
        order = sorted(groups.values(), key=lambda g: (max(b.mtime for b in g), g[0].sha))
        for group in order:
            if report.remaining <= max_bytes:
                break
            if group[0].sha in kept:
                continue
            for blob in group:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.root / blob.session_id / blob.sha)
                report.removed.append(blob)
            report.freed += group[0].size
            report.remaining -= group[0].size
        return report

    def verify(self, session_id: str) -> list[str]:
        """Problems in a session's folder: a blob whose bytes do not match its name, a
        temporary file left by a write that was cut off."""
        problems = []
        folder = self.folder(session_id)
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        for name in names:
            if SHA_RE.match(name):
                try:
                    if digest((folder / name).read_bytes()) != name:
                        problems.append(f"{folder / name}: content does not match its name")
                except OSError as exc:
                    problems.append(f"{folder / name}: unreadable ({exc.strerror})")
            elif TMP_MARK in name:
                problems.append(f"{folder / name}: a temporary file left by an interrupted save")
            else:
                problems.append(f"{folder / name}: not a checkpoint")
        return problems


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _unique(blobs: list[Blob]) -> list[Blob]:
    seen: dict[tuple[int, int], Blob] = {}
    for blob in blobs:
        seen.setdefault(blob.inode, blob)
    return list(seen.values())


def _unique_bytes(blobs: list[Blob]) -> int:
    return sum(b.size for b in _unique(blobs))


# -- what a session records -------------------------------------------------------------------
@dataclass
class Change:
    """One change Taurus made (or set out to make) to a file."""

    position: int  # order in the session's change log
    file: str  # as recorded (relative to the chat's working directory when inside it)
    path: str  # the file's real path ("" when not recorded)
    before: str  # sha256 or "absent"
    after: str  # sha256 or "absent"
    outcome: str
    tool: str  # write, edit or rewind
    message: int | None = None  # 1-based number of the message asking for it (tools only)
    timestamp: str = ""
    rewind: int | None = None  # index in "rewinds" (a rewind's restorations)

    @property
    def key(self) -> str:
        """What identifies the file: its real path, or the name recorded."""
        return self.path or self.file

    @property
    def may_have_written(self) -> bool:
        return self.outcome in ("ok", "running", "interrupted")


def tool_use_positions(messages: list[Any]) -> dict[str, int]:
    """tool_use id -> 1-based number of the message holding it."""
    out: dict[str, int] = {}
    for number, message in enumerate(messages, 1):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    out.setdefault(str(block.get("id")), number)
    return out


def changes(data: dict[str, Any]) -> list[Change]:
    """Every checkpointed change of a session, in the order it happened."""
    messages = _list(data.get("messages"))
    positions = tool_use_positions(messages)
    calls = _list(data.get("toolCalls"))
    rewinds = _list(data.get("rewinds"))
    by_slot: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for index, record in enumerate(rewinds):
        if isinstance(record, dict):
            after = record.get("after")
            slot = after if isinstance(after, int) and 0 <= after <= len(calls) else len(calls)
            by_slot.setdefault(slot, []).append((index, record))
    out: list[Change] = []

    def add_rewinds(slot: int) -> None:
        for index, record in by_slot.get(slot, []):
            for item in record.get("files") or []:
                if (
                    isinstance(item, dict)
                    and is_ref(item.get("checkpoint"))
                    and is_ref(item.get("written"))
                ):
                    out.append(
                        Change(
                            len(out),
                            str(item.get("file", "")),
                            _text(item.get("realPath")),
                            item["checkpoint"],
                            item["written"],
                            str(item.get("outcome", "ok")),
                            "rewind",
                            timestamp=str(record.get("timestamp", "")),
                            rewind=index,
                        )
                    )

    for slot, call in enumerate(calls):
        add_rewinds(slot)
        if not isinstance(call, dict) or call.get("tool") not in FILE_TOOLS:
            continue
        before, after = call.get("checkpoint"), call.get("written")
        if not (is_ref(before) and is_ref(after) and isinstance(call.get("file"), str)):
            continue
        out.append(
            Change(
                len(out),
                call["file"],
                _text(call.get("realPath")),
                before,
                after,
                str(call.get("outcome", "ok")),
                str(call["tool"]),
                positions.get(str(call.get("toolUseId"))),
                str(call.get("timestamp", "")),
            )
        )
    add_rewinds(len(calls))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one (a field missing or mangled)."""
    return value if isinstance(value, list) else []


def settle_running(data: dict[str, Any]) -> int:
    """Mark tool calls a crash left "running" as "interrupted"; returns how many."""
    count = 0
    for call in data.get("toolCalls") or []:
        if isinstance(call, dict) and call.get("outcome") == "running":
            call["outcome"] = "interrupted"
            count += 1
    return count


def referenced(data: dict[str, Any]) -> set[str]:
    """The blobs a session document names."""
    out = set()
    for change in changes(data):
        out.update({change.before, change.after})
    out.discard(ABSENT)
    return out


def calls_up_to(data: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The toolCalls entries that belong to the first ``count`` messages.

    An entry with a ``toolUseId`` belongs where its tool_use is; entries without one
    (hand-made files) are matched to tool_use blocks in order."""
    messages = _list(data.get("messages"))
    calls = _list(data.get("toolCalls"))
    kept_ids: set[str] = set()
    uses_kept = 0
    for number, kept_id in sorted((n, i) for i, n in tool_use_positions(messages).items()):
        if number <= count:
            kept_ids.add(kept_id)
            uses_kept += 1
    out: list[dict[str, Any]] = []
    anonymous = 0
    for call in calls:
        if not isinstance(call, dict):
            continue
        use_id = call.get("toolUseId")
        if isinstance(use_id, str) and use_id:
            if use_id in kept_ids:
                out.append(call)
        elif anonymous < uses_kept or count >= len(messages):
            anonymous += 1
            out.append(call)
    return out


# -- rewinding ------------------------------------------------------------------------------
@dataclass
class FilePlan:
    """What a rewind would do to one file."""

    file: str  # as recorded
    path: str  # the real path ("" when not recorded)
    target: str  # the content to restore (sha256, or "absent": remove the file)
    current: str | None  # what the file holds now (None: it could not be read)
    expected: set[str]  # what Taurus last left there
    changes: list[Change] = field(default_factory=list)  # the changes being undone

    @property
    def changed_elsewhere(self) -> bool:
        """The file differs from what Taurus last wrote: a hand edit, bash, another program."""
        return self.current not in self.expected

    @property
    def needed(self) -> bool:
        return self.current != self.target


def plan_rewind(
    data: dict[str, Any], count: int, current_of: Callable[[Change], str | None]
) -> list[FilePlan]:
    """Every file changed after message ``count``, with the content it had then.

    ``current_of(change)`` gives the sha256 (or "absent") of the change's file now. A file's content
    at ``count`` is the ``checkpoint`` of the first change after it; what Taurus last left
    there is the ``written`` of the file's last change (either side of a change a crash
    cut off; the old content for a change that failed)."""
    log = changes(data)
    plans: dict[str, FilePlan] = {}
    for change in log:
        after_cut = change.message is not None and change.message > count
        if change.tool == "rewind" or not after_cut:
            continue
        plan = plans.get(change.key)
        if plan is None:
            plan = plans[change.key] = FilePlan(
                change.file, change.path, change.before, None, set()
            )
        plan.changes.append(change)
    for plan in plans.values():
        plan.expected = last_left(log, plan.changes[0].key)
        plan.current = current_of(plan.changes[0])
    return sorted(plans.values(), key=lambda p: p.file)


def plan_undo(
    data: dict[str, Any], current_of: Callable[[Change], str | None]
) -> tuple[int, list[FilePlan]] | None:
    """Undo the last rewind: (its index, what to put back), or None if there is none."""
    rewinds = data.get("rewinds") if isinstance(data.get("rewinds"), list) else []
    if not rewinds:
        return None
    index = len(rewinds) - 1
    log = changes(data)
    plans = []
    for change in log:
        if change.rewind == index:
            expected = last_left(log, change.key)
            plan = FilePlan(change.file, change.path, change.before, None, expected, [change])
            plan.current = current_of(change)
            plans.append(plan)
    return index, plans


def last_left(log: list[Change], key: str) -> set[str]:
    """What Taurus's last change to the file ``key`` (a Change.key) left in it."""
    for change in reversed(log):
        if change.key != key:
            continue
        if change.outcome == "ok":
            return {change.after}
        if change.may_have_written:
            return {change.before, change.after}
        return {change.before}
    return set()


def line_delta(before: bytes | None, after: bytes | None) -> tuple[int, int]:
    """(lines added, lines removed) from ``before`` to ``after`` (None: no file)."""
    old = _lines(before)
    new = _lines(after)
    if len(before or b"") + len(after or b"") > LARGE_DIFF:  # lines gained and lost, unordered
        from collections import Counter

        old_count, new_count = Counter(old), Counter(new)
        return sum((new_count - old_count).values()), sum((old_count - new_count).values())
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=len(old) + len(new) > 4000)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    return added, removed


def _lines(data: bytes | None) -> list[str]:
    if not data:
        return []
    return data.decode("utf-8", "replace").splitlines()
