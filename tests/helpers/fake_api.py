"""A fake Anthropic Messages API on 127.0.0.1 for tests: real HTTP, real SSE, real validation.

The real ``anthropic`` SDK talks to it through ``ANTHROPIC_BASE_URL``. Replies come
from a scripted queue; every request body is recorded in ``.requests`` so a test can
check what the model was sent. Requests are validated the way the real API validates
what matters to Taurus (roles, tool_use/tool_result pairing, empty content, unknown
message fields); a violation is answered ``400 invalid_request_error`` with a message
in the API's words, and that body is not counted as a reply.

    api = FakeAPI().start()
    api.add(text("Hello!"))
    api.add(tool_use("read", {"file": "a.py"}), text("It defines main()."))
    api.add(fault(529), text("back again"))
    api.add(drop("partial reply that never ends", after=3))
    ...
    api.requests[-1]["messages"]   # the whole history the model received
    api.close()
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MESSAGE_FIELDS = {"role", "content"}
BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "cache_control", "title", "context", "citations"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
REQUEST_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "thinking",
    "service_tier",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_TEXT = {
    400: "invalid request",
    401: "invalid x-api-key",
    403: "permission denied",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}

_ids = itertools.count(1)


# -- replies --------------------------------------------------------------------------------
@dataclass
class Reply:
    """One scripted answer.

    ``blocks``: the content (``{"type": "text", "text": ...}`` or ``{"type": "tool_use",
    "id", "name", "input"}``). ``status`` != 200 makes it an HTTP error. ``drop_after``
    closes the connection after that many deltas (mid-stream). ``error_event`` sends an
    SSE ``error`` event after ``drop_after`` deltas instead of dropping. ``delay`` sleeps
    before each delta (to let a test interrupt a reply while it streams).
    """

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    error_event: str | None = None
    delay: float = 0.0
    chunk: int = 8  # characters of text per delta


def text(body: str, **kwargs: Any) -> Reply:
    return Reply(blocks=[{"type": "text", "text": body}], **kwargs)


def tool_use(
    name: str,
    input: dict[str, Any],
    preface: str | None = None,
    tool_id: str | None = None,
    **kwargs: Any,
) -> Reply:
    """A reply asking for one tool run (optionally after some text)."""
    blocks: list[dict[str, Any]] = []
    if preface:
        blocks.append({"type": "text", "text": preface})
    blocks.append(
        {
            "type": "tool_use",
            "id": tool_id or f"toolu_{next(_ids):06d}",
            "name": name,
            "input": input,
        }
    )
    return Reply(blocks=blocks, stop_reason="tool_use", **kwargs)


def tool_uses(calls: list[tuple[str, dict[str, Any]]], preface: str | None = None) -> Reply:
    """A reply asking for several tool runs at once."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": preface}] if preface else []
    for name, args in calls:
        blocks.append(
            {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": args}
        )
    return Reply(blocks=blocks, stop_reason="tool_use")


def fault(status: int, message: str | None = None, retry_after: float | None = None) -> Reply:
    """An HTTP error answer (401, 400, 429, 500, 529 ...), with ``retry-after`` if given."""
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    return Reply(status=status, message=message, headers=headers)


def drop(partial: str, after: int = 2, **kwargs: Any) -> Reply:
    """A streamed text reply whose connection is closed after ``after`` deltas."""
    return Reply(blocks=[{"type": "text", "text": partial}], drop_after=after, **kwargs)


def overloaded_midstream(partial: str, after: int = 1) -> Reply:
    """A stream that sends an ``overloaded_error`` SSE event after ``after`` deltas."""
    return Reply(
        blocks=[{"type": "text", "text": partial}], drop_after=after, error_event="overloaded_error"
    )


def slow(body: str, delay: float = 0.2, chunk: int = 4) -> Reply:
    """A text reply streamed slowly, ``chunk`` characters every ``delay`` seconds."""
    return Reply(blocks=[{"type": "text", "text": body}], delay=delay, chunk=chunk)


# -- validation -----------------------------------------------------------------------------
class Invalid(Exception):
    pass


def _combined_turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[int], list[Any]]]:
    """Consecutive same-role messages form one turn, as the API combines them."""
    turns: list[tuple[str, list[int], list[Any]]] = []
    for index, message in enumerate(messages):
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if turns and turns[-1][0] == message["role"]:
            turns[-1][1].append(index)
            turns[-1][2].extend(blocks)
        else:
            turns.append((message["role"], [index], blocks))
    return turns


