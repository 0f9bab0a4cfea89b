"""Recovering whole messages from the bytes of a damaged session file.

The heart is a tolerant scanner that walks the top-level object key by key and
the ``messages`` (and ``toolCalls``) array element by element, parsing each element
with the C JSON scanner. An element that parses completely is whole and is kept
exactly as it was; an element that does not parse (cut off, overwritten, a hole
of NUL bytes) is dropped, never guessed at, and the scanner resynchronises on the
next element (``{"role": ...``) so messages after a local hole survive too.

Byte-level damage is handled before scanning:

* a UTF-8 (or UTF-16) byte-order mark is dropped;
* invalid UTF-8 bytes become U+FFFD; the messages holding them are kept and
  reported as *altered* (the original bytes stay in the quarantine);
* stray C0 control characters (which Taurus never writes raw: its JSON escapes
  them) are removed;
* NUL bytes are *holes*: a tail of them is stripped, and any element that spans
  one is treated as damaged, so a hole can never splice two halves into an
  invented message.

A file holding two documents yields both; trailing garbage after a whole
document is dropped. Nothing here touches the disk.
"""

from __future__ import annotations

import bisect
import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any

from taurus_ops.ops.doctor.document import BLOCK_TYPES, message_problem
from taurus_ops.ops.doctor.unreadable import (
    MARK,
    Reading,
    known_word,
    mark_repaired,
    mend_escapes,
    parse_marked,
    restore_message,
    restore_tool_ids,
)
from taurus_ops.words import plural

_DECODER = json.JSONDecoder(strict=False)
_raw_decode = _DECODER.raw_decode

# Taurus writes control characters escaped; raw ones are damage. \t \n \r are whitespace.
_STRAY_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f]")
_SURROGATES = re.compile(r"[\udc80-\udcff]+")
_WS = " \t\n\r"
# between tokens, a U+FFFD (an invalid byte) cannot be content: skip it like whitespace
_SKIP = re.compile("[ \t\n\r\ufffd]*")
_WORDISH = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")
# where a new element of an array may start, by array
_ELEMENT_START = {
    "messages": re.compile(r'\{[ \t\n\r]*"(?:role|content)"[ \t\n\r]*:'),
    "toolCalls": re.compile(r'\{[ \t\n\r]*"(?:tool|timestamp)"[ \t\n\r]*:'),
}
_MEND_WINDOW = 1 << 20
_DOCUMENT_START = re.compile(r'\{[ \t\n\r]*"sessionId"[ \t\n\r]*:')
_KEY = re.compile(r'(?<!\\)"([A-Za-z_][A-Za-z0-9_]{0,63})"[ \t\n\r]*:')


@dataclass
class Decoded:
    """The text of a session file after byte-level repair, and what was repaired."""

    text: str
    bom: str | None = None  # "utf-8" / "utf-16" when a byte-order mark was dropped
    invalid_bytes: int = 0  # bytes that were not UTF-8, now U+FFFD
    marks: list[int] = field(default_factory=list)  # positions of those U+FFFD in text
    wide: set[int] = field(default_factory=set)  # ... of those, marks for two bytes or more
    controls: int = 0  # stray control characters removed
    nul_tail: int = 0  # NUL bytes stripped from the end
    nul_holes: int = 0  # NUL bytes left inside the text (holes)


@dataclass
class Fragment:
    """A stretch of the text that could not be read as whole elements."""

    where: str  # e.g. "messages[12]", "after the document", "toolCalls"
    start: int
    end: int

    def describe(self) -> str:
        return f"{self.where} ({plural(self.end - self.start, 'character')})"


@dataclass
class Salvaged:
    """One document recovered from a file."""

    data: dict[str, Any]
    complete: bool  # the whole document parsed with no damage inside it
    messages_seen: bool  # a messages array was found
    messages_after_damage: int = 0  # whole messages found after a damaged stretch
    altered: list[int] = field(default_factory=list)  # indexes of messages read from marks
    restored: set[int] = field(default_factory=set)  # ... of those, read beyond the marks
    left_out: dict[int, list[str]] = field(default_factory=dict)  # unreadable members dropped
    lost_keys: list[str] = field(default_factory=list)  # top-level keys that could not be read
    arrays_cut: list[str] = field(default_factory=list)  # arrays not read to their end


