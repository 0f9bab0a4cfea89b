"""What is wrong with a parsed session document, and the repaired document (pure).

``examine`` is the read-only pass run on every file (fast: one walk over the
messages). ``repair_document`` builds the fixed document: metadata rebuilt from
the file name and contents, messages the Messages API would refuse set aside
(the original bytes stay in the quarantine), orphaned tool results removed and
dangling tool_use blocks closed through :func:`taurus_ops.store.mend.mend_tool_uses`.
Every whole message is kept exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.mend import (
    INTERRUPTED_RESULT,
    dangling_tool_uses,
    mend_tool_uses,
    orphan_results,
)
from taurus_ops.words import plural

ROLES = ("user", "assistant")
# content block types the Messages API accepts in a history
BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass
class Finding:
    """One problem with a document: a stable code, a severity and a sentence."""

    code: str
    severity: str
    text: str


@dataclass
class FileContext:
    """What the file name and the file itself say about a session."""

    name: str
    file_id: str
    file_date: str | None  # "2025-01-18" from the file name, if it has the standard form
    mtime_iso: str

    @classmethod
    def of(cls, name: str, mtime: float) -> FileContext:
        parts = fmt.split_file_name(name)
        file_id = fmt.clean_text(
            parts[1] if parts else (name[:-5] if name.endswith(".json") else name)
        )
        return cls(
            name,
            file_id,
            parts[0] if parts else None,
            fmt.format_time(datetime.fromtimestamp(mtime, UTC)),
        )


@dataclass
class Repaired:
    data: dict[str, Any]
    changes: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)  # what was removed, and why
    interrupted_added: int = 0


def _block_problem(block: Any) -> str | None:
    if type(block) is not dict:
        return "a content block is not an object"
    kind = block.get("type")
    if type(kind) is not str:
        return "a content block has no type"
    if kind not in BLOCK_TYPES:
        return f"a content block of unknown type {kind[:40]!r}"
    if kind == "text":
        if type(block.get("text")) is not str or not block["text"]:
            return "a text block without text"
    elif kind == "tool_use":
        if (
            type(block.get("id")) is not str
            or not block.get("id")
            or type(block.get("name")) is not str
            or type(block.get("input")) is not dict
        ):
            return "a tool_use block without id, name or input"
    elif kind == "tool_result" and (
        type(block.get("tool_use_id")) is not str or not block.get("tool_use_id")
    ):
        return "a tool_result block without tool_use_id"
    return None


def message_problem(message: Any) -> str | None:
    """Why the Messages API would refuse this message on its own, or None."""
    if type(message) is not dict:
        return "not an object"
    role = message.get("role")
    if role not in ROLES:
        return f"unknown role {role!r}" if isinstance(role, str) else "no role"
    content = message.get("content")
    if type(content) is str:
        return None if content else "empty content"
    if type(content) is not list:
        return "content is neither text nor a list of blocks"
    if not content:
        return "empty content"
    for block in content:
        problem = _block_problem(block)
        if problem:
            return problem
        kind = block["type"]
        if (kind == "tool_use" and role != "assistant") or (
            kind == "tool_result" and role != "user"
        ):
            return f"a {kind} block in a {role} message"
    return None


def _repeated_tool_use(messages: list[dict[str, Any]]) -> list[int]:
    """Indexes of assistant messages reusing a tool_use id seen earlier (the API refuses them)."""
    seen: set[str] = set()
    out = []
    for index, message in enumerate(messages):
        ids = (
            [b["id"] for b in message["content"] if b.get("type") == "tool_use"]
            if type(message["content"]) is list
            else []
        )
        if any(i in seen for i in ids) or len(set(ids)) != len(ids):
            out.append(index)
        seen.update(ids)
    return out


def _clean_history(messages: list[Any]) -> bool:
    """One fast pass: True when the API would accept the history as it is.

    The same rules as :func:`message_problem`, :func:`_repeated_tool_use`,
    :func:`_orphans` and :func:`taurus_ops.store.mend.dangling_tool_uses` together;
    when it says False those give the details.
    """
    seen: set[str] = set()
    pending: set[str] | None = None  # tool_use ids the next message must answer
    for index, message in enumerate(messages):
        if type(message) is not dict:
            return False
        role = message.get("role")
        content = message.get("content")
        if role not in ROLES or (index == 0 and role != "user"):
            return False
        if type(content) is str:
            if not content or pending:
                return False
            continue
        if type(content) is not list or not content:
            return False
        uses: list[str] = []
        results: list[str] = []
        for block in content:
            if type(block) is not dict:
                return False
            kind = block.get("type")
            if kind == "text":
                value = block.get("text")
                if type(value) is not str or not value:
                    return False
            elif kind == "tool_use":
                ident = block.get("id")
                if (
                    role != "assistant"
                    or type(ident) is not str
                    or not ident
                    or ident in seen
                    or type(block.get("name")) is not str
                    or type(block.get("input")) is not dict
                ):
                    return False
                seen.add(ident)
                uses.append(ident)
            elif kind == "tool_result":
                ident = block.get("tool_use_id")
                if role != "user" or type(ident) is not str or not ident:
                    return False
                results.append(ident)
            elif type(kind) is not str or kind not in BLOCK_TYPES:
                return False
        if pending and (role != "user" or not pending.issubset(results)):
            return False
        if results and (not pending or not pending.issuperset(results)):
            return False
        pending = set(uses) if uses else None
    return not pending


def examine(data: Any, ctx: FileContext) -> list[Finding]:
    """Every format problem of a parsed document (read-only)."""
    if type(data) is not dict:
        return [Finding("not-a-session", ERROR, "the file holds JSON but not a session object")]
    sid = data.get("sessionId")
    placeholder = isinstance(sid, str) and sid in fmt.PLACEHOLDER_IDS
    return [
        *_id_findings(sid, placeholder, ctx),
        *_time_findings(data, placeholder),
        *_messages_findings(data.get("messages"), placeholder),
        *_tool_calls_findings(data.get("toolCalls")),
    ]


def _id_findings(sid: Any, placeholder: bool, ctx: FileContext) -> list[Finding]:
    if sid is None:
        return [Finding("missing-id", WARNING, "no `sessionId`")]
    if type(sid) is not str:
        return [Finding("bad-id", WARNING, "`sessionId` is not a string")]
    if not placeholder and sid != ctx.file_id:
        return [
            Finding(
                "id-mismatch",
                WARNING,
                f"`sessionId` {sid!r} disagrees with the file name ({ctx.file_id!r})",
            )
        ]
    return []


def _time_findings(data: dict[str, Any], placeholder: bool) -> list[Finding]:
    found: list[Finding] = []
    for key in ("created", "updated"):
        value = data.get(key)
        if value is None:
            if not placeholder:  # a template-route file gets its times on its first save
                found.append(Finding(f"missing-{key}", WARNING, f"no `{key}` time"))
        elif fmt.parse_time(value) is None:
            found.append(
                Finding(f"bad-{key}", WARNING, f"`{key}` is not a timestamp: {value!r:.40}")
            )
    return found


def _messages_findings(messages: Any, placeholder: bool) -> list[Finding]:
    if messages is None:
        return [] if placeholder else [Finding("missing-messages", WARNING, "no `messages` list")]
    if type(messages) is not list:
        return [Finding("bad-messages", ERROR, "`messages` is not a list")]
    if _clean_history(messages):
        return []
    bad = [(i, p) for i, m in enumerate(messages) if (p := message_problem(m))]
    if bad:
        first = ", ".join(f"#{i + 1}: {p}" for i, p in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return [
            Finding(
                "bad-message",
                ERROR,
                f"{plural(len(bad), 'message')} the API would refuse ({first}{more})",
            )
        ]
    if _repeated_tool_use(messages):
        return [
            Finding("repeated-tool-use", ERROR, "a tool_use id appears twice; the API refuses that")
        ]
    if messages and messages[0]["role"] != "user":
        return [
            Finding(
                "first-not-user",
                ERROR,
                "the first message is not from the user; the API refuses that",
            )
        ]
    return _pairing_findings(messages)


def _pairing_findings(messages: list[Any]) -> list[Finding]:
    """tool_result blocks answering nothing, and tool_use blocks nothing answers."""
    found: list[Finding] = []
    orphans = orphan_results(messages)
    if orphans:
        count = sum(len(b) for _, b in orphans)
        found.append(
            Finding(
                "orphan-tool-result",
                ERROR,
                f"{plural(count, 'tool_result block')} answering no tool_use (message #{orphans[0][0] + 1})",
            )
        )
    dangling = dangling_tool_uses(messages)
    if dangling:
        count = sum(len(ids) for _, ids in dangling)
        found.append(
            Finding(
                "dangling-tool-use",
                ERROR,
                f"{plural(count, 'tool_use block')} without a tool_result (message #{dangling[0][0] + 1}); the API refuses such a history",
            )
        )
    return found


def _tool_calls_findings(calls: Any) -> list[Finding]:
    if calls is not None and type(calls) is not list:
        return [Finding("bad-toolcalls", WARNING, "`toolCalls` is not a list")]
    if calls and any(type(c) is not dict for c in calls):
        return [Finding("bad-toolcalls", WARNING, "`toolCalls` holds entries that are not objects")]
    return []


def rebuild_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat toolCalls entries from the tool_use blocks of ``messages`` (no times: none are known)."""
    calls = []
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or type(content) is not list:
            continue
        for block in content:
            if block.get("type") == "tool_use":
                entry = {"tool": block.get("name")}
                entry.update({k: v for k, v in block.get("input", {}).items() if k != "tool"})
                calls.append(entry)
    return calls


