"""Review findings on the chat's persistence and the session store: each test failed before
its fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from helpers.fake_api import text
from helpers.sessions import make_document, write_session
from test_chat_engine import make_app

from taurus_ops.chat.conversation import prepare_history


def test_name_in_the_chat_names_the_open_file_not_a_file_with_its_inner_id(fake_api, store):
    # a fork made the tutorial's way: cp the file under another name; its sessionId is unchanged
    original = write_session(store.session_dir, make_document("abc123", n_turns=1))
    fork = store.session_dir / "2025-01-19_abc123-fork.json"
    shutil.copy(original, fork)
    from taurus_ops.chat.commands import Commands

    app, ui = make_app(store)
    app.open_ref("abc123-fork")
    assert Commands(app)("/name fork-work") is True
    app.close()
    link = store.session_dir / "fork-work.json"
    assert os.path.realpath(link) == os.path.realpath(fork), ui.out


def test_blocks_in_the_wrong_role_of_a_hand_edited_file_do_not_make_the_api_refuse(fake_api, store):
    doc = make_document("hand0001", n_turns=1)
    # hand edits: a tool request pasted into a user message, a result into an assistant one
    doc["messages"].append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "I ran this myself:"},
                {"type": "tool_use", "id": "toolu_mine", "name": "bash", "input": {}},
            ],
        }
    )
    doc["messages"].append(
        {
            "role": "assistant",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_mine", "content": "ok"}],
        }
    )
    write_session(store.session_dir, doc)
    fake_api.add(text("fine"))
    app, ui = make_app(store)
    app.open_ref("hand0001")
    assert app.message("go on"), ui.out
    app.close()
    assert not fake_api.rejected
    assert "I ran this myself:" in json.dumps(fake_api.sent(0))


def test_a_repeated_tool_use_id_is_sent_once():
    use = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"file": "a"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}
    # a hand-edited file where one exchange was pasted twice
    messages = [
        {"role": "user", "content": "read a"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": [dict(use)]},
        {"role": "user", "content": [dict(result)]},
        {"role": "user", "content": "and now?"},
    ]
    from helpers.fake_api import validate_request

    sent = prepare_history(messages)
    validate_request({"model": "m", "max_tokens": 10, "messages": sent})
    assert "toolu_1" in json.dumps(sent)