def validate_request(body: Any) -> None:
    """Raise Invalid(message) where the real Messages API would answer 400."""
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Invalid("messages: Field required")
    if not messages:
        raise Invalid("messages: at least one message is required")
    tool_names = set()
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise Invalid(f"tools.{i}.name: Field required")
        if "input_schema" not in tool:
            raise Invalid(f"tools.{i}.input_schema: Field required")
        if tool["name"] in tool_names:
            raise Invalid("tools: Tool names must be unique.")
        tool_names.add(tool["name"])
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(f"messages.{i}: Input should be a valid dictionary")
        for key in message:
            if key not in MESSAGE_FIELDS:
                raise Invalid(f"messages.{i}.{key}: Extra inputs are not permitted")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise Invalid(f"messages.{i}.content: Field required")
        content = message["content"]
        if isinstance(content, str):
            if not content:
                raise Invalid(f"messages.{i}: {role} messages must have non-empty content")
            continue
        if not isinstance(content, list):
            raise Invalid(f"messages.{i}.content: Input should be a valid string or list")
        if not content:
            raise Invalid(f"messages.{i}: {role} messages must have non-empty content")
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if not isinstance(block, dict) or block.get("type") not in BLOCK_FIELDS:
                raise Invalid(f"{where}: Input tag does not match any of the expected tags")
            kind = block["type"]
            for key in block:
                if key not in BLOCK_FIELDS[kind]:
                    raise Invalid(f"{where}.{kind}.{key}: Extra inputs are not permitted")
            if kind == "text":
                if not isinstance(block.get("text"), str):
                    raise Invalid(f"{where}.text.text: Field required")
                if not block["text"]:
                    raise Invalid(f"{where}: text content blocks must be non-empty")
                if not block["text"].strip():
                    raise Invalid("messages: text content blocks must contain non-whitespace text")
            elif kind == "tool_use":
                if role != "assistant":
                    raise Invalid(
                        f"{where}: tool_use blocks are only allowed in assistant messages"
                    )
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise Invalid(f"{where}.tool_use: id and name are required")
                if not isinstance(block.get("input"), dict):
                    raise Invalid(f"{where}.tool_use.input: Input should be a valid dictionary")
                if block["id"] in seen_ids:
                    raise Invalid(f"{where}: `tool_use` ids must be unique")
                seen_ids.add(block["id"])
            elif kind == "tool_result":
                if role != "user":
                    raise Invalid(f"{where}: tool_result blocks are only allowed in user messages")
                if not isinstance(block.get("tool_use_id"), str):
                    raise Invalid(f"{where}.tool_result.tool_use_id: Field required")
                inner = block.get("content")
                if inner is not None and not isinstance(inner, str | list):
                    raise Invalid(f"{where}.tool_result.content: Input should be a string or list")
    turns = _combined_turns(messages)
    if turns[0][0] != "user":
        raise Invalid('messages: first message must use the "user" role')
    for t, (role, indexes, blocks) in enumerate(turns):
        where = f"messages.{indexes[0]}"
        if role == "user":
            kinds = [b["type"] for b in blocks]
            if "tool_result" in kinds:
                first_other = next(
                    (k for k, kind in enumerate(kinds) if kind != "tool_result"), None
                )
                if first_other is not None and "tool_result" in kinds[first_other:]:
                    raise Invalid(
                        f"{where}: `tool_result` blocks must come first in the user message, "
                        "before any other content"
                    )
                previous = turns[t - 1][2] if t > 0 else []
                uses = {b["id"] for b in previous if b["type"] == "tool_use"}
                for k, b in enumerate(blocks):
                    if b["type"] == "tool_result" and b["tool_use_id"] not in uses:
                        raise Invalid(
                            f"{where}.content.{k}: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {b['tool_use_id']}. Each `tool_result` block "
                            "must have a corresponding `tool_use` block in the previous message."
                        )
        else:
            uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
            if not uses:
                continue
            following = turns[t + 1][2] if t + 1 < len(turns) else []
            answered = {b.get("tool_use_id") for b in following if b["type"] == "tool_result"}
            missing = [u for u in uses if u not in answered]
            if missing:
                raise Invalid(
                    f"{where}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
    last_role, _, last_blocks = turns[-1]
    if last_role == "assistant":
        tail = last_blocks[-1]
        if tail["type"] == "text" and tail["text"] != tail["text"].rstrip():
            raise Invalid("final assistant content cannot end with trailing whitespace")


def without_cache(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with ``cache_control`` removed; a lone text block that carried one becomes the
    plain string it was."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            marked = any(isinstance(b, dict) and "cache_control" in b for b in content)
            blocks = [
                {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
                for b in content
            ]
            if marked and len(blocks) == 1 and blocks[0].get("type") == "text":
                content = blocks[0]["text"]
            else:
                content = blocks
        out.append({**message, "content": content})
    return out


def estimate_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


# -- the server -----------------------------------------------------------------------------
class FakeAPI:
    """The fake server. ``add()`` replies; read ``requests``; ``close()`` when done."""

    def __init__(self, default: Callable[[dict[str, Any]], Reply] | Reply | None = None) -> None:
        self.replies: list[Reply | Callable[[dict[str, Any]], Reply]] = []
        self.requests: list[dict[str, Any]] = []  # every body received, valid or not
        self.headers: list[dict[str, str]] = []
        self.rejected: list[tuple[dict[str, Any], str]] = []  # (body, 400 message)
        self.default = default if default is not None else text("OK.")
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # scripting
    def add(self, *replies: Reply | Callable[[dict[str, Any]], Reply]) -> FakeAPI:
        with self.lock:
            self.replies.extend(replies)
        return self

    @property
    def pending(self) -> int:
        return len(self.replies)

    @property
    def base_url(self) -> str:
        assert self.server is not None, "start() the server first"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def last_messages(self) -> list[dict[str, Any]]:
        return self.requests[-1]["messages"]

    def sent(self, index: int = -1) -> list[dict[str, Any]]:
        """The messages of request ``index`` without prompt-cache marks (as they were stored)."""
        return without_cache(self.requests[index]["messages"])

    def start(self) -> FakeAPI:
        api = self

        class Handler(_Handler):
            owner = api

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            item = self.replies.pop(0) if self.replies else self.default
        return item(body) if callable(item) else item


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # plumbing
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{next(_ids)}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = ERROR_TYPES.get(status, "api_error")
        self._send_json(
            status, {"type": "error", "error": {"type": kind, "message": message}}, headers
        )

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

    def do_GET(self) -> None:
        self._error(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "request body is not valid JSON")
            return
        owner = self.owner
        if path.endswith("/v1/messages/count_tokens"):
            if not (self.headers.get("x-api-key") or self.headers.get("authorization")):
                self._error(401, "x-api-key header is required")
                return
            self._send_json(200, {"input_tokens": estimate_tokens(body.get("messages"))})
            return
        if not path.endswith("/v1/messages"):
            self._error(404, f"no route for POST {self.path}")
            return
        with owner.lock:
            owner.requests.append(body)
            owner.headers.append({k.lower(): v for k, v in self.headers.items()})
        if not (self.headers.get("x-api-key") or self.headers.get("authorization")):
            self._error(401, "x-api-key header is required")
            return
        try:
            validate_request(body)
        except Invalid as exc:
            with owner.lock:
                owner.rejected.append((body, str(exc)))
            self._error(400, str(exc))
            return
        reply = owner.next_reply(body)
        if reply.status != 200:
            self._error(
                reply.status,
                reply.message or ERROR_TEXT.get(reply.status, "error"),
                reply.headers,
            )
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._send_json(200, self._message(body, reply, reply.blocks))

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        out_text = json.dumps(reply.blocks)
        usage = {
            "input_tokens": estimate_tokens(body.get("messages")),
            "output_tokens": max(1, len(out_text) // 4),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        usage.update(reply.usage)
        return usage

    def _message(
        self, body: dict[str, Any], reply: Reply, content: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": f"msg_fake_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": reply.stop_reason or "end_turn",
            "stop_sequence": None,
            "usage": self._usage(body, reply),
        }

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_fake_{next(_ids)}")
        self.end_headers()
        usage = self._usage(body, reply)
        start = self._message(body, reply, [])
        start["stop_reason"] = None
        start["usage"] = {**usage, "output_tokens": 1}
        deltas = 0
        try:
            self._event("message_start", {"type": "message_start", "message": start})
            self._event("ping", {"type": "ping"})
            for index, block in enumerate(reply.blocks):
                if block["type"] == "text":
                    first = {"type": "text", "text": ""}
                    body_text = block["text"]
                    pieces = [
                        {"type": "text_delta", "text": body_text[k : k + reply.chunk]}
                        for k in range(0, len(body_text), reply.chunk)
                    ]
                else:
                    first = {**block, "input": {}}
                    encoded = json.dumps(block["input"])
                    pieces = [
                        {"type": "input_json_delta", "partial_json": encoded[k : k + 12]}
                        for k in range(0, len(encoded), 12)
                    ]
                self._event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
                for piece in pieces:
                    if reply.drop_after is not None and deltas >= reply.drop_after:
                        self._cut(reply)
                        return
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": piece},
                    )
                    deltas += 1
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
            if reply.drop_after is not None:
                self._cut(reply)
                return
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": reply.stop_reason or "end_turn",
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            self._event("message_stop", {"type": "message_stop"})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _cut(self, reply: Reply) -> None:
        """End the stream abnormally: an SSE error event, or a dropped connection."""
        self.close_connection = True
        if reply.error_event:
            self._event(
                "error",
                {
                    "type": "error",
                    "error": {"type": reply.error_event, "message": "Overloaded"},
                },
            )
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()


__all__ = [
    "FakeAPI",
    "Invalid",
    "Reply",
    "drop",
    "fault",
    "overloaded_midstream",
    "slow",
    "text",
    "tool_use",
    "tool_uses",
    "validate_request",
    "without_cache",
]
