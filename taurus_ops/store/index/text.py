"""A session's message text as the index keeps it, and finding terms in it.

Per session the index keeps two things:

- ``texts.body``: the text itself, zstd-compressed (level 3: a tenth smaller than zlib's
  fastest level, compressed in half its time and read back in under half: a search that
  must look through most sessions' text spends its time here): the roles (JSON: the distinct
  roles, then each message's as a number into them), a NUL, then every message's
  text (see ``facts.message_text``), NUL-separated, in message order (a message with
  no text is an empty part). Message text holds no NUL (it is stored as U+FFFD), so
  a part is exactly one message and a term never spans two; the first messages come
  within the first few hundred bytes, where a ``search -l`` mostly finds its terms.
- ``texts.head``: the first ``HEAD`` bytes of those texts, uncompressed (about 1% of
  the sessions' bytes): a term there needs nothing decompressed.
- ``grams``: a contentless FTS5 trigram table holding each session's distinct words
  (text split at ASCII whitespace, ASCII letters lowered), sorted, a newline apart,
  in one row (a session of more than ``WORDS_A_ROW`` distinct words in several); a
  contentless row is deleted by giving its text again, and the same text always gives
  the same rows. Every trigram of a term that lies within one of its words lies within
  one word of any text holding the term (a query's words hold no newline, so the
  trigrams that span two stored words are never asked for), so asking for a row with
  all of them gives every session that can hold it (and some that cannot): a
  candidate set, which the text decides. Rows of a few hundred words would let fewer
  sessions through for an identifier (about half as many in the benchmark corpus) but
  cost FTS5 over twice the time and space to build: every common trigram is stored
  once per row (see ``benchmarks/README.md``).

Matching is on UTF-8 bytes: ``bytes.lower()`` folds ASCII letters only, which is
search's case rule (as SQLite's LIKE and grep in the C locale).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import zstandard

from taurus_ops.store.index.schema import Damaged

LEVEL = 3  # zstd level: 6 saves 3% more for three times the time (benchmarks/README)
HEAD = 384  # bytes of text kept uncompressed: where a session says what it is about
MAX_GRAMS = 24  # trigrams asked for per term: a sample narrows enough, every one costs
WORDS_A_ROW = 8192  # a session's words a trigram row holds (fewer: fewer false candidates)
MAX_ROWS = 64  # trigram rows a session has at most
KEY_BITS = 40  # a trigram row's rowid: its number << KEY_BITS | the session's key, so the
# rowids of one number are as close as the keys (FTS5 stores each rowid as the difference
# to the one before: near rowids take a byte, far ones two or three)


def gram_rowid(key: int, number: int) -> int:
    return number << KEY_BITS | key


def gram_key(rowid: int) -> int:
    return rowid & ((1 << KEY_BITS) - 1)


@dataclass(frozen=True)
class Packed:
    """What the index stores of one session's text."""

    body: bytes  # zstd(roles JSON, NUL, texts joined by NUL)
    words: list[str]  # the trigram table's rows: the distinct words, a share in each
    head: bytes  # the texts' first ``HEAD`` bytes as they are, for a first look


def pack(roles: list[str], texts: list[str]) -> Packed | None:
    """The stored form of a session's message texts (one role and text per message);
    None when no message has any text."""
    joined = "\x00".join(texts).encode("utf-8", "surrogatepass")
    if not joined.strip(b"\x00"):
        return None
    names = list(dict.fromkeys(roles))
    number = {name: n for n, name in enumerate(names)}
    roles_json = orjson.dumps([names, [number[r] for r in roles]])  # a few bytes a message
    body = _compressor().compress(roles_json + b"\x00" + joined)
    return Packed(body, words_of(joined), joined[:HEAD])


