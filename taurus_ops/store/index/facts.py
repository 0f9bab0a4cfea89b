"""What the index keeps of one session file, made from one lenient reading of it.

``read_facts`` is the only place the index reads a session file: it parses the file
once and takes from that one document the columns ``list`` shows, what cleanup plans
with, the statistics and the message text. It runs in worker processes when many
files are read, so what it returns is plain data.

Message text (what ``search`` looks in) is, per message: a string ``content``; the
``text`` of text blocks; the ``thinking`` of thinking blocks; a tool_use's name and
its input as JSON; a tool_result's content. Blocks are joined by newlines.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.index.schema import USAGE_KEYS, stamp
from taurus_ops.store.index.text import Packed, pack
from taurus_ops.store.reading import Reading, mtime_iso, read_file
from taurus_ops.store.refs import id_from_file_name
from taurus_ops.store.session import title_of
from taurus_ops.store.summary import family_fields

MODIFYING_TOOLS = ("edit", "write")
MAX_TOKENS = 1 << 40  # per message: far past any real count, and sums still fit in 64 bits
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
NEVER_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // ONE_US  # sorts before any time
# a tool_use's input as ``json.dumps(value, ensure_ascii=False)`` writes it, with one encoder
# for all (dumps makes one a call when given an option)
_input_json = json.JSONEncoder(ensure_ascii=False).encode


@dataclass
class SessionFacts:
    """Everything the index stores about one session file."""

    path: str
    stamp: tuple[int, int, int]  # (size, mtime_ns, inode) when it was read
    id: str
    created: str = ""  # normalised (format_time), for filters and the statistics
    updated: str = ""
    title: str = ""
    messages: int = 0
    tool_calls: int = 0
    tools: dict[str, int] = field(default_factory=dict)  # toolCalls[].tool -> count
    used_tools: set[str] = field(default_factory=set)  # toolCalls and tool_use names
    modified: dict[str, int] = field(default_factory=dict)  # edit/write .file -> count
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> token counts
    error: str | None = None
    bad_messages: bool = False  # a JSON object whose ``messages`` is not a list
    parent: str | None = None
    forked_at: int | None = None
    cwd: str | None = None
    shown_created: str = ""  # what ``list`` shows (SessionSummary.created/.updated)
    shown_updated: str = ""
    list_us: int = NEVER_US  # list's order: SessionSummary.sort_key() in microseconds
    plan_us: int | None = None  # cleanup's ``updated`` (None: the file's mtime stands)
    text: Packed | None = None


def block_text(block: Any) -> str:
    """The searchable text of one content block."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "thinking":
        text = block.get("thinking")
        return text if isinstance(text, str) else ""
    if kind == "tool_use":
        name = block.get("name")
        args = _input_json(block.get("input", {}))
        return f"{name if isinstance(name, str) else ''}\n{args}"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return "\n".join(block_text(b) for b in content)
        return content if isinstance(content, str) else ""
    return ""


def message_text(message: dict[str, Any], tools: set[str] | None = None) -> str:
    """The searchable text of a message (see the module docstring); the names of the
    tools it calls are added to ``tools``. (The common blocks are read here rather than
    through ``block_text``: this runs for every message of every session indexed.)"""
    content = message.get("content")
    if type(content) is str:
        return content
    if type(content) is not list:
        return content if isinstance(content, str) else ""
    parts = []
    for block in content:
        if type(block) is dict:
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if type(text) is str and text:
                    parts.append(text)
                continue
            if kind == "tool_result":
                text = block.get("content")
                if type(text) is str:
                    if text:
                        parts.append(text)
                    continue
            elif kind == "tool_use" and tools is not None:
                name = block.get("name")
                if isinstance(name, str):
                    tools.add(name)
        text = block_text(block)
        if text:
            parts.append(text)
    return "\n".join(parts)


def _usage_total(usages: list[dict[str, Any]], key: str) -> int:
    total = 0
    for usage in usages:
        value = usage.get(key)
        # a count past MAX_TOKENS is not a real one (and would overflow SQLite's integers)
        if type(value) is int and 0 < value <= MAX_TOKENS:  # not a bool
            total += value
    return total


