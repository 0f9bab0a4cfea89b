"""Any session document survives save and load unchanged (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.store import Session, SessionStore
from taurus_ops.store import format as fmt

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": st.text(min_size=1, max_size=12), "name": st.sampled_from(["read", "bash"]),
         "input": st.dictionaries(st.text(max_size=8), json_values, max_size=3)}
    ),
)  # fmt: skip
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant"]),
            "content": st.text() | st.lists(blocks, max_size=3),
        },
        optional={"usage": json_values, "interrupted": st.booleans()},
    ),
    max_size=8,
)
extra_fields = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(
        lambda k: k not in {"sessionId", "created", "updated", "messages", "toolCalls"}
    ),
    json_values,
    max_size=4,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    msgs=messages,
    extra=extra_fields,
    calls=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=4),
)
def test_arbitrary_sessions_round_trip(store: SessionStore, msgs, extra, calls) -> None:
    session = store.create()
    session.data.update(extra)
    session.data["messages"] = msgs
    session.data["toolCalls"] = calls
    expected = json.loads(json.dumps(session.data))
    store.save(session, touch=False, durable=False)
    loaded = store.load(session.path)
    assert loaded.data == expected
    assert json.loads(session.path.read_bytes()) == expected  # plain json (and jq) read the same
    session.path.unlink()


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_numbers_beyond_64_bits_survive(value: int) -> None:
    doc = {"sessionId": "big", "n": value}
    assert fmt.loads(fmt.dumps(doc)) == doc


def test_non_ascii_is_written_as_utf8_not_escapes() -> None:
    raw = Session.new("abc", title="café ☕ 🐂").to_bytes()
    assert "café ☕ 🐂".encode() in raw