@dataclass
class SalvageResult:
    decoded: Decoded
    documents: list[Salvaged]
    fragments: list[Fragment]
    garbage_tail: int = 0  # characters after the last document that were not a document

    @property
    def main(self) -> Salvaged | None:
        return self.documents[0] if self.documents else None

    def problems(self) -> list[str]:
        """Short descriptions of the damage, for the report."""
        out = []
        d = self.decoded
        if d.bom:
            out.append(f"starts with a {d.bom} byte-order mark")
        if d.invalid_bytes:
            out.append(f"{plural(d.invalid_bytes, 'byte')} of invalid UTF-8")
        if d.controls:
            out.append(f"{plural(d.controls, 'stray control character')}")
        if d.nul_tail:
            out.append(f"a tail of {plural(d.nul_tail, 'NUL byte')}")
        if d.nul_holes:
            out.append(f"{plural(d.nul_holes, 'NUL byte')} inside the text")
        if len(self.documents) > 1:
            out.append(f"{len(self.documents)} JSON documents concatenated")
        if self.garbage_tail:
            out.append(f"{plural(self.garbage_tail, 'character')} of trailing garbage")
        for doc in self.documents[:1]:
            if not doc.complete:
                if doc.arrays_cut or doc.lost_keys:
                    parts = [f"`{k}` unreadable" for k in doc.lost_keys]
                    parts += [f"`{k}` cut short" for k in doc.arrays_cut]
                    out.append("damaged: " + ", ".join(parts))
                else:
                    out.append("cut off mid-write")
        if self.fragments and not any(p.startswith("damaged") for p in out):
            out.append(
                f"{plural(len(self.fragments), 'unreadable stretch', 'unreadable stretches')}"
            )
        return out


def decode(raw: bytes) -> Decoded:
    """Bytes to text, repairing what can be repaired at the byte level."""
    bom = None
    if raw.startswith(codecs.BOM_UTF8):
        raw, bom = raw[3:], "UTF-8"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text16 = raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
        else:
            raw, bom = text16.encode("utf-8", "surrogatepass"), "UTF-16"
    stripped = raw.rstrip(b"\x00")
    nul_tail = len(raw) - len(stripped)
    raw = stripped
    try:
        text = raw.decode("utf-8")
        invalid = 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        invalid = -1
    controls = 0
    if _STRAY_CONTROL.search(text):
        text, controls = _STRAY_CONTROL.subn("", text)
    marks: list[int] = []
    wide: set[int] = set()
    if invalid:
        invalid = 0
        pieces: list[str] = []
        last = 0
        shift = 0
        for match in _SURROGATES.finditer(text):
            pieces.append(text[last : match.start()])
            pieces.append("\ufffd")
            marks.append(match.start() - shift)
            run = match.end() - match.start()
            if run > 1:
                wide.add(marks[-1])
            invalid += run
            shift += run - 1
            last = match.end()
        pieces.append(text[last:])
        text = "".join(pieces)
    holes = text.count("\x00")
    return Decoded(text, bom, invalid, marks, wide, controls, nul_tail, holes)


def _skip(text: str, pos: int) -> int:
    return _SKIP.match(text, pos).end()  # type: ignore[union-attr]


def _parse_at(text: str, pos: int) -> tuple[Any, int] | None:
    """The JSON value starting exactly at ``pos`` and its end, or None (holes count as damage)."""
    try:
        value, end = _raw_decode(text, pos)
    except (ValueError, RecursionError):
        return None
    if "\x00" in text[pos:end]:
        return None
    return value, end


def _parse_bounded(text: str, pos: int, stop: int) -> tuple[Any, int] | None:
    """Like :func:`_parse_at`, but a failure costs the element's length, not the file's.

    (The standard library's error counts the lines before the failure.) ``stop`` is
    where the element ends at the latest as far as the caller can tell; if the parse
    runs into it, the element may be longer and is parsed in the whole text.
    """
    if stop >= len(text):
        return _parse_at(text, pos)
    sub = text[pos:stop]
    try:
        value, end = _raw_decode(sub, 0)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(sub) - 1 or exc.msg.startswith("Unterminated"):
            return _parse_at(text, pos)
        return None
    except (ValueError, RecursionError):
        return None
    if "\x00" in sub[:end]:
        return None
    return value, pos + end