def usage_by_model(data: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Token use by model: per-message ``usage`` summed; the session's totals if none.

    The first ``forkedAt`` messages of a fork are copies of its parent's, whose tokens
    the parent already counts. (Each message's ``usage`` is put with its model's, and
    each count summed over those in one loop: this runs for every message indexed.)"""
    messages = data.get("messages")
    named = data.get("model")
    default_model = named if isinstance(named, str) else "unknown"
    copied = data.get("forkedAt") if isinstance(data.get("parentSession"), str) else None
    skip = copied if isinstance(copied, int) and not isinstance(copied, bool) and copied > 0 else 0
    by_model: dict[str, list[dict[str, Any]]] = {}
    if isinstance(messages, list):
        for message in messages[skip:] if skip else messages:
            if isinstance(message, dict):
                usage = message.get("usage")
                if isinstance(usage, dict):
                    model = usage.get("model")
                    key = model if isinstance(model, str) and model else default_model
                    by_model.setdefault(key, []).append(usage)
    if not by_model:
        usage = data.get("usage")
        if isinstance(usage, dict):
            model = usage.get("model")
            by_model[model if isinstance(model, str) and model else default_model] = [usage]
    out = {}
    for model, usages in by_model.items():
        totals = {key: _usage_total(usages, key) for key in USAGE_KEYS}
        if any(totals.values()):
            out[model] = totals
    return out


def micros(moment: datetime) -> int:
    """A moment as whole microseconds since 1970 (exact, so orders as the datetimes do)."""
    return (moment - EPOCH) // ONE_US


def _norm_time(value: Any) -> str:
    moment = fmt.parse_time(value)
    return fmt.format_time(moment) if moment else ""


def _count_calls(facts: SessionFacts, calls: list[Any]) -> None:
    for call in calls:
        if not isinstance(call, dict):
            continue
        tool = call.get("tool")
        if isinstance(tool, str):
            facts.tools[tool] = facts.tools.get(tool, 0) + 1
            facts.used_tools.add(tool)
            target = call.get("file")
            if tool in MODIFYING_TOOLS and isinstance(target, str):
                facts.modified[target] = facts.modified.get(target, 0) + 1


def _texts(facts: SessionFacts, messages: list[Any], dictionary: int) -> Packed | None:
    """Every message's role and text, packed; the tool_use names are noted on the way."""
    roles: list[str] = []
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            roles.append("")
            texts.append("")
            continue
        role = message.get("role")
        roles.append(role if isinstance(role, str) else "")
        text = message_text(message, facts.used_tools)
        if "\x00" in text:  # SQLite's text stops at a NUL, and the stored text is split at NULs
            text = text.replace("\x00", "\ufffd")
        texts.append(text)
    return pack(roles, texts, dictionary)


def extract(reading: Reading, path: str, st: os.stat_result, dictionary: int = 0) -> SessionFacts:
    """What the index keeps of a session file, from its reading and its stat (its text
    compressed with ``dictionary``, see ``text.pack``)."""
    mtime = mtime_iso(st)
    facts = SessionFacts(path, stamp(st), id_from_file_name(os.path.basename(path)))
    facts.updated = facts.shown_updated = mtime
    data = reading.data
    if data is None:
        facts.error = reading.error
        facts.list_us = _list_us(mtime)
        return facts
    facts.bad_messages = reading.problem is not None
    messages = data.get("messages")
    messages = messages if isinstance(messages, list) else []
    calls = data.get("toolCalls")
    calls = calls if isinstance(calls, list) else []
    created, updated = data.get("created"), data.get("updated")
    facts.created = _norm_time(created)
    facts.updated = _norm_time(updated) or mtime
    facts.shown_created = created if isinstance(created, str) else ""
    updated_at = fmt.parse_time(updated)
    if updated_at is not None and isinstance(updated, str):
        facts.shown_updated = updated
        facts.plan_us = micros(updated_at)
    facts.list_us = _list_us(facts.shown_updated)
    facts.messages = len(messages)
    facts.tool_calls = len(calls)
    title = data.get("title")
    facts.title = (
        fmt.one_line(title) if isinstance(title, str) and title.strip() else title_of(messages)
    )
    family = family_fields(data)
    facts.parent, facts.forked_at, facts.cwd = family["parent"], family["forked_at"], family["cwd"]
    _count_calls(facts, calls)
    facts.text = _texts(facts, messages, dictionary)
    facts.usage = usage_by_model(data)
    return facts


def _list_us(shown_updated: str) -> int:
    moment = fmt.parse_time(shown_updated)
    return micros(moment) if moment is not None else NEVER_US


def read_facts(path: str, dictionary: int = 0) -> SessionFacts | None:
    """Read and extract one session file; None when it is gone (a damaged file gives
    facts with ``error`` set)."""
    try:
        st = os.stat(path, follow_symlinks=False)
        reading = read_file(path)
    except FileNotFoundError:
        return None
    return extract(reading, path, st, dictionary)
