"""The fake Messages API itself: streaming, faults and the validation the real API does."""

from __future__ import annotations

import anthropic
import pytest
from helpers.fake_api import Invalid, drop, fault, text, tool_use, validate_request


def client(api) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.base_url, api_key="test", max_retries=0)


def test_streams_text_and_tool_use_and_records_requests(fake_api):
    fake_api.add(text("Hello there!"), tool_use("read", {"file": "a.py"}, preface="Look."))
    c = client(fake_api)
    messages = [{"role": "user", "content": "hi"}]
    with c.messages.stream(model="m", max_tokens=50, messages=messages) as stream:
        assert "".join(stream.text_stream) == "Hello there!"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.input_tokens > 0
    reply = c.messages.create(model="m", max_tokens=50, messages=messages)
    assert reply.stop_reason == "tool_use"
    assert reply.content[1].input == {"file": "a.py"}
    assert [r["messages"] for r in fake_api.requests] == [messages, messages]


def test_faults_and_dropped_stream(fake_api):
    fake_api.add(fault(401), fault(429, retry_after=3), drop("never finished", after=1))
    c = client(fake_api)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.AuthenticationError):
        c.messages.create(model="m", max_tokens=5, messages=messages)
    with pytest.raises(anthropic.RateLimitError) as info:
        c.messages.create(model="m", max_tokens=5, messages=messages)
    assert info.value.response.headers["retry-after"] == "3"
    with pytest.raises(Exception, match="incomplete chunked read"):
        with c.messages.stream(model="m", max_tokens=5, messages=messages) as stream:
            for _ in stream:
                pass


USE = {"type": "tool_use", "id": "t1", "name": "read", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "user", "content": "x", "usage": {}}], "Extra inputs"),
        ([{"role": "user", "content": ""}], "non-empty"),
        ([{"role": "user", "content": []}], "non-empty"),
        ([{"role": "assistant", "content": "x"}], "first message"),
        (
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": [USE]}],
            "tool_result",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [{"type": "text", "text": "y"}, RESULT]},
            ],
            "come first",
        ),
        ([{"role": "user", "content": [RESULT]}], "unexpected `tool_use_id`"),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y "}], "trailing"),
    ],
)
def test_validation_refuses_what_the_api_refuses(messages, problem):
    with pytest.raises(Invalid, match=problem):
        validate_request({"model": "m", "max_tokens": 5, "messages": messages})


def test_validation_accepts_combined_roles_and_paired_tools(fake_api):
    messages = [
        {"role": "user", "content": "x"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": [{"type": "text", "text": "t"}, USE]},
        {"role": "user", "content": [RESULT, {"type": "text", "text": "and"}]},
    ]
    validate_request({"model": "m", "max_tokens": 5, "messages": messages})
    c = client(fake_api)
    with pytest.raises(anthropic.BadRequestError, match="Extra inputs"):
        c.messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": "x", "interrupted": True}],
        )
    assert fake_api.rejected and c.messages.create(model="m", max_tokens=5, messages=messages)
