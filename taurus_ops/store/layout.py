"""Session files read and written a message at a time, and saves that copy unchanged bytes.

Taurus writes a session as two-space indented JSON (``format.dumps``). In that layout
each message of the top-level ``messages`` array opens on a line ``    {`` and closes on
a line ``    }``: a JSON string holds no raw line break, so every line break is
structural. Reading a large file cuts the array at those lines and parses one message
at a time from a small buffer, so the file's bytes never sit in memory beside the
document parsed from them. Writing serialises a few hundred messages at a time straight
into the temporary file of an atomic save (store/atomic.py).

A save after a change copies the bytes of the messages that did not change from the
file it replaces (``copy_file_range``: inside the kernel, no parsing, no copy in this
process) instead of serialising them again. What it may copy is the :class:`Image` of
that file, made when it was read or written: the file's identity (device, inode, size,
modification time) and where each message ends in it, with the message objects as they
were. A message is reused while it is the very same object at the same position and is
not the last one saved: Taurus edits only the last message in place (the chat adds tool
results to it) and replaces any other it changes (``messages[i] = {...}``), so a
message's identity says it is unchanged. A file whose identity changed (written by
anything else) is written whole.

Any file not in this layout (compact JSON, other indentation, a ``messages`` that is not
a list of objects) is read whole by ``session.parse_session``, as every file once was.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from array import array
from dataclasses import dataclass
from itertools import islice
from operator import is_
from pathlib import Path
from typing import Any

import orjson

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, write_all
from taurus_ops.store.session import LARGE, Session, gc_paused, parse_session, session_of

REUSE_FROM = 64 << 10  # bytes of unchanged messages worth copying rather than serialising
BLOCK = 1 << 20  # bytes read, or gathered before a write, at a time
CHUNK = 256  # messages serialised in one call
HEAD_WITHIN = 4 << 20  # the messages array begins in this many bytes, or the file is read whole

_OPEN = b'\n  "messages": ['  # the top-level key's line in the layout
_FIRST = b"\n    {"  # a message's opening line
_END = b"\n    }"  # a message's closing line
_CLOSE = b"\n  ]"  # the array's closing line
_ARRAY_OF_OBJECTS = b'": [\n    {'  # the end of a top-level key's line, and its first item's
SHARED = ("role", "type", "name", "model", "tool", "outcome")  # keys of oft-repeated values
SHARED_LENGTH = 64  # a longer value of one is left as it is (it may be anything)
ITEMS_BLOCK = 1 << 18  # bytes of toolCalls items parsed at a time (their parse tree: 3-4x)
TAIL_WHOLE = 1 << 20  # bytes after the messages array that are parsed in one piece at most
_WRAP = (len(b'{\n  "m": ['), len(b"\n  ]\n}"))  # around messages serialised as {"m": [...]}
_COMMA = ord(",")
_LONG_RUN = b"0" * 19  # as format.loads: 19 digits or more may be past 64 bits
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= ch <= 0x39 else 0x20 for ch in range(256))
# A number in JSON has ``:``, ``[`` or ``,`` before it and ``,``, ``]`` or ``}`` after it (blanks
# aside), so with every other byte left out its digits still stand alone; digits in strings
# may run together (a hash, numbers between words), which only sends a window the exact way
_NOT_NEAR_NUMBERS = bytes(ch for ch in range(256) if not (0x30 <= ch <= 0x39 or ch in b",:[]}"))
WINDOW = 64 << 10  # bytes looked at for long numbers at a time
_OVERLAP = 32  # longer than a run that matters, so none falls between two windows
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}

Identity = tuple[int, int, int, int]


@dataclass
class Image:
    """Where the messages of a session file are, and what the file was."""

    identity: Identity  # (st_dev, st_ino, st_size, st_mtime_ns) of the file
    base: int  # offset of the first message's text: just after the array's ``[``
    ends: array[int]  # where each message's text ends, counted from ``base``
    messages: list[Any]  # the message objects as read or written, position by position
    copied: int = 0  # bytes the save that wrote the file copied from the one before


def identity_of(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _NotLaidOut(Exception):
    """The file is not in the layout (or not valid JSON): read it whole instead."""


class _Changed(Exception):
    """The file to copy from ended before its image said it would."""


# -- reading ---------------------------------------------------------------------------------
def load_session(path: Path, stream_from: int = LARGE) -> Session:
    """The session in the file ``path``; a file of ``stream_from`` bytes or more in the
    layout is read a message at a time and remembers its image. Raises what opening the
    file raises, and SessionFormatError for a file that is not a session."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_size >= stream_from and stat.S_ISREG(st.st_mode):
            found = _read_laid_out(fd, st)
            if found is not None:
                session = session_of(found[0], path)
                session.image = found[1]
                return session
            os.lseek(fd, 0, os.SEEK_SET)
        with open(fd, "rb", closefd=False) as handle:
            raw = handle.read()
    finally:
        os.close(fd)
    return parse_session(raw, path)