def _parse_mended(
    text: str,
    pos: int,
    stop: int,
    wide: set[int] = frozenset(),  # type: ignore[assignment]
) -> tuple[Any, int] | None:
    """Parse the element at ``pos`` ignoring U+FFFD marks that sit between tokens.

    An invalid byte that replaced whitespace (or was inserted between tokens) breaks
    the parse but not the content. Only a mark where the parser stopped, for a single
    byte, and not touching a number or literal, is ignored, so no value can change.
    """
    sub = text[pos:stop]
    deleted = 0
    for _ in range(16):
        try:
            value, end = _raw_decode(sub, 0)
        except json.JSONDecodeError as exc:
            at = exc.pos
            if not (0 < at < len(sub) and sub[at] == "\ufffd"):
                return None
            if pos + at + deleted in wide and not _in_indent(text, pos + at + deleted):
                return None  # a mark for several bytes may have hidden a value, unless it sat
            # in a line's indentation, right before a string, object or array
            before = sub[at - 1]
            after = sub[at + 1] if at + 1 < len(sub) else " "
            if before in _WORDISH or after in _WORDISH:
                return None
            sub = sub[:at] + sub[at + 1 :]
            deleted += 1
            continue
        except RecursionError:
            return None
        if "\x00" in sub[:end]:
            return None
        return value, pos + end + deleted
    return None


def _in_indent(text: str, at: int) -> bool:
    """True if ``at`` lies in a line's leading spaces, before a string, object or array."""
    line = text.rfind("\n", 0, at)
    if text[line + 1 : at].strip(" "):
        return False
    after = at + 1
    while after < len(text) and text[after] == " ":
        after += 1
    return after < len(text) and text[after] in '"{['


class _Finder:
    """Every match of a (rare) pattern, found once; the next one after a position by bisection.

    Resynchronising after each of many damaged elements would otherwise search the
    rest of a big file again and again.
    """

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        self.pattern = pattern
        self.text = text
        self.starts: list[int] | None = None
        self.matches: list[re.Match[str]] = []

    def next(self, pos: int, limit: int | None = None) -> re.Match[str] | None:
        if self.starts is None:
            self.matches = list(self.pattern.finditer(self.text))
            self.starts = [m.start() for m in self.matches]
        i = bisect.bisect_left(self.starts, pos)
        if i >= len(self.starts) or (limit is not None and self.starts[i] >= limit):
            return None
        return self.matches[i]


