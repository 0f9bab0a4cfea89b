"""Talking to the model: the ``anthropic`` SDK, streaming, retries, and errors in one line.

This is the only module that imports the SDK, and only when a reply is requested
(``taurus --help`` and the ``taurus-ops`` commands never load it). Retries: 429,
500-504 and 529 answers and connection failures before any reply arrived are retried
with exponential backoff, honouring ``retry-after``. A stream that breaks after the
reply began is not retried: what arrived is returned, marked interrupted.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import TaurusError
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    import anthropic

KEY_HELP = (
    "no API key: set one with `export ANTHROPIC_API_KEY=sk-ant-...` "
    "(for a proxy or an Anthropic-compatible server also set ANTHROPIC_BASE_URL=http://host:port)"
)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
MAX_RETRY_AFTER = 60.0


class NoApiKey(TaurusError):
    exit_code = 2

    def __init__(self) -> None:
        super().__init__(KEY_HELP)


class ApiError(TaurusError):
    """The API refused a request or could not be reached; the message is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Reply:
    """One model reply as it was received (perhaps partly)."""

    content: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)  # raw API usage fields
    stop_reason: str | None = None
    model: str = ""
    interrupted: bool = False
    error: str | None = None  # why an interrupted reply stopped

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")


@dataclass
class Events:
    """Callbacks the client calls while a reply streams (all optional)."""

    on_text: Callable[[str], None] = lambda text: None
    on_tool: Callable[[str], None] = lambda name: None
    on_notice: Callable[[str], None] = lambda text: None
    on_start: Callable[[], None] = lambda: None  # the API accepted the request: a reply begins
    on_usage: Callable[[dict[str, Any]], None] = lambda usage: None  # token counts so far


