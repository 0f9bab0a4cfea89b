"""Messages holding bytes that were not UTF-8: kept, never guessed at, and marked.

:func:`taurus_ops.ops.doctor.salvage.decode` turns each run of invalid bytes into one
U+FFFD *mark* and remembers where. A mark inside a string is already the honest
reading. The rest of this module deals with a mark where it breaks more than one
character:

* in a string, a mark right before an escape letter (``\\ufffd n`` where ``\\n`` stood)
  or right after a backslash (``\\ \\ufffd``) stands for the whole escape, so the letter
  is folded into the mark and never shown as if it were text;
* between JSON tokens, a mark that replaced a quote, comma, colon or bracket makes the
  element unparseable: each single-character reading of the mark is tried, and the
  element is kept only if exactly one reading makes a well-formed message of it;
* a mark in a key or in a fixed word (``role``, a block's ``type``) is read as the one
  known word it can stand for, and a mark in a tool_use id as the one unanswered id
  elsewhere in the file that it can stand for.

Every character a kept message shows comes from the file (or from the one reading the
rest of the file allows); each such message carries ``"repaired"`` saying what was done,
and the original bytes stay in the quarantine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MARK = "\ufffd"
REPAIRED_FIELD = "repaired"  # a field on the message, kept by the format, stripped for the API
SHOWN_AS_MARK = "invalid UTF-8 shown as U+FFFD"
SYNTAX_RESTORED = "an unreadable byte of its JSON read from the rest of the file"
LEFT_OUT = "unreadable, left out: "  # then the members, e.g. ``usage.inputTokens``

_raw_decode = json.JSONDecoder(strict=False).raw_decode
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPE_LETTERS = frozenset("nrtbfu/")
# what a mark between tokens may have stood for ("" : nothing, it was inserted)
_READINGS = ("", '"', ",", ":", "[", "]", "{", "}", "\\")
_WORDISH = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")
_MAX_MARKS = 8  # an element with more marks than this is not worth the readings
LITERALS = ("true", "false", "null")
_NUMBERISH = re.compile("[-+.eE0-9\ufffd]+")
# stands in for a value that cannot be read while the element is parsed; never kept
_UNREADABLE = "\ufffd\ufffd(an unreadable value)\ufffd\ufffd"
_UNREADABLE_JSON = json.dumps(_UNREADABLE)

MESSAGE_KEYS = ("role", "content", "timestamp", "usage", "model", "interrupted")
BLOCK_KEYS = (
    "type",
    "text",
    "id",
    "name",
    "input",
    "tool_use_id",
    "content",
    "is_error",
    "source",
    "title",
    "context",
    "citations",
    "cache_control",
    "thinking",
    "signature",
    "data",
)
USAGE_KEYS = ("model", "inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens")
ROLES = ("user", "assistant")


BYTE, WIDE, ESCAPE, ESCAPE_QUOTE = "byte", "wide", "escape", "escape-quote"


@dataclass
class Mended:
    """A stretch of text with its marks' escapes folded, and the way back to the original."""

    text: str
    marks: list[int]  # positions of the marks in ``text``
    # per mark: BYTE (one byte, may be read as one character), WIDE (several bytes),
    # ESCAPE (folded with the escape around it), ESCAPE_QUOTE (folded as the letter of an
    # escape that a quote follows: that quote may be the escaped one, or the string's end)
    kinds: list[str]
    points: list[tuple[int, int]]  # (position in text, position in the original) after each fold

    def source(self, pos: int) -> int:
        """The original position of ``pos`` in :attr:`text`."""
        base_here, base_there = 0, 0
        for here, there in self.points:
            if here > pos:
                break
            base_here, base_there = here, there
        return base_there + (pos - base_here)