class _Scanner:
    def __init__(self, decoded: Decoded) -> None:
        self.text = decoded.text
        self.marks = decoded.marks
        self.wide = decoded.wide
        self.fragments: list[Fragment] = []
        self.doc_starts = _Finder(_DOCUMENT_START, self.text)
        self.closes = _Finder(_ARRAY_CLOSE, self.text)

    def has_mark(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self.marks, start)
        return i < len(self.marks) and self.marks[i] < end

    # -- documents ----------------------------------------------------------------
    def documents(self) -> tuple[list[Salvaged], int]:
        text = self.text
        docs: list[Salvaged] = []
        pos = _skip(text, 0)
        skipped_from = 0
        garbage = 0
        while pos < len(text):
            brace = self._mark_for(skipped_from, pos, text[pos] == '"')
            if brace is not None:
                pos = brace  # an unreadable byte where the document's ``{`` stood
            elif text[pos] != "{":
                nxt = self.doc_starts.next(pos)
                if not docs and nxt is None:
                    nxt_brace = text.find("{", pos)
                    if nxt_brace < 0:
                        garbage += len(text) - pos
                        break
                    self.fragments.append(Fragment("before the document", pos, nxt_brace))
                    pos = nxt_brace
                    continue
                end = nxt.start() if nxt else len(text)
                garbage += len(text[pos:end].strip(_WS + "\x00"))
                if end > pos:
                    self.fragments.append(Fragment("after the document", pos, end))
                if nxt is None:
                    break
                pos = nxt.start()
                continue
            whole = _parse_at(text, pos)
            if (
                whole is not None
                and isinstance(whole[0], dict)
                and not self.has_mark(pos, whole[1])
            ):
                value, end = whole
                docs.append(Salvaged(value, True, isinstance(value.get("messages"), list)))
            else:  # damaged, or holding unreadable bytes: element by element
                doc, end = self.walk_document(pos)
                if doc is None:
                    break
                _finish_marked(doc)
                docs.append(doc)
            skipped_from = end
            pos = _skip(text, end)
            while pos < len(text) and text[pos] == "\x00":
                pos = _skip(text, pos + 1)
        return docs, garbage

    # -- the structural walk ----------------------------------------------------------
    def walk_document(self, start: int) -> tuple[Salvaged | None, int]:
        """Walk an object starting at ``start`` key by key; returns what was whole and the end."""
        text = self.text
        n = len(text)
        doc: dict[str, Any] = {}
        result = Salvaged(doc, True, False)
        pos = start + 1
        while True:
            before = pos
            pos = _skip(text, pos)
            if pos >= n:
                result.complete = False
                return result, pos
            ch = text[pos]
            if ch == "}":
                return result, pos + 1
            if ch == ",":
                pos += 1
                continue
            key_at = pos
            parsed = _parse_at(text, pos) if ch == '"' else None
            colon = _skip(text, parsed[1]) if parsed else pos
            if (
                parsed is None or not isinstance(parsed[0], str) or text[colon : colon + 1] != ":"
            ) and (marked := self._marked_key(before, pos, doc)) is not None:
                parsed, colon = marked  # a quote or the colon was an unreadable byte
            if (
                parsed is None
                or not isinstance(parsed[0], str)
                or text[colon : colon + 1] not in (":", MARK)
            ):
                result.complete = False
                nxt = self._resync_key(pos, start)
                self.fragments.append(Fragment("top level", pos, nxt if nxt else n))
                if nxt is None:
                    return result, n
                pos = nxt
                continue
            key = parsed[0]
            if MARK in key and self.has_mark(key_at, colon):
                key = known_word(key, _TOP_KEYS, taken=doc) or key
            pos = _skip(text, colon + 1)
            if pos >= n:
                result.complete = False
                result.lost_keys.append(key)
                return result, n
            if key in _ELEMENT_START and text[pos] == "{":
                bracket = self._mark_for(colon + 1, pos, True)
                if bracket is not None:
                    pos = bracket  # an unreadable byte where the array's ``[`` stood
            if (text[pos] == "[" or text[pos] == MARK) and key in _ELEMENT_START:
                items, pos, whole = self.walk_array(key, pos, result)
                doc[key] = items
                if key == "messages":
                    result.messages_seen = True
                if not whole:
                    result.complete = False
                    result.arrays_cut.append(key)
                continue
            value = _parse_at(text, pos)
            if self.marks and (value is None or not self._ends_member(value[1])):
                value = self._parse_marked_member(pos, start) or value
            if value is None:
                result.complete = False
                result.lost_keys.append(key)
                nxt = self._resync_key(pos + 1, start)
                self.fragments.append(Fragment(f"`{key}`", key_at, nxt if nxt else n))
                if nxt is None:
                    return result, n
                pos = nxt
                continue
            doc[key] = value[0]
            pos = value[1]

    def _resync_key(self, pos: int, doc_start: int) -> int | None:
        """The next plausible top-level key (``"name":``) of this document, or None."""
        text = self.text
        nxt_doc = self.doc_starts.next(pos)
        limit = nxt_doc.start() if nxt_doc else len(text)
        found = [limit]
        for match in _KEY.finditer(text, pos, limit):
            if match.group(1) in _SAFE_TOP_KEYS:
                found.append(match.start())
                break
        indented = _INDENT2_KEY.search(text, pos, min(found))
        if indented is not None:
            found.append(indented.start(1))
        best = min(found)
        return best if best < limit else None

    def walk_array(self, key: str, pos: int, result: Salvaged) -> tuple[list[Any], int, bool]:
        """Walk ``[...]`` element by element. Returns (whole elements, end, read to the end)."""
        text = self.text
        n = len(text)
        start_pattern = _ELEMENT_START[key]
        items: list[Any] = []
        whole = True
        pos += 1
        after_damage = False
        while True:
            before = pos
            pos = _skip(text, pos)
            if pos >= n:
                return items, pos, False
            ch = text[pos]
            if ch == "]":
                return items, pos + 1, whole
            if ch == ",":
                pos += 1
                continue
            brace = self._mark_for(before, pos, ch == '"')
            if brace is not None:
                pos = brace  # an unreadable byte where the element's ``{`` stood
            limit = self._element_limit(start_pattern, pos)
            parsed = _parse_bounded(text, pos, limit)
            restored, left_out = False, []
            if self.marks and self.has_mark(pos, parsed[1] if parsed else limit):
                marked = self._parse_marked(key, pos, parsed[1] if parsed else limit)
                if marked is not None:
                    parsed, restored = (marked.value, marked.end), marked.restored
                    left_out = marked.left_out
            if parsed is not None and (not after_damage or self._ends_element(parsed[1])):
                value, end = parsed
                if key == "messages":
                    if self.has_mark(pos, end):
                        if restore_message(value, BLOCK_TYPES):
                            restored = True
                        if restored:
                            result.restored.add(len(items))
                        if left_out:
                            result.left_out[len(items)] = left_out
                        result.altered.append(len(items))
                    if after_damage:
                        result.messages_after_damage += 1
                items.append(value)
                pos = end
                continue
            # damage: drop this element and find the next whole one
            whole = False
            damaged_at = pos
            nxt, closes = self._resync_element(start_pattern, pos + 1)
            self.fragments.append(
                Fragment(f"{key}[{len(items)}]", damaged_at, nxt if nxt is not None else n)
            )
            if nxt is None:
                return items, n, False
            after_damage = True
            if closes:
                return items, nxt, False
            pos = nxt

    def _mark_for(self, lo: int, hi: int, wanted: bool = True) -> int | None:
        """The last mark in ``text[lo:hi]`` (blanks skipped over), when ``wanted``."""
        if not wanted or not self.marks:
            return None
        i = bisect.bisect_left(self.marks, hi) - 1
        return self.marks[i] if i >= 0 and self.marks[i] >= lo else None

    def _marked_key(
        self, before: int, pos: int, doc: dict[str, Any]
    ) -> tuple[tuple[str, int], int] | None:
        """A known top-level key whose quote, colon or letter is an unreadable byte.

        Returns ((key, end of the key), position of the colon or of the mark standing for it).
        """
        start = self._mark_for(before, pos)
        start = pos if start is None else start
        if not self.has_mark(start, start + 80):
            return None
        match = _MARKED_KEY.match(self.text, start)
        if match is None or MARK not in match.group(0):
            return None
        key = match.group(1)
        if MARK in key:
            key = known_word(key, _TOP_KEYS, taken=doc) or key
        if key not in _TOP_KEYS or key in doc:
            return None
        return (key, match.end(1) + 1), match.end() - 1

    def _ends_member(self, end: int) -> bool:
        """True if a top-level value ending at ``end`` is followed by ``,`` or ``}`` (or EOF)."""
        nxt = _skip(self.text, end)
        return nxt >= len(self.text) or self.text[nxt] in ",}"

    def _parse_marked_member(self, pos: int, doc_start: int) -> tuple[Any, int] | None:
        """A top-level value holding marks, read up to the next top-level key."""
        stop = self._resync_key(pos + 1, doc_start)
        stop = len(self.text) if stop is None else stop
        if not self.has_mark(pos, min(stop, pos + _MEND_WINDOW)):
            return None
        confirmed = stop < len(self.text) and stop <= pos + _MEND_WINDOW
        mended = mend_escapes(self.text, pos, min(stop, pos + _MEND_WINDOW), self.marks, self.wide)
        found = parse_marked(mended, (lambda _value: True) if confirmed else None)
        if found is not None and not found.left_out:
            return found.value, found.end
        return _parse_mended(self.text, pos, stop, self.wide)

    def _parse_marked(self, key: str, pos: int, stop: int) -> Reading | None:
        """An element holding marks (see :mod:`unreadable`)."""
        # a reading of a mark needs the element after it (or the array's end) to confirm it:
        # at a cut, "nothing after it" would let a reading close the element too early
        confirmed = stop < len(self.text) and stop <= pos + _MEND_WINDOW
        stop = min(stop, pos + _MEND_WINDOW)
        mended = mend_escapes(self.text, pos, stop, self.marks, self.wide)
        accept = _accept_message if key == "messages" else _accept_object
        found = parse_marked(mended, accept if confirmed else None)
        if found is not None:
            return found
        deleted = _parse_mended(self.text, pos, stop, self.wide)  # several marks between tokens
        return Reading(deleted[0], deleted[1], True) if deleted is not None else None

    def _element_limit(self, pattern: re.Pattern[str], pos: int) -> int:
        """Where the element at ``pos`` ends at the latest: the next element or array close."""
        text = self.text
        matches = (pattern.search(text, pos + 1), self.closes.next(pos))
        found = [m.start() for m in matches if m is not None]
        return min(found) if found else len(text)

    def _ends_element(self, end: int) -> bool:
        """True if an array element ending at ``end`` is followed by ``,`` or ``]`` (or EOF)."""
        nxt = _skip(self.text, end)
        return nxt >= len(self.text) or self.text[nxt] in ",]"

    def _resync_element(self, pattern: re.Pattern[str], pos: int) -> tuple[int | None, bool]:
        """The start of the next whole element after damage at ``pos``.

        Returns (position, False) for an element, (position, True) when the array
        closes first (the position is then of the next top-level key), (None, _) when
        nothing more can be read in this document.
        """
        text = self.text
        nxt_doc = self.doc_starts.next(pos)
        limit = nxt_doc.start() if nxt_doc else len(text)
        close = self.closes.next(pos, limit)
        close_at = close.start() if close else limit
        for match in pattern.finditer(text, pos, close_at):
            parsed = _parse_bounded(
                text, match.start(), self._element_limit(pattern, match.start())
            )
            if parsed is not None and self._ends_element(parsed[1]):
                return match.start(), False
        if close is not None:
            return close.start() + close.group(0).index(","), True
        return None, False