def _read_laid_out(fd: int, st: os.stat_result) -> tuple[Any, Image | None] | None:
    """(document, image) of the open file, or None when it is not in the layout."""
    reader = _Reader(fd)
    try:
        with gc_paused():
            data, image = reader.read()
    except _NotLaidOut:
        return None
    # changed while it was read: the document is what was read, but no copy may trust it
    return data, image if image.identity == identity_of(st) else None


class _Reader:
    """The file read in blocks; ``buf`` holds what is not consumed yet, from ``start``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.start = 0  # file offset of buf[0]
        self.eof = False
        self.long_runs: list[int] = []  # file offsets of windows that may hold a long number
        self._last = b""  # the end of the previous block (a run may straddle two)

    def more(self, keep: int) -> bool:
        """Read a block, dropping what comes before ``buf[keep]``; False at the end."""
        chunk = b"" if self.eof else os.read(self.fd, BLOCK)
        if not chunk:
            self.eof = True
            return False
        self._note_long_runs(chunk)
        self.start += keep
        self.buf = self.buf[keep:] + chunk
        return True

    def rest(self, first: bytes) -> bytearray:
        """The rest of the file, ``first`` (what is left of the buffer) and every block
        after it, in one buffer that grows in place."""
        out = bytearray(first)
        while self.more(len(self.buf)):
            out += self.buf
        return out

    def _note_long_runs(self, chunk: bytes) -> None:
        """Remember the windows where a number may run to 19 digits or more: a message
        there is read the exact way (format.loads), every other one by orjson alone."""
        scanned = self._last + chunk
        origin = self.start + len(self.buf) - len(self._last)
        for at in range(0, len(scanned), WINDOW):
            window = scanned[at : at + WINDOW + _OVERLAP]
            if _LONG_RUN in window.translate(_DIGITS_AS_ZERO, _NOT_NEAR_NUMBERS):
                self.long_runs += [origin + at, origin + at + len(window)]
        self._last = chunk[-_OVERLAP:]

    def read(self) -> tuple[dict[str, Any], Image]:
        while (at := self.buf.find(_OPEN)) < 0:
            if len(self.buf) > HEAD_WITHIN or not self.more(0):
                raise _NotLaidOut
        head = self.buf[: at + len(_OPEN) - 1]  # up to the array's "["
        pos = at + len(_OPEN)
        base = self.start + pos
        messages: list[Any] = []
        ends = array("q")
        add, mark, loads, share = messages.append, ends.append, orjson.loads, _share
        shared: dict[str, str] = {}
        buf, view, start = self.buf, memoryview(self.buf), self.start
        lookahead = len(_END) + len(_CLOSE)
        seen = 0  # in long_runs: the first window not wholly before the message being read
        while True:
            end = buf.find(_END, pos)
            if end < 0 or len(buf) - end < lookahead:  # the message goes on in the next block
                if not self.more(pos):
                    raise _NotLaidOut
                buf, view, start, pos = self.buf, memoryview(self.buf), self.start, 0
                continue
            if not buf.startswith(_FIRST, pos):
                raise _NotLaidOut
            end += len(_END)
            runs = self.long_runs  # [start, end, start, end ...] of windows, in order
            while seen < len(runs) and runs[seen + 1] <= start + pos:
                seen += 2  # windows before this message
            if seen < len(runs) and runs[seen] < start + end:
                message = _exactly(view[pos:end])
            else:
                try:
                    message = loads(view[pos:end])
                except orjson.JSONDecodeError:
                    message = _exactly(view[pos:end])
            share(message, shared)  # at once, so the next message reuses what it frees
            add(message)
            mark(start + end - base)
            if buf[end] == _COMMA:
                pos = end + 1
            elif buf.startswith(_CLOSE, end):
                pos = end + len(_CLOSE)
                break
            else:
                raise _NotLaidOut
        view.release()
        # the fields after the array (toolCalls and the like), handed over whole, so
        # that _whole can let them go once it has cut out their large arrays
        data = _whole(head, self.rest(buf[pos:]), shared)
        data["messages"] = messages
        st = os.fstat(self.fd)
        whole = self.start + len(self.buf) == st.st_size  # every byte read is the file's
        identity = identity_of(st) if whole else (-1, -1, -1, -1)
        return data, Image(identity, base, ends, messages[:])


def _share(obj: Any, table: dict[str, str]) -> None:
    """One string object for each value of ``SHARED`` keys in ``obj`` (a message, or an
    item of toolCalls) and in the blocks of its content: a long session repeats a
    handful of roles, block types, models and tool names hundreds of thousands of times
    (17 MB of the 200 MB a 100 MB session took in memory)."""
    if type(obj) is not dict:
        return
    for key in SHARED:
        value = obj.get(key)
        if type(value) is str and len(value) <= SHARED_LENGTH:
            obj[key] = table.setdefault(value, value)
    content = obj.get("content")
    if type(content) is list:
        for block in content:
            _share(block, table)


def _exactly(text: memoryview) -> Any:
    """One message's JSON as ``format.loads`` reads it: integers past 64 bits exactly, a
    lone surrogate as U+FFFD (what orjson alone cannot)."""
    try:
        return fmt.loads(text)
    except ValueError:
        raise _NotLaidOut from None


def _whole(head: bytes, tail: bytes | bytearray, shared: dict[str, str]) -> dict[str, Any]:
    """The document without its messages: ``head`` and ``tail`` around a unique stand-in,
    which must come back as the top-level ``messages`` (or the cut was not where it
    seemed). Large arrays' items share strings through ``shared`` (see ``_share``)."""
    mark = orjson.dumps(os.urandom(16).hex())
    if mark in head or mark in tail:
        raise _NotLaidOut
    arrays: dict[bytes, list[Any]] = {}
    if len(tail) > TAIL_WHOLE:  # toolCalls: read a block of items at a time, as messages
        tail = _cut_arrays(tail, mark, arrays, shared)
    try:
        data = fmt.loads(head + mark + tail)
    except ValueError:
        raise _NotLaidOut from None
    if type(data) is not dict or data.get("messages") != orjson.loads(mark):
        raise _NotLaidOut
    for key, items in arrays.items():
        name = orjson.loads(key)
        if data.get(name) != orjson.loads(_stand_in(mark, key)):
            raise _NotLaidOut
        data[name] = items
    return data


