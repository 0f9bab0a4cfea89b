"""Turn bookkeeping on a session document, and the history as the Messages API wants it.

Text enters a session only through :class:`Conversation`, which replaces invalid
bytes and lone surrogates (from the terminal, a pipe, a file name, a tool or the
model) with U+FFFD, so every save is valid UTF-8 and the turn is kept.

The chat keeps a few fields of its own on messages (``timestamp``, ``usage``,
``interrupted``); :func:`prepare_history` strips them, drops what the API would
refuse (empty content, unknown roles), closes dangling tool_use blocks with the
store's :func:`mend_tool_uses`, and combines consecutive same-role messages, so any
session Taurus or a person wrote is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taurus_ops.store import Session
from taurus_ops.store import format as fmt
from taurus_ops.store.mend import mend_tool_uses, orphan_results

USAGE_KEYS = ("inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens")
BLOCK_FIELDS = {
    "text": ("type", "text"),
    "tool_use": ("type", "id", "name", "input"),
    "tool_result": ("type", "tool_use_id", "content", "is_error"),
    "image": ("type", "source"),
    "document": ("type", "source", "title", "context"),
}
CHARS_PER_TOKEN = 3.5


# -- the history the API receives -----------------------------------------------------------
def _clean_block(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    keep = BLOCK_FIELDS.get(kind)  # type: ignore[arg-type]
    if keep is None:
        return None
    out = {k: block[k] for k in keep if k in block}
    if kind == "text":  # the API refuses a text block of only whitespace
        if not isinstance(out.get("text"), str) or not out["text"].strip():
            return None
    elif kind == "tool_use":
        if not isinstance(out.get("input"), dict):
            out["input"] = {}
        if not isinstance(out.get("id"), str) or not isinstance(out.get("name"), str):
            return None
    elif kind == "tool_result":
        if not isinstance(out.get("tool_use_id"), str):
            return None
        inner = out.get("content")
        if isinstance(inner, list):
            inner = [b for b in (_clean_block(x) for x in inner) if b is not None]
            inner = [b for b in inner if b["type"] in ("text", "image", "document")]
            out["content"] = inner or "(no output)"
        elif not isinstance(inner, str) or not inner.strip():
            out["content"] = (
                "(no output)" if inner is None or isinstance(inner, str) else str(inner)
            )
    return out


# blocks the API accepts in one role only; found in the other (a hand edit), they become text
_FOREIGN = {"user": "tool_use", "assistant": "tool_result"}


def _as_text(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_use":
        detail = f"{block.get('name')} {fmt.dumps(block.get('input') or {}).decode().strip()}"
        return {"type": "text", "text": f"[tool request] {' '.join(detail.split())}"}
    inner = block.get("content")
    return {
        "type": "text",
        "text": f"[tool result] {inner if isinstance(inner, str) else fmt.text_of(inner)}",
    }


def _clean_message(message: dict[str, Any]) -> dict[str, Any] | None:
    role = message.get("role")
    if role not in ("user", "assistant"):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content} if content.strip() else None
    if isinstance(content, list):
        blocks = [b for b in (_clean_block(x) for x in content) if b is not None]
        blocks = [_as_text(b) if b["type"] == _FOREIGN[role] else b for b in blocks]
        return {"role": role, "content": blocks} if blocks else None
    return None


def _drop_repeated_uses(messages: list[dict[str, Any]]) -> None:
    """Turn a tool_use whose id was already used (a pasted copy) into text: ids must be unique."""
    seen: set[str] = set()
    for message in messages:
        content = message["content"]
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if block["type"] == "tool_use":
                if block["id"] in seen:
                    content[position] = _as_text(block)
                seen.add(block["id"])


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def prepare_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages to send: API fields only, every tool_use answered, roles alternating."""
    # fresh dicts and lists all the way down to the blocks (tool inputs are shared, never changed)
    cleaned = [m for m in (_clean_message(x) for x in messages) if m is not None]
    _drop_repeated_uses(cleaned)
    _drop_orphan_results(cleaned)
    mend_tool_uses(cleaned)
    out: list[dict[str, Any]] = []
    for message in cleaned:
        if message["role"] == "user" and isinstance(message["content"], list):
            message["content"].sort(key=lambda b: b.get("type") != "tool_result")  # results first
        if out and out[-1]["role"] == message["role"]:
            merged = _blocks(out[-1]["content"]) + _blocks(message["content"])
            if message["role"] == "user":  # tool results must come first
                merged.sort(key=lambda b: b.get("type") != "tool_result")
            out[-1]["content"] = merged
        else:
            out.append(message)
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": "(The conversation continues from here.)"})
    if out and out[-1]["role"] == "assistant":
        _trim_trailing_space(out[-1])
    return out


def _drop_orphan_results(messages: list[dict[str, Any]]) -> None:
    """Turn tool_result blocks with no tool_use just before them into plain text."""
    for index, blocks in orphan_results(messages):
        content = list(messages[index]["content"])
        for position in blocks:
            inner = content[position].get("content")
            text = inner if isinstance(inner, str) else fmt.text_of(inner)
            content[position] = {"type": "text", "text": f"[tool result] {text}"}
        messages[index]["content"] = content


def _trim_trailing_space(message: dict[str, Any]) -> None:
    content = message["content"]
    if isinstance(content, str):
        message["content"] = content.rstrip() or "(no text)"
    elif content and content[-1].get("type") == "text":
        content[-1]["text"] = content[-1]["text"].rstrip() or "(no text)"


