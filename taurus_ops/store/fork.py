"""Forking a session: a new session holding the first N messages of another.

The original file is only read, never written. The fork gets a new id and file,
``"parentSession"`` (the original's id) and ``"forkedAt"`` (N). Messages are numbered
from 1 as ``taurus-ops show`` numbers them; ``REF@N`` keeps messages 1..N (``REF``
alone keeps all, ``REF@0`` none). A cut between a ``tool_use`` and its
``tool_result`` is refused, naming the nearest points on either side that are not:
mending it would put into the fork an "interrupted" result that never happened.

What the fork copies: the messages (exactly, ``usage`` included: the index and
``stats`` count the first ``forkedAt`` messages of a fork as the parent's, so tokens
are never counted twice), the ``toolCalls`` of those messages, and the fields Taurus
does not own (``cwd``, ``model``, ``title``, unknown ones). Not copied: the running
``usage`` totals (the fork's start at zero), the "always" answers (asked again), a
``previousSessionId`` and any ``rewinds``. Checkpoint blobs the copied tool calls
name are linked into the fork's own checkpoint folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from taurus_ops.errors import UsageError
from taurus_ops.store.checkpoints import CheckpointStore, calls_up_to, referenced
from taurus_ops.store.mend import result_ids, tool_use_ids
from taurus_ops.store.session import Session
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.store.store import SessionStore

_AT = re.compile(r"^(?P<ref>.+)@(?P<n>\d{1,9})$")
NOT_COPIED = frozenset(
    {
        "sessionId",
        "created",
        "updated",
        "messages",
        "toolCalls",
        "usage",
        "parentSession",
        "forkedAt",
        "previousSessionId",
        "allowedTools",
        "allowedToolsBy",
        "rewinds",
    }
)


class ForkRefused(UsageError):
    """A fork point that would leave a tool request without its result."""


def split_ref(text: str) -> tuple[str, int | None]:
    """``("abc123", 12)`` for ``abc123@12``; ``("abc123", None)`` for ``abc123``."""
    match = _AT.match(text.strip())
    if match is None:
        if "@" in text:
            raise UsageError(f"{text!r}: write REF@N with N a message number (REF@12)")
        return text, None
    return match.group("ref"), int(match.group("n"))


def cut_problem(messages: list[dict[str, Any]], count: int) -> str | None:
    """Why keeping the first ``count`` messages would cut a tool exchange, or None."""
    if count <= 0 or count >= len(messages):
        return None
    asked = set(tool_use_ids(messages[count - 1]))
    answered = asked & result_ids(messages[count])
    if not answered:
        return None
    names = sorted(
        {
            str(b.get("name"))
            for b in messages[count - 1].get("content") or []
            if isinstance(b, dict) and b.get("id") in answered
        }
    )
    return (
        f"message {count} asks for a tool ({', '.join(names)}) whose result is message {count + 1}"
    )


def valid_cuts_near(messages: list[dict[str, Any]], count: int) -> tuple[int | None, int | None]:
    """The nearest fork points below and above ``count`` that cut no tool exchange."""
    below = next((n for n in range(count - 1, -1, -1) if cut_problem(messages, n) is None), None)
    above = next(
        (n for n in range(count + 1, len(messages) + 1) if cut_problem(messages, n) is None), None
    )
    return below, above


def check_cut(
    session_id: str, messages: list[dict[str, Any]], count: int, action: str = "fork"
) -> None:
    """Raise ForkRefused (one line naming the nearest valid points) for a bad ``count``.

    ``action`` is ``fork`` (points shown as ``REF@N``) or ``rewind`` (as ``/rewind N``)."""
    if count > len(messages):
        raise ForkRefused(
            f"{session_id} has {plural(len(messages), 'message')}; {action} to a message "
            f"from 0 to {len(messages)}"
        )
    problem = cut_problem(messages, count)
    if problem is None:
        return
    below, above = valid_cuts_near(messages, count)
    points = [n for n in (below, above) if n is not None]
    if action == "fork":
        options = " or ".join(f"{session_id}@{n}" for n in points)
        raise ForkRefused(f"cannot fork {session_id} at {count}: {problem}; fork at {options}")
    options = " or ".join(f"/{action} {n}" for n in points)
    raise ForkRefused(f"cannot {action} to message {count}: {problem}; try {options}")


def fork_document(data: dict[str, Any], count: int) -> dict[str, Any]:
    """The fields of a fork of ``data`` keeping its first ``count`` messages (no id or
    times: Session.new gives those)."""
    messages = data.get("messages")
    if not isinstance(messages, list):
        messages = []
    fields: dict[str, Any] = {k: v for k, v in data.items() if k not in NOT_COPIED}
    fields.pop("version", None)
    return _copy(
        {
            "parentSession": str(data.get("sessionId", "")),
            "forkedAt": count,
            **fields,
            "messages": messages[:count],
            "toolCalls": calls_up_to(data, count),
        }
    )


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document (through orjson: many times quicker than deepcopy)."""
    return orjson.loads(orjson.dumps(value))


@dataclass
class Fork:
    session: Session
    parent: Session
    count: int
    linked: int  # checkpoint blobs shared with the fork


def fork_session(
    store: SessionStore,
    parent: Session,
    count: int | None = None,
    checkpoints: CheckpointStore | None = None,
) -> Fork:
    """Create and save a fork of ``parent`` keeping ``count`` messages (default all).

    ``store`` is the SessionStore the fork is saved in; ``parent`` is never written."""
    messages = parent.messages
    count = len(messages) if count is None else count
    if count < 0:
        raise UsageError("a fork keeps 0 or more messages")
    check_cut(parent.id, messages, count)
    fields = fork_document(parent.data, count)
    store.ensure()
    session = Session.new(store.new_id(), **fields)
    session.path = store.path_for(session.id, session.created)
    linked = 0
    if checkpoints is not None:
        linked = checkpoints.share(parent.id, session.id, referenced(session.data))
    store.save(session, touch=False)
    return Fork(session, parent, count, linked)


def describe(fork: Fork) -> str:
    total = len(fork.parent.messages)
    kept = "all" if fork.count == total else f"the first {fork.count}"
    return (
        f"Forked {fork.parent.id} at message {fork.count} ({kept} of "
        f"{plural(total, 'message')}): new session {fork.session.id}"
    )


__all__ = [
    "Fork",
    "ForkRefused",
    "check_cut",
    "cut_problem",
    "describe",
    "fork_document",
    "fork_session",
    "split_ref",
    "valid_cuts_near",
]