def _cut_arrays(
    tail: bytes | bytearray, mark: bytes, arrays: dict[bytes, list[Any]], shared: dict[str, str]
) -> bytes:
    """``tail`` with each top-level array of objects in the layout (``  "KEY": [`` on a
    line of its own, each item opening on a line ``    {`` and closing on ``    }``)
    replaced by a stand-in, and its items, parsed a block at a time, in ``arrays``.

    A parse of the whole would hold a parse tree of several times its bytes at once
    (orjson's: 90 MB for the 8 MB of toolCalls of a 100 MB session)."""
    out, pos = [], 0
    while (at := tail.find(_ARRAY_OF_OBJECTS, pos)) >= 0:
        line = tail.rfind(b"\n", 0, at)
        key = bytes(tail[line + 1 : at + 1].strip())  # the key as JSON text, quotes and all
        close = tail.find(_CLOSE, at)
        if not tail.startswith(b'  "', line + 1) or close < 0:
            raise _NotLaidOut
        body = at + len(_ARRAY_OF_OBJECTS) - len(_FIRST)  # at the first item's line break
        arrays[key] = _items(tail, body, close, shared)
        out += [tail[pos : line + 1], b"  ", key, b": ", _stand_in(mark, key)]
        pos = close + len(_CLOSE)
    out.append(tail[pos:])
    return b"".join(out)