def words_of(joined: bytes, per_row: int | None = None) -> list[str]:
    """The trigram table's rows for a session: its distinct words in order, about
    ``per_row`` (``WORDS_A_ROW``) to a row (at most ``MAX_ROWS`` rows), a newline apart."""
    words = sorted(set(joined.replace(b"\x00", b"\n").lower().split()))
    if not words:
        return []
    rows = min(MAX_ROWS, -(-len(words) // (per_row or WORDS_A_ROW)))
    size = -(-len(words) // rows)
    return [
        b"\n".join(words[i : i + size]).decode("utf-8", "replace")
        for i in range(0, len(words), size)
    ]


def unpack(body: bytes) -> tuple[list[str], bytes]:
    """(roles, texts joined by NUL) of a stored body."""
    raw = _decompress(body)
    cut = raw.find(b"\x00")
    try:
        if cut == -1:
            raise ValueError("no roles")
        names, numbers = orjson.loads(raw[:cut])
        roles: list[str] = [names[n] for n in numbers]
    except (TypeError, ValueError, IndexError):
        raise Damaged("stored text has no roles") from None
    return roles, raw[cut + 1 :]


def words_from_body(body: bytes) -> list[str]:
    """``words_of`` again, from a stored body (to delete the session's trigram row)."""
    return words_of(unpack(body)[1])


def needle(term: str, case_sensitive: bool) -> bytes | None:
    """The bytes to look for; None for a term no message text can hold (a NUL, which is
    stored as U+FFFD, or a lone surrogate, which no stored text has)."""
    if "\x00" in term:
        return None
    try:
        raw = term.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return raw if case_sensitive else raw.lower()


def gram_queries(term: str) -> list[str]:
    """FTS5 queries, one a word of ``term`` with three characters or more: each asks for
    the rows holding that word's trigrams. A session may hold the term only if each of
    them finds one of its rows (a word of the text lies in one row, but the words of a
    phrase may lie in different rows); none at all: every session may."""
    out = []
    for word in dict.fromkeys(term.encode("utf-8", "surrogatepass").lower().split()):
        text = word.decode("utf-8", "replace")
        grams = {text[i : i + 3] for i in range(len(text) - 2)}
        if grams:
            chosen = sorted(grams, key=lambda g: (-len(g.encode("utf-8", "surrogatepass")), g))
            out.append(" AND ".join('"' + g.replace('"', '""') + '"' for g in chosen[:MAX_GRAMS]))
    return out


def message_numbers(joined: bytes, found: bytes) -> list[int]:
    """The numbers of the messages (NUL-separated parts of ``joined``) holding ``found``."""
    out = []
    number = 0
    counted = 0
    pos = joined.find(found)
    while pos != -1:
        number += joined.count(b"\x00", counted, pos)
        out.append(number)
        end = joined.find(b"\x00", pos + len(found))
        if end == -1:
            break
        counted = end
        pos = joined.find(found, end + 1)
    return out


def message_text(joined: bytes, number: int) -> str:
    """The text of message ``number``."""
    parts = joined.split(b"\x00", number + 1)
    return parts[number].decode("utf-8", "replace") if number < len(parts) else ""


def head_holds_all(head: bytes, needles: Iterable[bytes], fold: bool) -> bool:
    """True if the first bytes of the texts already hold every needle (a needle cut off
    at the end of the head is looked for in the whole text instead)."""
    hay = head.lower() if fold else head
    return all(n in hay for n in needles)


def holds_all(body: bytes, needles: Iterable[bytes], fold: bool) -> bool:
    """True if the stored text holds every needle somewhere (the roles before the first
    NUL left out)."""
    wanted = list(needles)
    if not wanted:
        return True
    raw = _decompress(body)
    hay = raw[raw.find(b"\x00") + 1 :]
    if fold:
        hay = hay.lower()
    return all(n in hay for n in wanted)


_contexts = threading.local()  # a zstd context serves one thread at a time


def _compressor() -> zstandard.ZstdCompressor:
    made: zstandard.ZstdCompressor | None = getattr(_contexts, "compressor", None)
    if made is None:
        made = _contexts.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return made


def _decompress(body: bytes) -> bytes:
    made: zstandard.ZstdDecompressor | None = getattr(_contexts, "decompressor", None)
    if made is None:
        made = _contexts.decompressor = zstandard.ZstdDecompressor()
    try:
        return made.decompress(body)
    except zstandard.ZstdError as exc:
        raise Damaged(f"stored text: {exc}") from None
