"""The session file format: one JSON document per session, friendly to jq and grep.

    {"sessionId": "abc123", "created": "2025-01-18T10:23:45.123Z", "updated": "...",
     "messages": [{"role": "user", "content": "..."}, ...],
     "toolCalls": [{"tool": "read", "file": "src/a.py", "timestamp": "..."}]}

A message's ``content`` is a plain string for plain text and the Anthropic
content-block list when it holds tool use or results. Fields Taurus does not know
are kept as they are on load and save.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import string
from datetime import UTC, date, datetime
from typing import Any

import orjson

FORMAT_VERSION = 1
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FILENAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})_([A-Za-z0-9_-]{1,64})\.json$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 8
PLACEHOLDER_IDS = {"", "new"}


def new_id() -> str:
    import secrets  # only to make an id (with hmac and hashlib, a few ms of every start-up)

    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_valid_token(text: str) -> bool:
    """True for an id or name a user may give: ``[A-Za-z0-9_-]{1,64}``."""
    return bool(TOKEN_RE.match(text))


def file_name(created: date | datetime, session_id: str) -> str:
    return f"{created.strftime('%Y-%m-%d')}_{session_id}.json"


def split_file_name(name: str) -> tuple[str, str] | None:
    """``("2025-01-18", "abc123")`` for ``2025-01-18_abc123.json``, else None."""
    match = FILENAME_RE.match(name)
    return (match.group(1), match.group(2)) if match else None


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: ``2025-01-18T10:23:45.123Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return format_time(datetime.now(UTC))


def parse_time(text: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp (``Z`` or offset); None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC time
        return None
    if year in (1, 9999):  # a day from the calendar's ends: no local time in every zone
        return None
    return moment


def dumps(document: Any) -> bytes:
    """Serialise a session document: two-space indented UTF-8 JSON and a final newline.

    The result is always valid UTF-8: a lone surrogate anywhere in the document (an
    undecodable byte carried by ``surrogateescape`` from a file name, a prompt or a
    tool's output, or a lone ``\\ud800`` from the model) is written as U+FFFD.
    """
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    except (TypeError, orjson.JSONEncodeError):
        pass
    # integers beyond 64 bits, lone surrogates: the standard library, on a cleaned copy
    text = json.dumps(clean(document), indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8")


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate as U+FFFD, so it always encodes as UTF-8.

    Undecodable bytes read with ``surrogateescape`` (a file name, a prompt, a tool's
    output) and lone ``\\ud800`` escapes both become the replacement mark.
    """
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def clean(value: Any) -> Any:
    """A copy of a JSON-like value whose every string (keys too) is ``clean_text``-ed.

    Iterative, so a document as deep as a JSON reader allows is no RecursionError.
    """
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, dict | list | tuple):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, copy = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, child in pairs:
            if isinstance(child, str):
                child = clean_text(child)
            elif isinstance(child, dict | list | tuple):
                inner: Any = {} if isinstance(child, dict) else []
                stack.append((child, inner))
                child = inner
            if isinstance(copy, dict):
                copy[clean_text(key) if isinstance(key, str) else key] = child
            else:
                copy.append(child)
    return root


MARK_ERRORS = "taurus-replacement-mark"


def _mark_error(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Codec error handler: what cannot be encoded becomes U+FFFD (``?`` outside UTF-8).

    The mark is given as UTF-8 bytes: the UTF-8 encoder takes no non-ASCII text back
    from an error handler."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    count = exc.end - exc.start
    if exc.encoding.replace("-", "").replace("_", "").lower() == "utf8":
        return "\ufffd".encode() * count, exc.end
    return "?" * count, exc.end


codecs.register_error(MARK_ERRORS, _mark_error)


def decode_text(data: bytes) -> str:
    """Bytes as text for a session: UTF-8, each invalid byte as U+FFFD."""
    return data.decode("utf-8", "replace")


def name_bytes(name: str) -> bytes | None:
    """The bytes of a file name the OS gave (``surrogateescape``) that is not valid UTF-8.

    None when ``name`` is valid text, or holds a lone surrogate no file name can carry.
    """
    if not _LONE_SURROGATE.search(name):
        return None
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def name_fields(key: str, name: str) -> dict[str, str]:
    """A file name as JSON fields, reversibly: ``{key: name}`` when it is valid UTF-8.

    Otherwise ``key`` holds the name with each undecodable byte as U+FFFD (what a person
    reads) and ``keyBytes`` the exact bytes in base64 (what ``name_from`` gives back).
    """
    raw = name_bytes(name)
    if raw is None:
        return {key: clean_text(name)}
    return {key: clean_text(name), f"{key}Bytes": base64.b64encode(raw).decode("ascii")}


def name_from(entry: Any, key: str) -> str:
    """The file name ``name_fields`` stored under ``key``, exactly as the OS gave it.

    Raises ValueError (or KeyError) when the entry does not hold one.
    """
    raw = entry.get(f"{key}Bytes") if isinstance(entry, dict) else None
    if raw is None:
        value = entry[key]
        if not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
        return value
    if not isinstance(raw, str):
        raise ValueError(f"{key}Bytes is not a string")
    try:
        data = base64.b64decode(raw.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"{key}Bytes is not base64") from exc
    if b"\0" in data:
        raise ValueError(f"{key}Bytes holds a NUL byte")
    return data.decode("utf-8", "surrogateescape")


def _has_long_number(raw: bytes | bytearray | memoryview) -> bool:
    """True if the bytes hold a run of 19 or more digits (cheap: one C pass)."""
    return b"0" * 19 in bytes(raw).translate(_DIGITS_ZERO)


_DIGITS_ZERO = bytes(0x30 if 0x30 <= ch <= 0x39 else 0x20 for ch in range(256))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _std_loads(text: str) -> Any:
    """The standard library's parse, made as safe as orjson's.

    Nesting too deep for it is invalid JSON (ValueError, not RecursionError), and a
    lone surrogate escape (``"\\ud800"``, which orjson and jq refuse and no UTF-8
    writer can write back) reads as U+FFFD, so every reader can print and save it.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    if "\\u" in text or _LONE_SURROGATE.search(text):
        return clean(value)
    return value


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; raises ValueError (json.JSONDecodeError or orjson's) when invalid.

    orjson reads integers beyond 64 bits as floats, silently; a document holding a
    run of 19+ digits goes to the standard library, which keeps them exact.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _has_long_number(raw):
        try:
            return _std_loads(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text: {exc}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"not UTF-8 text: {exc}") from None
        else:
            text = data
        return _std_loads(text)  # numbers orjson refuses (huge ints); raises JSONDecodeError


def text_of(content: Any) -> str:
    """The plain text of a message's content (string or block list), blocks joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: each control character (ESC, BEL, C1 ...) becomes U+FFFD.

    A session file may come from someone else; its escape sequences must not retitle the
    terminal or write the clipboard (OSC 52) when a command prints it. Length is kept.
    """
    return _CONTROL.sub("\ufffd", text)


def one_line(text: str, width: int | None = None) -> str:
    line = printable(" ".join(text.split()))
    if width is not None and len(line) > width:
        line = line[: max(width - 1, 0)] + "…"
    return line