def mend_escapes(
    text: str,
    start: int,
    stop: int,
    marks: list[int],
    wide: set[int] | frozenset[int] = frozenset(),
) -> Mended:
    """``text[start:stop]`` with every mark that stands for an escape folded into one mark.

    ``wide`` holds the marks that stand for more than one byte: those are never read as
    a single character.
    """
    folds: list[tuple[int, int, str]] = []  # original ranges that become one mark
    wanted = [m for m in marks if start <= m < stop]
    at = 0
    for match in _STRING.finditer(text, start, stop):
        inside_start, inside_end = match.start() + 1, match.end() - 1
        while at < len(wanted) and wanted[at] < inside_start:
            at += 1
        while at < len(wanted) and wanted[at] < inside_end:
            mark = wanted[at]
            at += 1
            fold = _escape_fold(text, mark, inside_start, inside_end)
            if fold is not None:
                folds.append(fold)
        if at >= len(wanted):
            break
    pieces: list[str] = []
    points: list[tuple[int, int]] = [(0, start)]
    new_marks: list[int] = []
    kinds: list[str] = []
    last, length, fold_at = start, 0, 0
    for mark in wanted:  # each fold holds exactly one mark, and folds come in mark order
        if fold_at < len(folds) and folds[fold_at][0] <= mark < folds[fold_at][1]:
            first, end, kind = folds[fold_at]
            fold_at += 1
            pieces.append(text[last:first])
            length += first - last
            new_marks.append(length)
            kinds.append(kind)
            pieces.append(MARK)
            length += 1
            last = end
            points.append((length, end))
        else:
            new_marks.append(length + (mark - last))
            kinds.append(WIDE if mark in wide else BYTE)
    pieces.append(text[last:stop])
    return Mended("".join(pieces), new_marks, kinds, points)


def _escape_fold(text: str, mark: int, lo: int, hi: int) -> tuple[int, int, str] | None:
    """The original range a mark inside a string stands for, when it is more than itself.

    ``lo``..``hi`` is the string's inside. Where the mark may have been a backslash or an
    escape's letter, the characters whose meaning depends on that go into the mark.
    """
    slashes = 0
    while mark - 1 - slashes >= lo and text[mark - 1 - slashes] == "\\":
        slashes += 1
    if slashes % 2:  # ``\`` + mark: the escape's letter, or a byte pushed in before it
        end = _after_escape(text, mark + 1, hi)
        kind = ESCAPE_QUOTE if end == mark + 1 == hi and text[hi : hi + 1] == '"' else ESCAPE
        return mark - 1, end, kind
    if mark + 1 < hi and text[mark + 1] in _ESCAPE_LETTERS:  # the mark was the backslash
        end = mark + 2
        if text[mark + 1] == "u" and end + 4 <= hi and _HEX4.fullmatch(text, end, end + 4):
            end += 4
        return mark, end, ESCAPE
    if mark + 1 < hi and text[mark + 1] == "\\":  # a backslash (or a byte before one)
        return mark, _after_escape(text, mark + 1, hi), ESCAPE
    return None


def _after_escape(text: str, pos: int, hi: int) -> int:
    """Past what at ``pos`` may be an escape's letter or a run of backslashes whose pairing
    depends on an unreadable byte before it."""
    if pos < hi and text[pos] in _ESCAPE_LETTERS:
        return pos + 1
    end = pos
    while end < hi and text[end] == "\\":
        end += 1
    if (end - pos) % 2 and end < hi:
        end += 1
    return end