def _stand_in(mark: bytes, key: bytes) -> bytes:
    """A JSON string no document holds (``mark``'s) that names the array ``key``."""
    return mark[:-1] + key[1:]


def _items(text: bytes | bytearray, start: int, end: int, shared: dict[str, str]) -> list[Any]:
    """The objects of the array whose body (``\n    {...},\n    {...}``) is
    ``text[start:end]``, parsed about ``ITEMS_BLOCK`` bytes of them at a time."""
    items: list[Any] = []
    with memoryview(text) as view:
        while start < end:
            cut = text.find(_END + b",", start + ITEMS_BLOCK, end)
            stop = end if cut < 0 else cut + len(_END)
            try:
                part = fmt.loads(b"[" + view[start:stop] + b"]")
            except ValueError:
                raise _NotLaidOut from None
            if type(part) is not list:
                raise _NotLaidOut
            for item in part:
                _share(item, shared)
            items += part
            start = stop + 1
    return items


# -- writing ---------------------------------------------------------------------------------
@dataclass
class _Source:
    """The unchanged messages' bytes in the file being replaced."""

    fd: int
    image: Image
    count: int  # messages reused
    length: int  # bytes of their text, from the image's base


def save_document(
    path: Path,
    data: dict[str, Any],
    image: Image | None,
    durable: bool = True,
    reuse_from: int = REUSE_FROM,
) -> Image | None:
    """Write ``data`` to ``path`` atomically (0600), copying the unchanged messages' bytes
    (``reuse_from`` bytes or more) from the file ``image`` describes; the image of the
    file written (None when the document has no messages array of objects to lay out)."""
    messages = data.get("messages")
    if type(messages) is not list:
        atomic_write(path, fmt.dumps(data), durable=durable)
        return None
    head, tail = _skeleton(data)
    source = _reusable(path, image, messages, reuse_from)
    try:
        return _save(path, head, tail, messages, source, durable)
    except _Changed:  # the old file was cut short since its image was made: write it whole
        return _save(path, head, tail, messages, None, durable)
    finally:
        if source is not None:
            os.close(source.fd)


def _save(
    path: Path,
    head: bytes,
    tail: bytes,
    messages: list[Any],
    source: _Source | None,
    durable: bool,
) -> Image | None:
    made: list[Image | None] = []
    atomic_write(
        path, lambda fd: made.append(_write(fd, head, tail, messages, source)), durable=durable
    )
    return made[0]


def document_bytes(data: dict[str, Any]) -> bytes:
    """The bytes a save writes for ``data`` (``format.dumps``, a few messages at a time)."""
    messages = data.get("messages")
    if type(messages) is not list:
        return fmt.dumps(data)
    head, tail = _skeleton(data)
    out = bytearray(head + b"[")
    for start in range(0, len(messages), CHUNK):
        if start:
            out += b","
        out += _serialise(messages[start : start + CHUNK])
    out += (_CLOSE if messages else b"]") + tail
    return bytes(out)


def _skeleton(data: dict[str, Any]) -> tuple[bytes, bytes]:
    """The document's bytes before and after the messages array."""
    mark = os.urandom(16).hex()
    skeleton = dict(data)
    skeleton["messages"] = mark  # in the key's own place
    raw = fmt.dumps(skeleton)
    quoted = b": " + orjson.dumps(mark)
    at = raw.find(quoted)
    return raw[: at + 2], raw[at + len(quoted) :]