def _earliest_call(calls: Any) -> str | None:
    stamps = [
        moment
        for c in (calls if type(calls) is list else [])
        if type(c) is dict and (moment := fmt.parse_time(c.get("timestamp")))
    ]
    return fmt.format_time(min(stamps)) if stamps else None


def _latest_call(calls: Any) -> str | None:
    stamps = [
        moment
        for c in (calls if type(calls) is list else [])
        if type(c) is dict and (moment := fmt.parse_time(c.get("timestamp")))
    ]
    return fmt.format_time(max(stamps)) if stamps else None


def repair_document(
    data: dict[str, Any], ctx: FileContext, tool_calls_lost: bool = False
) -> Repaired:
    """The fixed document. ``data`` is not modified (messages are copied before mending)."""
    out: dict[str, Any] = dict(data)
    fix = Repaired(out)
    _repair_id(out, ctx, fix)
    _repair_times(out, ctx, fix)
    messages = _drop_bad_messages(_messages_copy(out, fix), fix)
    _drop_unanswerable(messages, fix)
    added = mend_tool_uses(messages)
    if added:
        fix.interrupted_added = added
        fix.changes.append(
            f'close {plural(added, "dangling tool_use block")} with an "interrupted" result'
        )
    out["messages"] = messages
    _repair_tool_calls(out, messages, fix, tool_calls_lost)
    return fix