def parse_marked(mended: Mended, accept: Callable[[Any], bool] | None = None) -> Reading | None:
    """The element at the start of ``mended``, or None.

    First as it reads; then, when that fails and ``accept`` is given, with each mark read
    as each thing it may have stood for (:func:`_readings`). A reading counts only if the
    element then ends cleanly (nothing but ``,`` and whitespace after it in the stretch)
    and ``accept`` takes the value; it is used only when every reading that counts gives
    the same value.
    """
    text = mended.text
    plain = _whole(text)
    if plain is not None:
        return Reading(plain[0], mended.source(plain[1]))
    if accept is None or len(mended.marks) > _MAX_MARKS:
        return None
    found: list[Reading] = []
    for mark, kind in zip(mended.marks, mended.kinds, strict=True):
        for first, end, replacement in _readings(text, mark, kind):
            parsed = _whole(text[:first] + replacement + text[end:])
            if parsed is None:
                continue
            value, stop = parsed
            left_out: list[str] = []
            if not _leave_out_unreadable(value, "", left_out) or not accept(value):
                continue
            if stop > first:
                stop += (end - first) - len(replacement)
            found.append(Reading(value, mended.source(stop), True, left_out))
    if not found:
        return None
    if any(r.value != found[0].value for r in found[1:]):
        return None  # two readings, two different messages: keep neither
    return found[0]


@dataclass
class Reading:
    """An element read from a stretch holding marks."""

    value: Any
    end: int  # in the original text
    restored: bool = False  # a mark was read as a character of the JSON, a literal or a gap
    left_out: list[str] = field(default_factory=list)  # members whose value was unreadable


def _readings(text: str, mark: int, kind: str) -> list[tuple[int, int, str]]:
    """What the mark at ``mark`` may have stood for: (start, end, JSON text) replacements.

    Next to a letter or digit the mark may be part of an unquoted token: ``tru`` and a
    mark is read as the one literal it fits, and a number with a mark in it cannot be
    read at all, so its member is left out (never guessed). A mark for one byte may also
    have been a character of the JSON structure (or, away from any token, nothing).
    """
    if kind == ESCAPE_QUOTE:  # the quote after it was the escaped one: it goes too
        return [(mark + 1, mark + 2, "")]
    if kind == ESCAPE:
        return []
    before = text[mark - 1] if mark else " "
    after = text[mark + 1] if mark + 1 < len(text) else " "
    first, end = mark, mark + 1
    while first > 0 and text[first - 1] in _WORDISH:
        first -= 1
    while end < len(text) and text[end] in _WORDISH:
        end += 1
    token = text[first:end]
    out: list[tuple[int, int, str]] = []
    literal = known_word(token, LITERALS)
    if literal is not None:
        out.append((first, end, literal))
    elif _NUMBERISH.fullmatch(token):
        out.append((first, end, _UNREADABLE_JSON))
    if kind == BYTE:
        touching = (before in _WORDISH) + (after in _WORDISH)
        # nothing in its place would join or shorten the token it touches; inside a word
        # or number any reading would change it
        readings = _READINGS if not touching else _READINGS[1:] if touching == 1 else ()
        out += [(mark, mark + 1, r) for r in readings]
    return out


def _leave_out_unreadable(value: Any, path: str, left_out: list[str]) -> bool:
    """Remove members whose value could not be read; False if one is not a member."""
    if isinstance(value, dict):
        for key in list(value):
            inner = f"{path}.{key}" if path else key
            if value[key] == _UNREADABLE:
                del value[key]
                left_out.append(inner)
            elif not _leave_out_unreadable(value[key], inner, left_out):
                return False
        return True
    if isinstance(value, list):
        return all(
            item != _UNREADABLE and _leave_out_unreadable(item, f"{path}[{i}]", left_out)
            for i, item in enumerate(value)
        )
    return value != _UNREADABLE


def _whole(text: str) -> tuple[Any, int] | None:
    """The value at the start of ``text`` if it is followed by nothing but ``,`` and blanks."""
    try:
        value, end = _raw_decode(text, 0)
    except (ValueError, RecursionError):
        return None
    if "\x00" in text[:end] or text[end:].strip(" \t\n\r,"):
        return None
    return value, end


def _pattern(marked: str, most: int) -> re.Pattern[str]:
    return re.compile(f".{{0,{most}}}".join(re.escape(part) for part in marked.split(MARK)), re.S)


