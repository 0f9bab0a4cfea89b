"""A session's message text as the index keeps it, and finding terms in it.

Per session the index keeps:

- ``texts.body``: the text itself, zstd-compressed (level 3: a tenth smaller than zlib's
  fastest level, compressed in half its time and read back in under half: a search that
  must look through most sessions' text spends its time here): the roles (JSON: the distinct
  roles, then each message's as a number into them), a NUL, then every message's
  text (see ``facts.message_text``), NUL-separated, in message order (a message with
  no text is an empty part). Message text holds no NUL (it is stored as U+FFFD), so
  a part is exactly one message and a term never spans two; the first messages come
  within the first few hundred bytes, where a ``search -l`` mostly finds its terms.
  Once the index has sessions enough, bodies are compressed with a zstd dictionary
  trained on a sample of them (``meta`` 'dictionary', kept for the index's life): a
  fifth smaller. Each body's frame names its dictionary (0: none), so those stored
  before it was trained are read as they are.
- ``texts.head``: the first ``HEAD`` bytes of those texts, uncompressed (about 1% of
  the sessions' bytes): a term there needs nothing decompressed.
- ``words``: a contentless FTS5 table (the ``ascii`` tokenizer, with positions)
  holding each session's text in one row whose rowid is the session's key: its words
  are the runs of ASCII letters and digits and non-ASCII characters, ASCII letters
  lowered, which is search's case rule; a contentless row is deleted by giving its text
  again, which the stored body gives back.
- ``vocab``: every word the table holds, a newline apart, in chunks: a term's words are
  looked up in it (a word of the term inside a word of the text, the first at the end
  of one, the last at the start, a middle one whole). A lone word's sessions are those
  holding one of the words found; a term of several words is a phrase (its words one
  right after another, ``phrase_query``). That is a candidate set, which the text
  decides, except for a lone ASCII word, whose candidates are exactly the sessions
  holding it (``exact_word``). A word found in too many words of the text
  (``MAX_TERMS``) narrows nothing and is left out. The vocabulary is read back from the
  table after a build, and a session added later adds its words (a word no session
  holds any more stays in it, and finds none).

Matching is on UTF-8 bytes: ``bytes.lower()`` folds ASCII letters only, which is
search's case rule (as SQLite's LIKE and grep in the C locale).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import orjson
import zstandard

from taurus_ops.store.index.schema import Damaged

LEVEL = 3  # zstd level: 6 saves 3% more for three times the time (benchmarks/README)
HEAD = 384  # bytes of text kept uncompressed: where a session says what it is about
MAX_TERMS = 256  # words of the text one word of a term may find before it narrows nothing
CHUNK_BYTES = 1 << 20  # the vocabulary's words a row holds
DICTIONARY_BYTES = 112 << 10  # zstd's own default size: a fifth off the bodies (README)
DICTIONARY_SAMPLES = 100  # bodies a dictionary is trained on (more: no smaller bodies)
# the trainer's segment and d-mer sizes, given: searching for the best (zstd's default
# when none are given) takes the training four times as long, for bodies 0.1% smaller
DICTIONARY_K, DICTIONARY_D = 512, 8
DICTIONARY_FROM = 256  # sessions one look reads from which an index with none trains one
WORD = re.compile(rb"[0-9a-z\x80-\xff]+")  # the ascii tokenizer's words, of lowered bytes
SEPARATORS = re.compile(rb"[^0-9a-z\x80-\xff]+")


@dataclass(frozen=True)
class Packed:
    """What the index stores of one session's text."""

    body: bytes  # zstd(roles JSON, NUL, texts joined by NUL)
    words: str  # the word table's row: the texts a newline apart (``table_text``)
    head: bytes  # the texts' first ``HEAD`` bytes as they are, for a first look


def pack(roles: list[str], texts: list[str], dictionary: int = 0) -> Packed | None:
    """The stored form of a session's message texts (one role and text per message),
    compressed with the index's ``dictionary`` (its id; 0: none); None when no message
    has any text."""
    joined = "\x00".join(texts).encode("utf-8", "surrogatepass")
    if not joined.strip(b"\x00"):
        return None
    names = list(dict.fromkeys(roles))
    number = {name: n for n, name in enumerate(names)}
    roles_json = orjson.dumps([names, [number[r] for r in roles]])  # a few bytes a message
    body = _compressor(dictionary).compress(roles_json + b"\x00" + joined)
    return Packed(body, table_text(joined), joined[:HEAD])


def table_text(joined: bytes) -> str:
    """The word table's row for a session's texts joined by NUL (a NUL is a separator
    to the tokenizer, but SQLite's text may stop at one)."""
    return joined.replace(b"\x00", b"\n").decode("utf-8", "replace")


def words_in(text: str) -> set[bytes]:
    """The distinct words the table keeps of a row's text."""
    return set(WORD.findall(text.encode("utf-8", "surrogatepass").lower()))


def vocab_chunks(words: Iterable[bytes]) -> list[bytes]:
    """Words as the vocabulary's rows: each a newline before and after every word."""
    out: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for word in words:
        part.append(word)
        size += len(word) + 1
        if size >= CHUNK_BYTES:
            out.append(b"\n" + b"\n".join(part) + b"\n")
            part, size = [], 0
    if part:
        out.append(b"\n" + b"\n".join(part) + b"\n")
    return out


How = Literal["in", "end", "start", "whole"]


