"""Bytes that are not UTF-8 inside a session: every message kept, nothing invented, marked.

One invalid byte put in place of every byte of a chat-shaped session, and inserted before
every byte, one position at a time: the salvage keeps every message (the bad byte shown as
U+FFFD, or, where it broke the JSON, read from the rest of the file), invents none, and each
message it had to touch says so in its ``repaired`` field. Longer runs of bad bytes may cost
a message, never invent one.
"""

from __future__ import annotations

import json
import random

import pytest
from helpers.doctoring import assert_api_accepts, compare
from helpers.jobs import run_doctor
from helpers.sessions import make_document, write_session
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taurus_ops.ops.doctor.document import FileContext, repair_document
from taurus_ops.ops.doctor.plan import _choose
from taurus_ops.ops.doctor.salvage import salvage
from taurus_ops.ops.doctor.unreadable import LEFT_OUT, REPAIRED_FIELD, SHOWN_AS_MARK
from taurus_ops.store import format as fmt

NAME = "2025-01-18_abc123.json"


def chat_document() -> dict:
    """A session as the chat writes it: timestamps, usage numbers, is_error flags, escapes."""
    doc = make_document("abc123", n_turns=2)
    for i, message in enumerate(doc["messages"]):
        message["timestamp"] = f"2025-01-18T10:{i:02d}:00.000Z"
        if message["role"] == "assistant":
            message["usage"] = {"model": "claude-sonnet-4-5", "inputTokens": 1200 + i}
        elif isinstance(message["content"], list):
            for block in message["content"]:
                block["is_error"] = False
    doc["messages"][0]["content"] = 'Fix the "login" bug:\n\tsee C:\\\\tmp and café → ok'
    return doc


DOC = chat_document()
RAW = fmt.dumps(DOC)
CTX = FileContext.of(NAME, 0)


def recovered(data: bytes) -> list:
    """The messages the doctor would write for ``data`` (the plan's own choice and repair)."""
    result = salvage(data)
    docs = [d for d in result.documents if isinstance(d.data, dict)]
    if not docs:
        return []
    main, _ = _choose(docs, CTX.file_id)
    return repair_document(main.data, CTX).data["messages"]


def _unmarked(message: dict) -> dict:
    return {k: v for k, v in message.items() if k != REPAIRED_FIELD}


def check_one(data: bytes, where: str) -> None:
    messages = recovered(data)
    score = compare(messages, DOC["messages"])
    assert score["invented"] == 0, (where, score)
    assert score["lost"] == 0, (where, score)
    for message in messages:
        if _unmarked(message) not in DOC["messages"]:  # touched: it must say so
            assert REPAIRED_FIELD in message, (where, message)
    assert_api_accepts(messages)


CHUNKS = 4


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("how", ["replaced", "inserted"])
def test_one_bad_byte_anywhere_keeps_every_message(how: str, chunk: int) -> None:
    size = len(RAW) // CHUNKS + 1
    for at in range(chunk * size, min(len(RAW), (chunk + 1) * size)):
        rest = RAW[at + 1 :] if how == "replaced" else RAW[at:]
        check_one(RAW[:at] + b"\xff" + rest, f"{how} at {at}: {RAW[at : at + 1]!r}")


def test_an_unreadable_digit_leaves_the_number_out_and_says_so() -> None:
    at = RAW.index(b'"inputTokens": 1201') + len(b'"inputTokens": 12')
    messages = recovered(RAW[:at] + b"\xff" + RAW[at + 1 :])
    (touched,) = [m for m in messages if REPAIRED_FIELD in m]
    assert "inputTokens" not in touched["usage"]
    assert LEFT_OUT + "usage.inputTokens" in touched[REPAIRED_FIELD]
    assert compare(messages, DOC["messages"])["lost"] == 0


def test_a_broken_quote_is_read_back_exactly() -> None:
    at = RAW.index(b'"tool_result"')  # the quote opening a block's type
    messages = recovered(RAW[:at] + b"\xfe" + RAW[at + 1 :])
    (touched,) = [m for m in messages if REPAIRED_FIELD in m]
    assert _unmarked(touched) in DOC["messages"]  # exactly the original message
    assert SHOWN_AS_MARK not in touched[REPAIRED_FIELD]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(RAW) - 1),
            # up to two bad bytes a place: with the escapes folded into it, a mark then stands
            # for at most the four characters helpers.doctoring.compare lets it stand for
            st.binary(min_size=1, max_size=2).map(lambda b: bytes(0xF8 | (x & 7) for x in b)),
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_runs_of_bad_bytes_never_invent_a_message(damage) -> None:
    # A run of bad bytes over the backslash of an escape changes what the escapes after it
    # mean (``C:\\\\tmp`` read as ``C?\\<tab>mp``): no reader can tell that from the text, so
    # such runs are left to test_one_bad_byte_anywhere_keeps_every_message's single bytes.
    assume(
        not any(
            not insert and len(bad) > 1 and b"\\" in RAW[at : at + len(bad) + 1]
            for at, bad, insert in damage
        )
    )
    data = RAW
    for at, bad, insert in sorted(damage, reverse=True):
        data = data[:at] + bad + data[at + (0 if insert else len(bad)) :]
    messages = recovered(data)
    assert compare(messages, DOC["messages"])["invented"] == 0
    assert_api_accepts(messages)


def test_doctor_keeps_the_message_marked_and_show_says_so(store, taurus_home, ops) -> None:
    path = write_session(store.session_dir, DOC)
    raw = path.read_bytes()
    at = raw.index(b"login\\") + 2
    path.write_bytes(raw[:at] + b"\xff" + raw[at + 1 :])
    report = run_doctor(taurus_home, store.session_dir, store.archive_dir, fix=True)
    assert report.exit_code == 0, report.lines()
    data = json.loads(path.read_bytes())
    first = data["messages"][0]
    assert first["content"].startswith('Fix the "lo\ufffdin" bug')
    assert first[REPAIRED_FIELD] == SHOWN_AS_MARK
    assert data["messages"][1:] == DOC["messages"][1:]
    shown = ops("show", "abc123")
    assert f"[repaired by the doctor: {SHOWN_AS_MARK}]" in shown.output
    again = run_doctor(taurus_home, store.session_dir, store.archive_dir)
    assert again.exit_code == 0 and not again.problems


def test_benchmark_kind_keeps_everything_on_many_sessions() -> None:
    """The benchmark's own damage (one rotten byte) over many real-shaped sessions."""
    from helpers.damage import invalid_utf8

    rng = random.Random(5)
    for n in range(40):
        doc = make_document(f"s{n:05d}", n_turns=rng.randint(1, 6), rng=rng)
        raw = fmt.dumps(doc)
        messages = recovered_for(invalid_utf8(raw, rng).data, doc)
        score = compare(messages, doc["messages"])
        assert score["invented"] == 0 and score["lost"] == 0, (n, score)


def recovered_for(data: bytes, doc: dict) -> list:
    result = salvage(data)
    docs = [d for d in result.documents if isinstance(d.data, dict)]
    ctx = FileContext.of(fmt.file_name(fmt.parse_time(doc["created"]), doc["sessionId"]), 0)
    main, _ = _choose(docs, ctx.file_id)
    return repair_document(main.data, ctx).data["messages"]