# top-level keys that never appear inside a message (the chat puts ``usage``, ``model``,
# ``timestamp`` on messages too, so those cannot mark the top level)
_SAFE_TOP_KEYS = frozenset(
    {
        "sessionId",
        "created",
        "updated",
        "version",
        "cwd",
        "messages",
        "toolCalls",
        "title",
        "parentSession",
        "template",
    }
)
# Taurus writes two-space indented JSON: a top-level key sits exactly two spaces in
_INDENT2_KEY = re.compile(r'\n  ("[A-Za-z_][A-Za-z0-9_]{0,63}")[ \t\r]*:')
_ARRAY_CLOSE = re.compile(
    r'\][ \t\n\r]*,[ \t\n\r]*"(?:'
    + "|".join(sorted(_SAFE_TOP_KEYS))
    + r')"[ \t\n\r]*:|\n  \][ \t\r]*,[ \t\r]*\n  "'
)


_TOP_KEYS = _SAFE_TOP_KEYS | {"usage", "model", "allowedTools", "previousSessionId"}
# a key with a mark for one of its quotes, a letter or its colon
_MARKED_KEY = re.compile(
    '["\ufffd]([A-Za-z_\ufffd][A-Za-z0-9_\ufffd]{0,63})["\ufffd][ \t\n\r]*[:\ufffd]'
)


def _accept_message(value: Any) -> bool:
    """A reading of marks that gives a message the Messages API would take on its own."""
    restore_message(value, BLOCK_TYPES)
    return message_problem(value) is None


def _accept_object(value: Any) -> bool:
    return type(value) is dict


def _finish_marked(doc: Salvaged) -> None:
    """Tool ids read back across messages, then each message read from marks says so."""
    messages = doc.data.get("messages")
    if not doc.altered or type(messages) is not list:
        return
    doc.restored |= restore_tool_ids(messages, set(doc.altered))
    for index in doc.altered:
        mark_repaired(messages[index], index in doc.restored, doc.left_out.get(index))


def salvage(raw: bytes) -> SalvageResult:
    """Recover every whole document, message and tool call from ``raw``."""
    decoded = decode(raw)
    scanner = _Scanner(decoded)
    documents, garbage = scanner.documents()
    return SalvageResult(decoded, documents, scanner.fragments, garbage)