def credentials(environ: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    env = os.environ if environ is None else environ
    key = env.get("ANTHROPIC_API_KEY") or None
    token = env.get("ANTHROPIC_AUTH_TOKEN") or None
    return key, token


def check_credentials(environ: dict[str, str] | None = None) -> None:
    key, token = credentials(environ)
    if not key and not token:
        raise NoApiKey()


_preload: threading.Thread | None = None


def preload_sdk() -> None:
    """Import the SDK in the background while the user types the first message."""
    global _preload
    if _preload is None:

        def load() -> None:
            time.sleep(0.3)  # let the prompt draw first
            try:
                import anthropic  # noqa: F401
            except Exception:
                pass

        _preload = threading.Thread(target=load, name="taurus-sdk-preload", daemon=True)
        _preload.start()


class ModelClient:
    def __init__(
        self,
        model: str,
        max_tokens: int,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        prompt_caching: bool = True,
    ) -> None:
        check_credentials()
        self.model = model
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep
        self.prompt_caching = prompt_caching
        self._sdk: anthropic.Anthropic | None = None

    @property
    def sdk(self) -> anthropic.Anthropic:
        if self._sdk is None:
            import anthropic

            key, token = credentials()
            self._sdk = anthropic.Anthropic(
                api_key=key,
                auth_token=None if key else token,
                max_retries=0,  # retries are ours, so the user sees them
                timeout=self.timeout,
            )
        return self._sdk

    @property
    def base_url(self) -> str:
        return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"

    # -- one reply, with retries ---------------------------------------------------------------
    def reply(
        self,
        messages: list[dict[str, Any]],
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        events: Events | None = None,
        max_tokens: int | None = None,
    ) -> Reply:
        """Stream one reply. Raises ApiError when it cannot be had; returns a partial reply,
        ``interrupted`` set, when the stream broke (or Ctrl+C stopped it) after it began."""
        events = events or Events()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._stream_once(messages, system, tools, events, max_tokens)
            except _Retryable as exc:
                if attempt > self.max_retries:
                    raise ApiError(
                        f"{exc.message} (gave up after {attempt} attempts)", exc.status
                    ) from None
                wait = exc.retry_after
                if wait is None:
                    wait = min(self.backoff * 2 ** (attempt - 1), 30.0) * (
                        0.75 + random.random() / 2
                    )
                events.on_notice(
                    f"{exc.message}; retrying in {wait:.1f} s (attempt {attempt + 1} of {self.max_retries + 1})"
                )
                self.sleep(wait)

    def _request(
        self,
        messages: list[dict[str, Any]],
        system: str | None,
        tools: list[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        messages = fmt.clean(messages)  # valid UTF-8 only: no lone surrogate reaches the API
        system = fmt.clean_text(system) if system else system  # (the cwd may not be UTF-8)
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens or self.max_tokens,
            "messages": with_cache_point(messages) if self.prompt_caching else messages,
        }
        if system:
            params["system"] = (
                [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
                if self.prompt_caching
                else system
            )
        if tools:
            params["tools"] = tools
        return params

    def _stream_once(
        self,
        messages: list[dict[str, Any]],
        system: str | None,
        tools: list[dict[str, Any]] | None,
        events: Events,
        max_tokens: int | None,
    ) -> Reply:
        import anthropic

        got = _Assembly(Reply(model=self.model), events, self.model)
        reply = got.reply
        stream = None
        try:
            stream = self.sdk.messages.create(
                **self._request(messages, system, tools, max_tokens), stream=True
            )
            for event in stream:
                got.take(event)
        except KeyboardInterrupt:
            _close(stream)
            reply.interrupted = True
            reply.error = "stopped with Ctrl+C"
        except anthropic.APIStatusError as exc:
            _close(stream)
            if got.started:  # an error event in the middle of the stream
                reply.interrupted = True
                reply.error = f"the API stopped the reply ({_api_type(exc)}: {_api_message(exc)})"
            else:
                raise self._status_error(exc) from None
        except Exception as exc:  # connection dropped, timeout, broken SSE ...
            _close(stream)
            if not _is_connection_error(exc):
                raise
            if not got.started or not got.has_content():
                raise _Retryable(f"connection to {self.base_url} failed ({_short(exc)})") from None
            reply.interrupted = True
            reply.error = f"the connection dropped mid-reply ({_short(exc)})"
        else:
            _close(stream)
            if reply.stop_reason is None:
                reply.interrupted = True
                reply.error = "the reply stream ended early"
        reply.content = _final_blocks(got.blocks, got.finished, reply.interrupted)
        return reply

    def _status_error(self, exc: Any) -> Exception:
        status = getattr(exc, "status_code", None)
        headers = getattr(getattr(exc, "response", None), "headers", {}) or {}
        should = headers.get("x-should-retry")
        if (status in RETRY_STATUS and should != "false") or should == "true":
            return _Retryable(describe_status(exc), status, _retry_after(headers))
        return ApiError(describe_status(exc), status)


@dataclass
class _Assembly:
    """One reply put together from its stream events as they arrive: the content blocks
    so far, the JSON of tool input still arriving, which blocks are complete."""

    reply: Reply
    events: Events
    model: str  # the model asked for: the reply's unless the API names another
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    partial_json: dict[int, str] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    started: bool = False  # the API accepted the request and the reply began

    def take(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self._message_start(event)
        elif kind == "content_block_start":
            self._block_start(event)
        elif kind == "content_block_delta":
            self._block_delta(event)
        elif kind == "content_block_stop":
            self._block_stop(event)
        elif kind == "message_delta":
            self.reply.stop_reason = event.delta.stop_reason
            self.reply.usage.update({k: v for k, v in _usage_dict(event.usage).items() if v})

    def has_content(self) -> bool:
        return any(_has_content(b) for b in self.blocks.values())

    def _message_start(self, event: Any) -> None:
        self.started = True
        self.reply.model = getattr(event.message, "model", None) or self.model
        self.reply.usage = _usage_dict(event.message.usage)
        self.events.on_start()
        self.events.on_usage(dict(self.reply.usage))

    def _block_start(self, event: Any) -> None:
        block = event.content_block.to_dict()
        if block.get("type") == "tool_use":
            block["input"] = {}
            self.partial_json[event.index] = ""
            self.events.on_tool(block.get("name", "?"))
        self.blocks[event.index] = block

    def _block_delta(self, event: Any) -> None:
        delta = event.delta
        target = self.blocks.setdefault(event.index, {"type": "text", "text": ""})
        if delta.type == "text_delta":
            target["text"] = target.get("text", "") + delta.text
            self.events.on_text(delta.text)
        elif delta.type == "input_json_delta":
            self.partial_json[event.index] = (
                self.partial_json.get(event.index, "") + delta.partial_json
            )

    def _block_stop(self, event: Any) -> None:
        block = self.blocks.get(event.index)
        if block is not None and block.get("type") == "tool_use":
            raw = self.partial_json.get(event.index, "")
            try:
                block["input"] = json.loads(raw) if raw.strip() else {}
            except ValueError:
                block["input"] = {}
                block["_bad_json"] = raw
        self.finished.add(event.index)


EPHEMERAL = {"type": "ephemeral"}


def with_cache_point(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history with a prompt-cache breakpoint on its last block (the stored history is
    not changed): the next request reads everything before it from the cache."""
    if not messages:
        return messages
    last = messages[-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if not blocks or blocks[-1].get("type") not in ("text", "tool_result", "tool_use", "image"):
        return messages
    blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
    return [*messages[:-1], {**last, "content": blocks}]


class _Retryable(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if 0 <= seconds <= MAX_RETRY_AFTER:
            return seconds
    return None


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc)).splitlines()[0]


def _api_type(exc: Any) -> str:
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, dict) else None
    return str(inner.get("type")) if isinstance(inner, dict) and inner.get("type") else "error"


def describe_status(exc: Any) -> str:
    """One line for an API error answer, saying what to do about it."""
    status = getattr(exc, "status_code", None)
    detail = _api_message(exc)
    if status == 401:
        return f"the API refused the key (401: {detail}); check ANTHROPIC_API_KEY"
    if status == 403:
        return f"the key may not do this (403: {detail})"
    if status == 404:
        return f"not found (404: {detail}); check the model name and ANTHROPIC_BASE_URL"
    if status == 413:
        return f"the request is too large (413: {detail}); run /compact"
    if status == 429:
        return f"rate limited (429: {detail})"
    if status == 529:
        return f"the API is overloaded (529: {detail})"
    if status == 400:
        if "prompt is too long" in detail or ("context" in detail and "exceed" in detail):
            return f"the conversation is too long for the model (400: {detail}); run /compact"
        return f"the API refused the request (400: {detail})"
    if status is None:  # an error event inside the stream
        return f"the API stopped the reply ({detail})"
    return f"the API answered {status}: {detail}"


def _is_connection_error(exc: BaseException) -> bool:
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError | OSError | TimeoutError):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("httpx", "httpcore", "h11", "ssl", "socket"))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _usage_dict(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    if hasattr(usage, "to_dict"):
        usage = usage.to_dict()
    return {k: v for k, v in dict(usage).items() if isinstance(v, int)}


def _has_content(block: dict[str, Any]) -> bool:
    return bool(block.get("text")) or block.get("type") == "tool_use"


def _final_blocks(
    blocks: dict[int, dict[str, Any]], finished: set[int], interrupted: bool
) -> list[dict[str, Any]]:
    """The reply's content in order. Of an interrupted reply only its text is kept (a tool
    request that never finished arriving is dropped: nothing was run). Text and tool input
    are valid UTF-8 text."""
    out: list[dict[str, Any]] = []
    for index in sorted(blocks):
        block = blocks[index]
        kind = block.get("type")
        if kind == "text":
            if block.get("text"):
                out.append({"type": "text", "text": block["text"]})
        elif kind == "tool_use" and not interrupted and index in finished:
            clean: dict[str, Any] = {
                k: block[k] for k in ("type", "id", "name", "input") if k in block
            }
            out.append(clean)
    return fmt.clean(out)  # what the model escaped as a lone surrogate is U+FFFD from here on


def _close(stream: Any) -> None:
    if stream is None:
        return
    try:
        stream.close()
    except Exception:
        pass
