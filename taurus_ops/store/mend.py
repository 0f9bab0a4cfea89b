"""Mending a history the Messages API would refuse: a ``tool_use`` with no ``tool_result``.

A chat stopped while a tool ran leaves an assistant turn whose tool_use has no
answer. Mending adds, right after it, the missing results saying the tool was
interrupted. Nothing already there is changed or dropped (a partial answer it completes
is replaced by a new message holding it all, never edited in place). The chat (on resume),
the doctor (on repair) and export all use this one function.

The opposite fault, a tool_result that answers no tool_use just before it, is found
by :func:`orphan_results`; the chat turns such blocks into text when it sends a
history, and the doctor sets them aside when it repairs a file.
"""

from __future__ import annotations

from typing import Any

INTERRUPTED_RESULT = "Interrupted: this tool did not finish (the session was stopped while it ran)."


def _tool_use_ids(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return []
    return [
        str(block.get("id"))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("id")
    ]


def _result_ids(message: dict[str, Any]) -> set[str]:
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return set()
    return {
        str(block.get("tool_use_id"))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    }


tool_use_ids = _tool_use_ids  # the ids of an assistant message's tool_use blocks
result_ids = _result_ids  # the tool_use ids a user message's tool_result blocks answer


def interrupted_result(tool_use_id: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": INTERRUPTED_RESULT,
        "is_error": True,
    }


def dangling_tool_uses(messages: list[dict[str, Any]]) -> list[tuple[int, list[str]]]:
    """(index of the assistant message, ids without a result in the next message)."""
    found = []
    for index, message in enumerate(messages):
        if type(message.get("content")) is not list:  # most messages: skipped at once
            continue
        ids = _tool_use_ids(message)
        if not ids:
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        answered = _result_ids(following) if following is not None else set()
        missing = [i for i in ids if i not in answered]
        if missing:
            found.append((index, missing))
    return found


def mend_tool_uses(messages: list[dict[str, Any]]) -> int:
    """Close every dangling tool_use in place; returns how many results were added."""
    added = 0
    for index, missing in reversed(dangling_tool_uses(messages)):
        results = [interrupted_result(i) for i in missing]
        following = messages[index + 1] if index + 1 < len(messages) else None
        if following is not None and following.get("role") == "user" and _result_ids(following):
            # a partial answer: add the missing results right after the ones that are
            # there (the API wants every tool_result before any other block)
            blocks = list(following["content"])
            last = max(
                i
                for i, b in enumerate(blocks)
                if isinstance(b, dict) and b.get("type") == "tool_result"
            )
            # a new message in its place, not an edit of the saved one (see store.layout)
            messages[index + 1] = {
                **following,
                "content": blocks[: last + 1] + results + blocks[last + 1 :],
            }
        else:
            messages.insert(index + 1, {"role": "user", "content": results})
        added += len(results)
    return added


def orphan_results(messages: list[dict[str, Any]]) -> list[tuple[int, list[int]]]:
    """(message index, block indexes) of tool_result blocks with no tool_use just before."""
    out = []
    previous: set[str] = set()
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list):
            bad = [
                i
                for i, block in enumerate(content)
                if isinstance(block, dict)
                and block.get("type") == "tool_result"
                and block.get("tool_use_id") not in previous
            ]
            if bad:
                out.append((index, bad))
        previous = set(_tool_use_ids(message))
    return out