def _repair_id(out: dict[str, Any], ctx: FileContext, fix: Repaired) -> None:
    """The file name's id wins; a real id the document had is kept as previousSessionId."""
    sid = out.get("sessionId")
    if type(sid) is not str or sid in fmt.PLACEHOLDER_IDS or sid != ctx.file_id:
        if type(sid) is str and sid and sid not in fmt.PLACEHOLDER_IDS:
            out["previousSessionId"] = sid
            fix.changes.append(f"set sessionId {sid!r} to {ctx.file_id!r} (the file name wins)")
        else:
            fix.changes.append(f"take sessionId from the file name: {ctx.file_id}")
        out["sessionId"] = ctx.file_id


def _repair_times(out: dict[str, Any], ctx: FileContext, fix: Repaired) -> None:
    if fmt.parse_time(out.get("created")) is None:
        if ctx.file_date:
            stamp = fmt.format_time(datetime.fromisoformat(ctx.file_date).replace(tzinfo=UTC))
            source = "the file name"
        else:
            stamp = _earliest_call(out.get("toolCalls")) or ctx.mtime_iso
            source = "the contents" if _earliest_call(out.get("toolCalls")) else "the file time"
        out["created"] = stamp
        fix.changes.append(f"rebuild `created` from {source}: {stamp}")
    if fmt.parse_time(out.get("updated")) is None:
        stamp = ctx.mtime_iso
        latest = _latest_call(out.get("toolCalls"))
        if latest and latest > stamp:
            stamp = latest
        out["updated"] = stamp
        fix.changes.append(f"rebuild `updated` from the file time: {stamp}")