def term_words(term: str) -> list[tuple[bytes, How]]:
    """The words of a term, lowered, and where each must lie in a word of the text: the
    only one anywhere; with separators between, the first at a word's end, the last at
    a word's start and those between whole (a separator at the term's start or end
    makes its neighbour whole on that side too)."""
    parts = SEPARATORS.split(term.encode("utf-8", "surrogatepass").lower())
    out: list[tuple[bytes, How]] = []
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if not part:
            continue
        if last == 0:
            out.append((part, "in"))
        elif i == 0:
            out.append((part, "end"))
        elif i == last:
            out.append((part, "start"))
        else:
            out.append((part, "whole"))
    return out


def matching_words(vocab: bytes, part: bytes, how: How) -> set[str] | None:
    """The vocabulary's words holding ``part`` as ``how`` says; None when more than
    ``MAX_TERMS`` do (the part narrows nothing)."""
    limit = MAX_TERMS
    probe = {
        "in": part,
        "end": part + b"\n",
        "start": b"\n" + part,
        "whole": b"\n" + part + b"\n",
    }[how]
    found: set[str] = set()
    pos = vocab.find(probe)
    while pos != -1:
        start = vocab.rfind(b"\n", 0, pos + (1 if how in ("start", "whole") else 0)) + 1
        end = vocab.find(b"\n", pos + len(probe) - (1 if how in ("end", "whole") else 0))
        if end == -1:
            break
        found.add(vocab[start:end].decode("utf-8", "replace"))
        if len(found) > limit:
            return None
        pos = vocab.find(probe, end)
    return found


def any_of(words: Iterable[str]) -> str:
    """An FTS5 query for the rows holding any of ``words``."""
    return " OR ".join(_quoted(w) for w in sorted(words))


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def phrase_query(vocab: bytes, words: list[tuple[bytes, How]]) -> str | None:
    """An FTS5 query for the rows where the words of a term of two or more words come
    one right after another (``term_words`` says where each lies in a word of the
    text): a phrase for each pair of words of the vocabulary the first may end and the
    last may start, or, when those are too many, for each the first may end, the last a
    prefix. "" when no row can hold them; None for fewer than two words."""
    if len(words) < 2:
        return None
    (first, first_how), *middle, (last, last_how) = words
    starts: set[str] | None = matching_words(vocab, first, first_how)
    if starts is not None and not starts:
        return ""
    between = []
    for part, how in middle:
        if not matching_words(vocab, part, how):  # a whole word: in the vocabulary or not
            return ""
        between.append(part.decode("utf-8", "replace"))
    ends = matching_words(vocab, last, last_how)
    if ends is not None and not ends:
        return ""
    if starts is not None and ends is not None and len(starts) * len(ends) <= MAX_TERMS:
        # every pair spelt out: each phrase of whole words reads less of the table than a
        # phrase ending in a prefix, which merges the lists of every word it starts
        return " OR ".join(
            _quoted(" ".join([a, *between, b])) for a in sorted(starts) for b in sorted(ends)
        )
    # else the last word as a prefix, even of too many words to spell out: one merge of
    # their lists narrows far more than the other words alone
    tail = " ".join([*between, last.decode("utf-8", "replace")])
    prefix = " *" if last_how == "start" else ""
    if starts is None:
        return _quoted(tail) + prefix
    return " OR ".join(_quoted(f"{w} {tail}") + prefix for w in sorted(starts))


def exact_word(term: str) -> bool:
    """True if the word table's candidates for ``term`` (when it narrowed them) are
    exactly the sessions holding it, case aside: a lone ASCII word, found inside the
    table's words as it is inside the text."""
    return bool(term) and term.isascii() and WORD.fullmatch(term.lower().encode()) is not None


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


def text_from_body(body: bytes) -> str:
    """``table_text`` again, from a stored body (to delete the session's row)."""
    return table_text(unpack(body)[1])


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
_dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}  # id -> every one in use here


def train_dictionary(samples: list[bytes]) -> bytes | None:
    """A zstd dictionary for bodies like ``samples`` (raw bodies, as ``unpack`` reads
    them); None when they are too few or too alike to train one."""
    if len(samples) < DICTIONARY_SAMPLES // 4:
        return None
    try:
        made = zstandard.train_dictionary(
            DICTIONARY_BYTES,
            list[bytes | bytearray | memoryview](samples),
            k=DICTIONARY_K,
            d=DICTIONARY_D,
            level=LEVEL,
        )
    except zstandard.ZstdError:
        return None
    return made.as_bytes()


def use_dictionary(data: bytes) -> int:
    """Make a stored dictionary known to this process; its id (0: not a dictionary)."""
    try:
        made = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        number = made.dict_id()
    except zstandard.ZstdError:
        return 0
    if number:
        _dictionaries[number] = made
    return number


def _compressor(dictionary: int = 0) -> zstandard.ZstdCompressor:
    made: dict[int, zstandard.ZstdCompressor] | None = getattr(_contexts, "compressors", None)
    if made is None:
        made = _contexts.compressors = {}
    found = made.get(dictionary)
    if found is None:
        data = _dictionaries[dictionary] if dictionary else None
        found = made[dictionary] = zstandard.ZstdCompressor(level=LEVEL, dict_data=data)
    return found


def _decompress(body: bytes) -> bytes:
    made: dict[int, zstandard.ZstdDecompressor] | None = getattr(_contexts, "decompressors", None)
    if made is None:
        made = _contexts.decompressors = {}
    try:
        dictionary = zstandard.get_frame_parameters(body).dict_id
        found = made.get(dictionary)
        if found is None:
            if dictionary and dictionary not in _dictionaries:
                raise Damaged(f"stored text needs dictionary {dictionary}, which it has not")
            data = _dictionaries[dictionary] if dictionary else None
            found = made[dictionary] = zstandard.ZstdDecompressor(dict_data=data)
        return found.decompress(body)
    except zstandard.ZstdError as exc:
        raise Damaged(f"stored text: {exc}") from None
