"""Hypothesis strategies for file names and text that are not valid UTF-8.

A POSIX file name is any bytes but ``/`` and NUL; Python gives a name that is not
UTF-8 as text with each undecodable byte as a lone surrogate (``surrogateescape``:
``b"caf\\xe9"`` is ``"caf\\udce9"``). Text from a user, a tool or the model can hold
lone surrogates too (``"\\ud800"`` from a JSON escape). These strategies produce both,
for every test that feeds names or text to Taurus.

    name_bytes()            any file-name bytes (valid UTF-8 or not)
    undecodable_names()     file-name bytes that are NOT valid UTF-8
    os_names(...)           such bytes as the ``str`` Python's os functions give
    session_like_names()    ``2025-01-01_<id>.json`` whose id part is not UTF-8
    odd_text()              text with lone surrogates (escaped bytes and lone escapes)
    invalid_utf8()          bytes that do not decode as UTF-8
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

# pieces a name is made of: plain letters, bytes that can never start or continue
# valid UTF-8, broken multi-byte sequences, and whole non-ASCII characters
_ASCII = st.sampled_from([bytes([c]) for c in b"abcXYZ019_-. ~#%?*[]'\" \t\\"])
_BAD_BYTES = st.integers(0x80, 0xFF).map(lambda b: bytes([b]))  # lone 0x80-0xff: never valid
_BROKEN = st.sampled_from(
    [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf", b"\xff\xfe", b"\xf8"]
)
_GOOD = st.sampled_from(["é", "ß", "€", "日本", "😀", "\u200b"]).map(str.encode)
_PIECES = st.one_of(_ASCII, _BAD_BYTES, _BROKEN, _GOOD)

NAME_MAX = 255  # bytes in one path component on Linux file systems


def _valid_component(raw: bytes) -> bool:
    return raw not in (b".", b"..") and b"/" not in raw and b"\0" not in raw


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def name_bytes(max_pieces: int = 12, hidden: bool = False) -> st.SearchStrategy[bytes]:
    """Bytes of one file-name component; ``hidden`` allows a leading dot."""
    names = st.lists(_PIECES, min_size=1, max_size=max_pieces).map(b"".join)
    names = names.filter(lambda raw: _valid_component(raw) and len(raw) <= NAME_MAX - 16)
    if not hidden:
        names = names.filter(lambda raw: not raw.startswith(b"."))
    return names


def undecodable_names(max_pieces: int = 12, hidden: bool = False) -> st.SearchStrategy[bytes]:
    """File-name bytes that are not valid UTF-8 (at least one bad byte is put in)."""
    return (
        st.tuples(name_bytes(max_pieces, hidden), _BAD_BYTES | _BROKEN, st.integers(0, NAME_MAX))
        .map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :])
        .filter(lambda raw: not _is_utf8(raw))  # a lead byte may complete its neighbour
    )


def os_names(names: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[str]:
    """Names as Python's os functions give them (surrogateescape)."""
    return (names or undecodable_names()).map(os.fsdecode)


def session_like_names(suffix: bytes = b".json") -> st.SearchStrategy[bytes]:
    """``2025-01-01_<id>.json`` whose id part is not UTF-8 (a session file by its look)."""
    return (
        st.tuples(st.integers(1, 28), undecodable_names(6))
        .map(lambda t: b"2025-01-%02d_" % t[0] + t[1] + suffix)
        .filter(lambda raw: not _is_utf8(raw))
    )


def odd_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text holding lone surrogates: undecodable bytes carried by surrogateescape and lone
    ``\\ud800``-style escapes, among ordinary characters."""
    surrogates = st.integers(0xD800, 0xDFFF).map(chr)
    escaped = _BAD_BYTES.map(lambda b: b.decode("utf-8", "surrogateescape"))
    chars = st.one_of(st.characters(), surrogates, escaped)
    return (
        st.lists(chars, min_size=1, max_size=max_size)
        .map("".join)
        .filter(lambda text: any(0xD800 <= ord(c) <= 0xDFFF for c in text))
    )


def invalid_utf8(max_pieces: int = 20) -> st.SearchStrategy[bytes]:
    """Bytes that do not decode as UTF-8."""
    return (
        st.lists(_PIECES, min_size=1, max_size=max_pieces)
        .map(b"".join)
        .filter(lambda raw: not _is_utf8(raw))
    )
