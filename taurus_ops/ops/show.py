"""A readable, plain-text view of one session (``taurus-ops show``)."""

from __future__ import annotations

import json
from typing import Any

from taurus_ops.store import Session
from taurus_ops.store import format as fmt

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
