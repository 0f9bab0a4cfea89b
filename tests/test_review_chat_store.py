"""Review findings on the chat's persistence and the session store: each test failed before
its fix."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from helpers.chat import make_app, saved
from helpers.fake_api import text
from helpers.sessions import make_document, write_session

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


def test_whitespace_only_text_is_never_sent(fake_api, store):
    # the real API refuses "text content blocks must contain non-whitespace text"
    doc = make_document("blank001", n_turns=2)
    doc["messages"][1]["content"].insert(0, {"type": "text", "text": "\n\n"})
    doc["messages"][2]["content"][0]["content"] = "  \n"  # a command that printed blank lines
    doc["messages"][6]["content"][0]["content"] = [
        {"type": "text", "text": " "},
        {"type": "tool_result", "tool_use_id": "x", "content": "nested"},
    ]
    write_session(store.session_dir, doc)
    fake_api.add(text("fine"))
    app, ui = make_app(store)
    app.open_ref("blank001")
    assert app.message("go on"), ui.out
    app.close()
    sent = fake_api.sent(0)
    for message in sent:
        for block in message["content"] if isinstance(message["content"], list) else []:
            inner = block.get("content")
            for b in [block, *(inner if isinstance(inner, list) else [])]:
                assert b["type"] != "text" or b["text"].strip(), sent
            assert not isinstance(inner, str) or inner.strip(), sent
            assert not isinstance(inner, list) or all(
                b["type"] in ("text", "image", "document") for b in inner
            ), sent


def test_hand_edited_fields_of_odd_types_resume_without_a_traceback(fake_api, store):
    from taurus_ops.chat.run import ChatOptions, run_chat
    from taurus_ops.store.lock import is_locked

    odd = make_document("odd00001", n_turns=1)
    odd["allowedTools"] = [{"tool": "bash"}, "read"]
    odd["cwd"] = "/tmp/\x00x"
    path = write_session(store.session_dir, odd)
    fake_api.add(text("fine"))
    assert run_chat(ChatOptions(session="odd00001", prompt="go on")) == 0
    assert not is_locked(path)
    assert json.loads(path.read_text())["messages"][-1]["content"] == "fine"


def test_tool_results_after_text_in_one_hand_edited_message_are_sent_first():
    from helpers.fake_api import validate_request

    messages = [
        {"role": "user", "content": "read a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "here:"},
                {"type": "tool_result", "tool_use_id": "t1", "content": "A"},
            ],
        },
    ]
    validate_request({"model": "m", "max_tokens": 10, "messages": prepare_history(messages)})


def _random_history(rng: random.Random) -> list[dict]:
    ids = ["t1", "t2", "t3"]

    def block() -> dict:
        kind = rng.choice(["text", "text", "tool_use", "tool_result", "thinking"])
        if kind == "text":
            return {"type": "text", "text": rng.choice(["hi", "", "  ", "a "])}
        if kind == "tool_use":
            return {"type": "tool_use", "id": rng.choice(ids), "name": "read", "input": {}}
        if kind == "tool_result":
            return {
                "type": "tool_result",
                "tool_use_id": rng.choice(ids),
                "content": rng.choice(["ok", "", " ", None, [], [{"type": "text", "text": " "}]]),
            }
        return {"type": "thinking", "thinking": "x"}

    def message() -> dict:
        role = rng.choice(["user", "assistant", "assistant", "user", "system"])
        content = rng.choice(
            [rng.choice(["hello", "", "  ", "x  "]), None]
            + [[block() for _ in range(rng.randint(0, 3))]] * 2
        )
        return {"role": role, "content": content}

    return [message() for _ in range(rng.randint(0, 6))]


def test_any_hand_edited_history_is_sent_in_a_form_the_api_accepts():
    from helpers.fake_api import validate_request

    rng = random.Random(20261127)
    for _ in range(2000):
        messages = [*_random_history(rng), {"role": "user", "content": "next"}]
        body = {"model": "m", "max_tokens": 10, "messages": prepare_history(messages)}
        validate_request(body)


def test_compact_whose_archive_move_fails_continues_locked_in_the_new_session(fake_api, store):
    from taurus_ops.chat.commands import Commands
    from taurus_ops.store.lock import is_locked

    fake_api.add(text("We fixed login."), text("SUMMARY: login fixed."), text("Next."))
    app, ui = make_app(store)
    old = app.start_new()
    app.message("fix login")
    store.archive_dir.mkdir(parents=True, exist_ok=True)
    (store.archive_dir / Path(old.path).name).write_text("{}")  # the archive has that name
    assert Commands(app)("/compact") is True
    assert app.session.id != old.id and app.session.data["parentSession"] == old.id
    assert is_locked(Path(app.session.path)) and not is_locked(Path(old.path))
    assert json.loads(Path(old.path).read_text())["messages"][-1]["content"] == "We fixed login."
    assert any("stays at" in line for line in ui.out), ui.out
    app.message("what next?")
    app.close()
    assert len(store.files()) == 2


def test_ctrl_c_while_the_finished_reply_is_drawn_keeps_the_reply(fake_api, store):
    from helpers.fake_api import tool_use

    fake_api.add(text("The whole answer."), tool_use("write", {"file": "a.txt", "content": "x"}))
    app, ui = make_app(store, allow=["write"])
    drawn = []

    def reply_end(reply):  # Ctrl+C (or SIGTERM) lands while the last block is rendered
        drawn.append(reply)
        raise KeyboardInterrupt

    ui.reply_end = reply_end
    app.start_new()
    app.message("explain")
    assert saved(app)["messages"][-1]["content"] == "The whole answer."
    app.message("write it")  # a tool request drawn when Ctrl+C came: kept, but not run
    app.close()
    doc = saved(app)
    assert doc["messages"][-1]["content"][0]["type"] == "tool_use"
    assert not Path("a.txt").exists() and len(drawn) == 2


def test_ctrl_c_while_a_finished_tool_is_shown_records_its_result(fake_api, store):
    from helpers.fake_api import tool_use

    fake_api.add(tool_use("write", {"file": "a.txt", "content": "x"}), text("unused"))
    app, ui = make_app(store, allow=["write"])

    def tool_end(name, result, outcome):
        raise KeyboardInterrupt

    ui.tool_end = tool_end
    app.start_new()
    app.message("write it")
    app.close()
    doc = saved(app)
    assert Path("a.txt").read_text() == "x"
    result = doc["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and "Interrupted" not in result["content"], result
    assert doc["toolCalls"][0]["outcome"] == "ok" and len(fake_api.requests) == 1


def test_a_lock_sidecar_that_is_a_symlink_never_writes_through_it(store, tmp_path):
    # e.g. unpacked from someone else's tarball: the lock must not truncate what it points to
    from taurus_ops.errors import SessionLocked
    from taurus_ops.store.lock import SessionLock, lock_path

    path = write_session(store.session_dir, make_document("abc123", n_turns=1))
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    lock_path(path).symlink_to(victim)
    with SessionLock(path) as lock:
        assert not lock.path.is_symlink()
        try:
            SessionLock(path).acquire()
            raise AssertionError("a second writer was let in")
        except SessionLocked:
            pass
    assert victim.read_text() == "precious\n"
    assert not lock_path(path).exists() and not lock_path(path).is_symlink()


def test_sigterm_at_a_permission_prompt_ends_the_turn(fake_api, store):
    from helpers.fake_api import tool_uses

    fake_api.add(
        tool_uses([("bash", {"command": "make"}), ("write", {"file": "a", "content": "x"})]),
        text("trying another way"),
    )
    app, ui = make_app(store)

    def ask_permission(name, args):  # the handler sets stopping; the prompt then answers no
        ui.asked.append(name)
        app.stopping = True
        return "no"

    ui.ask_permission = ask_permission
    app.start_new()
    app.message("build it")
    app.close()
    assert ui.asked == ["bash"] and len(fake_api.requests) == 1
    results = saved(app)["messages"][-1]["content"]
    assert [r["is_error"] for r in results] == [True, True]
    assert "Not run" in results[1]["content"]


def test_a_name_made_through_a_symlinked_home_is_the_tutorials_plain_link(
    fake_api, tmp_path, monkeypatch
):
    from taurus_ops.chat.commands import Commands
    from taurus_ops.config import load_config
    from taurus_ops.store import SessionStore

    real = tmp_path / "disk" / "taurus"
    real.mkdir(parents=True)
    (tmp_path / "user-home" / "linked").symlink_to(real)
    monkeypatch.setenv("TAURUS_HOME", str(tmp_path / "user-home" / "linked"))
    store = SessionStore.from_config(load_config())
    fake_api.add(text("hi"))
    app, _ = make_app(store)
    session = app.start_new()
    app.message("hello")
    assert Commands(app)("/name hello-work") is True
    app.close()
    link = store.session_dir / "hello-work.json"
    assert os.readlink(link) == Path(session.path).name  # ln -s 2025-..._id.json hello-work.json


def test_an_empty_session_reference_is_refused_not_a_new_session(fake_api, store):
    import pytest

    from taurus_ops.chat.run import ChatOptions, run_chat
    from taurus_ops.errors import TaurusError

    # `taurus chat -s "$ID" -p ...` with $ID unset must not quietly talk in a new session
    with pytest.raises(TaurusError, match="empty"):
        run_chat(ChatOptions(session="", prompt="continue"))
    assert store.files() == [] and fake_api.requests == []


def test_terminal_notices_show_brackets_as_typed():
    import io

    from rich.console import Console

    from taurus_ops.chat.ui import TerminalUI

    out = io.StringIO()
    ui = TerminalUI(Console(file=out, width=200, color_system=None))
    # a session folder like ~/work/[draft]/sessions, an API message quoting "[/docs]"
    ui.notice("Session saved: ~/work/[draft]/s.json")
    ui.notice("rate limited (429: see [/docs]); retrying in 1.0 s")
    assert "~/work/[draft]/s.json" in out.getvalue()
    assert "see [/docs]" in out.getvalue()


def test_a_move_cut_off_after_its_verified_copy_is_finished_by_the_next_move(store):
    # across file systems the copy is linked into place before the original goes; a crash in
    # between leaves two identical files (different inodes) that moving again must settle
    from taurus_ops.store.move import move_file

    path = write_session(store.session_dir, make_document("abc123", n_turns=1))
    store.archive_dir.mkdir(parents=True)
    copy = store.archive_dir / path.name
    shutil.copy2(path, copy)
    assert move_file(path, store.archive_dir) == copy
    assert not path.exists() and json.loads(copy.read_text())["sessionId"] == "abc123"
    # a different file under that name is still never overwritten
    other = write_session(store.session_dir, make_document("abc123", n_turns=2))
    try:
        move_file(other, store.archive_dir)
        raise AssertionError("overwrote a different archived file")
    except Exception as exc:
        assert "already exists" in str(exc)
    assert (
        other.exists()
        and json.loads(copy.read_text())["messages"] != json.loads(other.read_text())["messages"]
    )