def estimate_tokens(messages: list[dict[str, Any]], extra: str = "") -> int:
    """A rough token count of a history (about 3.5 characters a token)."""
    total = len(extra)
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += len(fmt.dumps(content))
    return int(total / CHARS_PER_TOKEN) + 4 * len(messages)


# -- usage ------------------------------------------------------------------------------------
def usage_entry(model: str, usage: Any) -> dict[str, Any]:
    """The per-message usage record from an API usage object or dict."""

    def get(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value) if isinstance(value, int) else 0

    return {
        "model": model,
        "inputTokens": get("input_tokens"),
        "outputTokens": get("output_tokens"),
        "cacheReadTokens": get("cache_read_input_tokens"),
        "cacheCreationTokens": get("cache_creation_input_tokens"),
    }


def add_usage(data: dict[str, Any], entry: dict[str, Any]) -> None:
    """Add one response's usage to the session's running totals (``data["usage"]``)."""
    totals = data.get("usage")
    if not isinstance(totals, dict):
        totals = {}
    for key in USAGE_KEYS:
        value = totals.get(key)
        totals[key] = (value if isinstance(value, int) else 0) + int(entry.get(key, 0))
    totals["model"] = entry["model"]
    data["usage"] = {"model": totals.pop("model"), **totals}


# -- the conversation ---------------------------------------------------------------------------
@dataclass
class ToolRun:
    tool_use_id: str
    name: str
    input: dict[str, Any]


class Conversation:
    """A session being written by the chat. Every change is followed by ``save()``."""

    def __init__(self, session: Session, save: Callable[[], None]) -> None:
        self.session = session
        self.save = save
        self.run_usage = {key: 0 for key in USAGE_KEYS}  # this process only, for /cost
        self.run_by_model: dict[str, dict[str, int]] = {}

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.session.messages

    def add_user(self, text: str) -> None:
        content = fmt.clean_text(text)  # an invalid byte from a terminal or a pipe is U+FFFD
        self.messages.append({"role": "user", "content": content, "timestamp": fmt.now_iso()})
        self.save()

    def add_assistant(
        self,
        content: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        interrupted: bool = False,
    ) -> dict[str, Any] | None:
        """Append the model's reply (a string when it is only text); None if it was empty."""
        content = fmt.clean(content)  # a lone surrogate the model's JSON escaped is U+FFFD
        if not content:
            if usage:
                self.count_usage(usage)
                self.save()
            return None
        body: str | list[dict[str, Any]] = content
        if all(b.get("type") == "text" for b in content):
            body = "".join(b["text"] for b in content)
        message: dict[str, Any] = {"role": "assistant", "content": body, "timestamp": fmt.now_iso()}
        if usage:
            message["usage"] = usage
            self.count_usage(usage)
        if interrupted:
            message["interrupted"] = True
        self.messages.append(message)
        if usage:
            self.session.data["model"] = usage["model"]
        self.save()
        return message

    def count_usage(self, usage: dict[str, Any]) -> None:
        add_usage(self.session.data, usage)
        by_model = self.run_by_model.setdefault(
            str(usage.get("model")), dict.fromkeys(USAGE_KEYS, 0)
        )
        for key in USAGE_KEYS:
            self.run_usage[key] += int(usage.get(key, 0))
            by_model[key] += int(usage.get(key, 0))

    def start_results(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "user", "content": [], "timestamp": fmt.now_iso()}
        return message

    def add_result(
        self, holder: dict[str, Any], tool_use_id: str, text: str, is_error: bool
    ) -> None:
        """Add one tool_result to the results message (appended on its first result) and save."""
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": fmt.clean_text(text),  # file names and output as the OS gave them
        }
        if is_error:
            block["is_error"] = True
        holder["content"].append(block)
        if not any(m is holder for m in self.messages[-1:]):
            self.messages.append(holder)

    def record_call(
        self,
        name: str,
        fields: dict[str, Any],
        outcome: str,
        started: float,
        ended: float,
        tool_use_id: str,
    ) -> None:
        """Record one tool run in ``toolCalls`` (completing the entry ``pending_call`` made)."""
        duration = max(int((ended - started) * 1000), 0)
        for entry in reversed(self.session.tool_calls[-16:]):
            if entry.get("toolUseId") == tool_use_id and entry.get("outcome") == "running":
                entry.update(timestamp=fmt.now_iso(), outcome=outcome, durationMs=duration)
                return
        self.session.tool_calls.append(
            {
                "tool": name,
                **fmt.clean(fields),
                "timestamp": fmt.now_iso(),
                "outcome": outcome,
                "durationMs": duration,
                "toolUseId": tool_use_id,
            }
        )

    def pending_call(
        self, name: str, fields: dict[str, Any], tool_use_id: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a tool run about to change a file, with outcome ``running``, before it
        does: a crash then leaves the session naming the change (and its checkpoint)."""
        entry = {
            "tool": name,
            **fmt.clean(fields),
            **extra,
            "timestamp": fmt.now_iso(),
            "outcome": "running",
            "durationMs": 0,
            "toolUseId": tool_use_id,
        }
        self.session.tool_calls.append(entry)
        return entry


def last_exchange(messages: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The last thing the user typed, and the model's last text after it (for the banner)."""
    user_at = None
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user" and fmt.text_of(message.get("content")).strip():
            user_at = index
            break
    if user_at is None:
        return None, None
    user = fmt.text_of(messages[user_at].get("content"))
    reply = None
    for message in messages[user_at + 1 :]:
        if message.get("role") == "assistant":
            text = fmt.text_of(message.get("content"))
            if text.strip():
                reply = text
    return user, reply