def known_word(marked: str, words: tuple[str, ...] | frozenset[str], taken: Any = ()) -> str | None:
    """The one word of ``words`` (not in ``taken``) that ``marked`` can stand for, or None.

    A mark stands for at most one character first (one rotten or one inserted byte),
    then up to four; the first width at which any word fits must give exactly one.
    """
    if MARK not in marked:
        return None
    for most in range(1, 5):
        pattern = _pattern(marked, most)
        matches = [w for w in words if w not in taken and pattern.fullmatch(w)]
        if matches:
            return matches[0] if len(matches) == 1 else None
    return None


def restore_keys(obj: dict[str, Any], words: tuple[str, ...]) -> bool:
    """Rename each marked key of ``obj`` to the one known key it stands for; True if any."""
    renamed: dict[str, str] = {}
    for key in [k for k in obj if MARK in k]:
        word = known_word(key, words, taken=obj.keys() | renamed.values())
        if word is not None:
            renamed[key] = word
    if renamed:  # in place, each key where it stood
        items = list(obj.items())
        obj.clear()
        obj.update((renamed.get(k, k), v) for k, v in items)
    return bool(renamed)


def restore_message(message: Any, block_types: frozenset[str]) -> bool:
    """Known keys and words of one message read back from their marks; True if any changed."""
    if type(message) is not dict:
        return False
    changed = restore_keys(message, MESSAGE_KEYS)
    role = message.get("role")
    if isinstance(role, str) and (word := known_word(role, ROLES)) is not None:
        message["role"] = word
        changed = True
    if type(message.get("usage")) is dict:
        changed = restore_keys(message["usage"], USAGE_KEYS) or changed
    content = message.get("content")
    for block in content if type(content) is list else []:
        if type(block) is not dict:
            continue
        changed = restore_keys(block, BLOCK_KEYS) or changed
        kind = block.get("type")
        if isinstance(kind, str) and (word := known_word(kind, block_types)) is not None:
            block["type"] = word
            changed = True
    return changed


def restore_tool_ids(messages: list[Any], marked: set[int]) -> set[int]:
    """Pair marked tool ids with the one unanswered id they stand for; the indexes changed.

    A tool_use id and the tool_result that answers it carry the same id twice in the
    file; when one copy holds a mark and exactly one unpaired id on the other side fits
    it, the readable copy is the id.
    """
    uses: dict[str, list[dict[str, Any]]] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    where: dict[int, int] = {}
    for index, message in enumerate(messages):
        content = message.get("content") if type(message) is dict else None
        for block in content if type(content) is list else []:
            if type(block) is not dict:
                continue
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                uses.setdefault(block["id"], []).append(block)
                where[id(block)] = index
            elif block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str):
                results.setdefault(block["tool_use_id"], []).append(block)
                where[id(block)] = index
    changed: set[int] = set()
    for mine, theirs, key in ((uses, results, "id"), (results, uses, "tool_use_id")):
        for ident in [i for i in mine if MARK in i and i not in theirs]:
            blocks = [b for b in mine[ident] if where[id(b)] in marked]
            if len(blocks) != 1:
                continue
            open_ids = frozenset(i for i in theirs if i not in mine and MARK not in i)
            word = known_word(ident, open_ids)
            if word is None:
                continue
            blocks[0][key] = word
            mine.setdefault(word, []).append(blocks[0])
            changed.add(where[id(blocks[0])])
    return changed


def mark_repaired(message: Any, restored: bool, left_out: list[str] | None = None) -> None:
    """Say on ``message`` what was done to it (the field the rest of Taurus shows)."""
    if type(message) is not dict:
        return
    what = [SHOWN_AS_MARK] if _holds_mark(message) else []
    if restored or not what:
        what.append(SYNTAX_RESTORED)
    if left_out:
        what.append(LEFT_OUT + ", ".join(left_out))
    message[REPAIRED_FIELD] = "; ".join(what)


def _holds_mark(value: Any) -> bool:
    if isinstance(value, str):
        return MARK in value
    if isinstance(value, dict):
        return any(_holds_mark(k) or _holds_mark(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_mark(v) for v in value)
    return False