def _messages_copy(out: dict[str, Any], fix: Repaired) -> list[Any]:
    """A private copy of the messages (mending edits in place); [] when there is no list."""
    messages = out.get("messages")
    if messages is None:
        fix.changes.append("add an empty `messages` list")
        return []
    if type(messages) is not list:
        fix.set_aside.append("`messages` was not a list")
        return []
    copy: list[Any] = fmt.loads(fmt.dumps(messages))
    return copy


def _drop_bad_messages(messages: list[Any], fix: Repaired) -> list[Any]:
    """The messages the API would take, without any that repeats a tool_use id."""
    kept = []
    for index, message in enumerate(messages):
        problem = message_problem(message)
        if problem:
            fix.set_aside.append(f"message #{index + 1}: {problem}")
        else:
            kept.append(message)
    for index in reversed(_repeated_tool_use(kept)):
        fix.set_aside.append(f"message #{index + 1}: it repeats a tool_use id")
        del kept[index]
    return kept


def _drop_unanswerable(messages: list[Any], fix: Repaired) -> None:
    """Remove leading assistant messages and orphan tool_results, until stable: removing
    one thing can orphan the next."""
    while True:
        lead = 0
        while lead < len(messages) and messages[lead]["role"] != "user":
            lead += 1
        if lead:
            fix.set_aside.append(
                f"{plural(lead, 'assistant message')} before the first user message"
            )
            del messages[:lead]
        orphans = orphan_results(messages)
        for index, blocks in reversed(orphans):
            message = messages[index]
            content = [b for i, b in enumerate(message["content"]) if i not in set(blocks)]
            fix.set_aside.append(
                f"{plural(len(blocks), 'tool_result block')} answering no tool_use"
            )
            if content:
                message["content"] = content
            else:
                del messages[index]
        if not lead and not orphans:
            break


def _repair_tool_calls(
    out: dict[str, Any], messages: list[Any], fix: Repaired, tool_calls_lost: bool
) -> None:
    calls = out.get("toolCalls")
    if calls is None or type(calls) is not list:
        if calls is not None:
            fix.set_aside.append("`toolCalls` was not a list")
        rebuilt = rebuild_tool_calls(messages)
        if rebuilt or tool_calls_lost:
            fix.changes.append(
                f"rebuild `toolCalls` from the messages ({plural(len(rebuilt), 'call')})"
            )
        out["toolCalls"] = rebuilt
    elif any(type(c) is not dict for c in calls):
        out["toolCalls"] = [c for c in calls if type(c) is dict]
        fix.set_aside.append(
            f"{plural(len(calls) - len(out['toolCalls']), 'toolCalls entry', 'toolCalls entries')} that were not objects"
        )


def is_interrupted_result(message: dict[str, Any]) -> bool:
    """True for a message mending added (all its blocks are interrupted results)."""
    content = message.get("content")
    return (
        message.get("role") == "user"
        and type(content) is list
        and bool(content)
        and all(
            type(b) is dict
            and b.get("type") == "tool_result"
            and b.get("content") == INTERRUPTED_RESULT
            for b in content
        )
    )
