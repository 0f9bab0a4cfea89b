"""Damage a healthy session file each way the doctor must handle (tests and the benchmark).

Each damage takes the file's bytes and a random generator and returns ``Damaged``:
the new bytes and ``at``, the first byte offset that is damaged (``len(raw)`` when
nothing of the original is lost, e.g. a BOM or trailing garbage). Every message
whose bytes end before ``at`` lies wholly before the damage and must be recovered
exactly.

    for kind, damage in DAMAGES.items():
        hurt = damage(raw, random.Random(1))
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder(strict=False)
CONTROL = [bytes([c]) for c in range(1, 32) if c not in (9, 10, 13)]


@dataclass
class Damaged:
    kind: str
    data: bytes
    at: int  # the first damaged byte offset (len(original) if nothing was lost)


def message_spans(raw: bytes) -> list[tuple[int, int]]:
    """Byte (start, end) of each element of the top-level ``messages`` array of a whole file."""
    text = raw.decode("latin-1")  # one character per byte: offsets are byte offsets
    key = text.find('"messages"')
    pos = text.index("[", key) + 1
    spans = []
    while True:
        while text[pos] in " \t\r\n,":
            pos += 1
        if text[pos] == "]":
            return spans
        _, end = _DECODER.raw_decode(text, pos)
        spans.append((pos, end))
        pos = end


def before(raw: bytes, at: int) -> int:
    """How many messages lie wholly before byte ``at``."""
    return sum(1 for _, end in message_spans(raw) if end <= at)


def _cut_point(raw: bytes, rng: random.Random) -> int:
    return rng.randint(1, max(1, len(raw) - 2))


def truncate(raw: bytes, rng: random.Random) -> Damaged:
    """Cut off mid-write."""
    at = _cut_point(raw, rng)
    return Damaged("truncated", raw[:at], at)


def nul_tail(raw: bytes, rng: random.Random) -> Damaged:
    """What a power cut leaves: the tail of the file (from a random point) reads as NUL bytes."""
    at = _cut_point(raw, rng)
    return Damaged("nul-tail", raw[:at] + b"\0" * (len(raw) - at + rng.randint(0, 4096)), at)


def nul_hole(raw: bytes, rng: random.Random) -> Damaged:
    """A block in the middle lost to NUL bytes (a page never written)."""
    at = _cut_point(raw, rng)
    size = min(rng.choice([64, 512, 4096]), len(raw) - at)
    return Damaged("nul-hole", raw[:at] + b"\0" * size + raw[at + size :], at)


def trailing_garbage(raw: bytes, rng: random.Random) -> Damaged:
    """Bytes after the document (a shorter save over a longer file, without truncating)."""
    junk = rng.choice(
        [
            raw[rng.randint(0, len(raw) - 1) :][:300],
            bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 300))),
            b"}\n  ]\n}\n",
        ]
    )
    return Damaged("trailing-garbage", raw + junk, len(raw))


def concatenated(raw: bytes, rng: random.Random) -> Damaged:
    """Two documents in one file: an older version of the session, then the current one."""
    doc = json.loads(raw)
    older = dict(doc)
    older["messages"] = doc["messages"][: rng.randint(0, len(doc["messages"]))]
    first = (json.dumps(older, indent=2, ensure_ascii=False) + "\n").encode()
    return Damaged("concatenated", first + raw, len(first) + len(raw))


def bom(raw: bytes, rng: random.Random) -> Damaged:
    """A byte-order mark (an editor saved it)."""
    return Damaged("bom", b"\xef\xbb\xbf" + raw, len(raw))


def invalid_utf8(raw: bytes, rng: random.Random) -> Damaged:
    """One byte rotted into a byte that is not UTF-8."""
    at = rng.randint(0, len(raw) - 1)
    bad = rng.choice([b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xe2"])
    return Damaged("invalid-utf8", raw[:at] + bad + raw[at + 1 :], at)


def control_chars(raw: bytes, rng: random.Random) -> Damaged:
    """Stray control characters inserted at random places."""
    out = raw
    first = len(raw)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(out) - 1)
        out = out[:at] + rng.choice(CONTROL) + out[at:]
        first = min(first, at)
    return Damaged("control-chars", out, first)


def empty(raw: bytes, rng: random.Random) -> Damaged:
    """A file with no bytes at all (created, never written)."""
    return Damaged("empty", b"", 0)


DAMAGES: dict[str, Callable[[bytes, random.Random], Damaged]] = {
    "truncated": truncate,
    "nul-tail": nul_tail,
    "nul-hole": nul_hole,
    "trailing-garbage": trailing_garbage,
    "concatenated": concatenated,
    "bom": bom,
    "invalid-utf8": invalid_utf8,
    "control-chars": control_chars,
    "empty": empty,
}


# -- format damage: parses, but breaks the session format ---------------------------------
def format_damages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Documents that parse but break the format, by kind (``doc`` is not changed)."""
    out: dict[str, dict[str, Any]] = {}
    d = json.loads(json.dumps(doc))
    del d["sessionId"]
    out["missing-id"] = d
    d = json.loads(json.dumps(doc))
    del d["created"]
    out["missing-created"] = d
    d = json.loads(json.dumps(doc))
    del d["messages"]
    out["missing-messages"] = d
    d = json.loads(json.dumps(doc))
    d["messages"] = {"oops": True}
    out["messages-not-list"] = d
    d = json.loads(json.dumps(doc))
    d["messages"].insert(1, {"role": "system", "content": "You are helpful."})
    out["unknown-role"] = d
    d = json.loads(json.dumps(doc))
    d["messages"].insert(1, {"role": "user", "content": 42})
    out["bad-content"] = d
    d = json.loads(json.dumps(doc))
    for i, m in enumerate(d["messages"]):
        if isinstance(m["content"], list) and any(b["type"] == "tool_use" for b in m["content"]):
            del d["messages"][i + 1 :]
            break
    out["dangling-tool-use"] = d
    d = json.loads(json.dumps(doc))
    d["updated"] = "yesterday-ish"
    d["created"] = 1737195825
    out["bad-timestamps"] = d
    d = json.loads(json.dumps(doc))
    d["toolCalls"] = "read"
    out["toolcalls-not-list"] = d
    return out