def _serialise(messages: list[Any]) -> bytes:
    """Messages as they sit in the array, ``\n    {...},\n    {...}``, at its depth."""
    wrapped = {"m": messages}
    try:
        raw = orjson.dumps(wrapped, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):  # as format.dumps: the standard library
        raw = json.dumps(fmt.clean(wrapped), indent=2, ensure_ascii=False).encode("utf-8")
    return raw[_WRAP[0] : len(raw) - _WRAP[1]]


def _unchanged(saved: list[Any], now: list[Any]) -> int:
    """How many leading messages are the very objects saved (never the last one saved)."""
    limit = min(len(saved) - 1, len(now))
    if limit <= 0:
        return 0
    if all(map(is_, islice(saved, limit), now)):
        return limit
    return next(i for i, (a, b) in enumerate(zip(saved, now, strict=False)) if a is not b)


def _reusable(
    path: Path, image: Image | None, messages: list[Any], reuse_from: int
) -> _Source | None:
    """The file's unchanged messages to copy, if the file is still the one ``image`` shows."""
    if image is None:
        return None
    count = _unchanged(image.messages, messages)
    length = image.ends[count - 1] if count else 0
    if not count or length < reuse_from:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if identity_of(os.fstat(fd)) == image.identity and _bounds_hold(fd, image, length):
            return _Source(fd, image, count, length)
    except OSError:
        pass
    os.close(fd)
    return None


def _bounds_hold(fd: int, image: Image, length: int) -> bool:
    """The bytes where the image puts the array's start and a message's end are there."""
    start = os.pread(fd, 1 + len(_FIRST), image.base - 1)
    end = os.pread(fd, 2, image.base + length - 1)
    return start == b"[" + _FIRST and end[:1] == b"}" and end[1:] in (b",", b"\n")


class _Out:
    """Sequential writes to a new file, gathered into blocks."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.parts: list[bytes] = []
        self.gathered = 0
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.gathered += len(data)
        self.offset += len(data)
        if self.gathered >= BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            write_all(self.fd, self.parts[0] if len(self.parts) == 1 else b"".join(self.parts))
            self.parts, self.gathered = [], 0

    def copy(self, src: int, offset: int, count: int) -> None:
        self.flush()
        _copy_range(src, self.fd, offset, count)
        self.offset += count


def _write(
    fd: int, head: bytes, tail: bytes, messages: list[Any], source: _Source | None
) -> Image | None:
    out = _Out(fd)
    out.write(head + b"[")
    base = out.offset
    ends = array("q")
    start = copied = 0
    if source is not None:
        out.copy(source.fd, source.image.base, source.length)
        ends = source.image.ends[: source.count]
        start, copied = source.count, source.length
    for first in range(start, len(messages), CHUNK):
        if out.offset > base:
            out.write(b",")
        text = _serialise(messages[first : first + CHUNK])
        _add_ends(ends, text, out.offset - base)
        out.write(text)
    out.write((_CLOSE if messages else b"]") + tail)
    out.flush()
    if len(ends) != len(messages):
        return None  # a message that is not an object: the file is fine, only not cut up
    return Image(identity_of(os.fstat(fd)), base, ends, messages[:], copied)


def _add_ends(ends: array[int], text: bytes, at: int) -> None:
    """Add where each message in ``text`` ends. Only a non-empty object ends on a line of
    its own, so there is one end per message exactly when every message is one."""
    pos = text.find(_END)
    while pos >= 0:
        pos += len(_END)
        ends.append(at + pos)
        pos = text.find(_END, pos)


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``src`` from ``offset`` to ``dst``, in the kernel if it can."""
    kernel = getattr(os, "copy_file_range", None)
    while count > 0:
        if kernel is not None:
            try:
                done = kernel(src, dst, count, offset)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                kernel = None
                continue
        else:
            data = os.pread(src, min(count, BLOCK), offset)
            write_all(dst, data)
            done = len(data)
        if done <= 0:
            raise _Changed
        offset += done
        count -= done
