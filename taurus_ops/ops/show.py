"""A readable, plain-text view of one session (``taurus-ops show``).

``run(ctx, ShowRequest(ref))`` loads the session and gives its details, its family
(parent, forks, /compact successors) and its transcript as lines; nothing is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taurus_ops.store import Session
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.summary import SessionSummary

SPEAKERS = {"user": "You", "assistant": "Claude"}


def details(session: Session, names: list[str]) -> dict[str, Any]:
    data = session.data
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return {
        "id": session.id,
        "path": str(session.path),
        "created": session.created,
        "updated": session.updated,
        "messages": len(session.messages),
        "toolCalls": len(session.tool_calls),
        "title": session.title,
        "names": names,
        "archived": session.archived,
        "cwd": data.get("cwd"),
        "model": data.get("model"),
        "parentSession": data.get("parentSession"),
        "forkedAt": data.get("forkedAt"),
        "usage": usage,
    }


def _block_lines(block: Any, width: int) -> list[str]:
    if not isinstance(block, dict):
        return [str(block)]
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", "")).splitlines() or [""]
    if kind == "tool_use":
        args = json.dumps(block.get("input", {}), ensure_ascii=False)
        return [f"[tool {block.get('name')}] {fmt.one_line(args, width)}"]
    if kind == "tool_result":
        text = block.get("content")
        text = fmt.text_of(text) if isinstance(text, list) else str(text or "")
        mark = "error" if block.get("is_error") else "result"
        return [f"[{mark}] {fmt.one_line(text, width)}"]
    return [f"[{kind}]"]


def transcript(session: Session, width: int = 100, last: int | None = None) -> list[str]:
    """The conversation, one speaker line per message, numbered from 1 (the numbers
    ``fork REF@N`` and ``/rewind N`` take); tool traffic summarised on one line."""
    total = len(session.messages)
    first = 0 if last is None else max(total - last, 0)
    lines: list[str] = []
    for number, message in enumerate(session.messages[first:], first + 1):
        who = SPEAKERS.get(str(message.get("role")), str(message.get("role")))
        content = message.get("content")
        body: list[str] = []
        if isinstance(content, str):
            body = content.splitlines() or [""]
        elif isinstance(content, list):
            for block in content:
                body.extend(_block_lines(block, width))
        if message.get("interrupted"):
            body.append("[reply interrupted]")
        if isinstance(message.get("repaired"), str):  # set by `taurus-ops doctor --fix`
            body.append(f"[repaired by the doctor: {message['repaired']}]")
        lead = f"[{number}] "
        lines.append(fmt.printable(f"{lead}{who}: {body[0] if body else ''}"))
        lines.extend(" " * len(lead) + fmt.printable(line) for line in body[1:])
    return lines


# -- the job ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShowRequest:
    ref: str
    last: int | None = None  # only the last N messages of the transcript
    document: bool = False  # only the session document (what ``--json`` prints)


@dataclass
class ShowResult:
    session: Session
    details: dict[str, Any] = field(default_factory=dict)  # see ``details``
    family: list[str] = field(default_factory=list)  # the Parent, Forks, Continued lines
    transcript: list[str] = field(default_factory=list)

    def as_json(self) -> Any:
        return self.session.data


def run(ctx: JobContext, request: ShowRequest) -> ShowResult:
    session = ctx.store.load_ref(request.ref)
    result = ShowResult(session)
    if request.document:
        return result
    path = session.path
    names = ctx.store.names().get(os.path.realpath(path), []) if path is not None else []
    result.details = details(session, names)
    from taurus_ops.store.family import children_of

    kids = children_of(ctx.store.summaries(archived=True), session.id)
    result.family = family_lines(result.details, kids)
    result.transcript = transcript(session, last=request.last)
    return result


def family_lines(info: dict[str, Any], children: list[SessionSummary]) -> list[str]:
    """Where the session came from (its parent, and the message it was forked at) and
    the sessions made from it, as ``show`` prints them."""
    lines = []
    parent, forked = info.get("parentSession"), info.get("forkedAt")
    if isinstance(parent, str) and parent:
        how = (
            f"forked at message {forked}"
            if isinstance(forked, int) and not isinstance(forked, bool)
            else "compacted into this one"
        )
        lines.append(f"  Parent:   {fmt.printable(parent)} ({how})")
    for label, group in (
        ("Forks", [k for k in children if k.forked_at is not None]),
        ("Continued", [k for k in children if k.forked_at is None]),
    ):
        if group:
            shown = ", ".join(
                f"{k.id} (@{k.forked_at})" if k.forked_at is not None else f"{k.id} (compacted)"
                for k in group
            )
            lines.append(f"  {label + ':':<9} {shown}")
    return lines
