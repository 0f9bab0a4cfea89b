"""End to end in a pseudo-terminal: type, watch the reply stream, approve a tool, Ctrl+D,
resume with -r, stop a streaming reply with Ctrl+C (its text shown once), SIGTERM at the
prompt, a typed byte that is not UTF-8."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from helpers.fake_api import slow, text, tool_use
from helpers.screen import Screen

pexpect = pytest.importorskip("pexpect")


def spawn(*args: str):
    env = dict(
        os.environ, TERM="xterm", COLUMNS="120", LINES="40", NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1"
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "taurus_ops.cli.chat_main", "chat", *args],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 120),
    )
    return child


def test_interactive_chat_tool_approval_and_resume(fake_api, store):
    fake_api.add(
        tool_use(
            "write", {"file": "hello.py", "content": "print('hi')\n"}, preface="I'll create it."
        ),
        text("Created **hello.py** for you."),
    )
    child = spawn()
    try:
        child.expect("Saved to: ")
        child.expect("taurus>")
        child.sendline("please create hello.py")
        child.expect("I'll create it.")
        child.expect("Allow write hello.py")
        child.expect(r"\[y\]es once")
        child.sendline("y")
        child.expect("Created hello.py")  # the tool's result line
        child.expect(r"Created \S*hello\.py\S* for you")  # the reply, markdown rendered (no **)
        child.expect("taurus>")
        child.sendcontrol("d")
        child.expect("Session saved: ")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert Path("hello.py").read_text() == "print('hi')\n"
    (path,) = store.files()
    doc = json.loads(path.read_text())
    assert len(doc["messages"]) == 4
    assert doc["toolCalls"][0]["tool"] == "write" and doc["toolCalls"][0]["file"] == "hello.py"

    fake_api.add(text("Still here, and I remember hello.py."))
    fake_api.add(slow("A long answer that streams slowly " * 20, delay=0.05))
    child = spawn("-r")
    try:
        child.expect("Resuming session from")
        child.expect("4 messages loaded")
        child.expect("You: please create hello.py")
        child.expect("Claude: Created \\*\\*hello.py\\*\\* for you.")
        child.expect("taurus>")
        child.sendline("do you remember?")
        child.expect("Still here, and I remember hello.py.")
        child.expect("taurus>")
        child.sendline("tell me a long story")
        child.expect("A long answer")
        child.sendcontrol("c")  # stops the reply, not the chat
        child.expect("interrupted")
        child.expect("taurus>")
        child.sendline("/cost")
        child.expect("This session:")
        child.expect("taurus>")
        child.kill(signal.SIGTERM)  # at the prompt: save and exit
        child.expect(pexpect.EOF)
    except Exception:
        print(child.before)
        raise
    finally:
        child.close()
    assert child.signalstatus is None and child.exitstatus == 128 + signal.SIGTERM
    history = fake_api.sent(2)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant", "user"]
    assert history[1]["content"][1]["name"] == "write"
    assert history[2]["content"][0]["type"] == "tool_result"
    assert history[4] == {"role": "user", "content": "do you remember?"}
    doc = json.loads(path.read_text())
    assert doc["messages"][-1]["interrupted"] is True
    assert doc["messages"][-1]["content"].startswith("A long answer")
    assert not fake_api.rejected


def test_closing_the_terminal_mid_reply_saves_it(fake_api, store):
    fake_api.add(slow("Words arrive slowly here and keep coming for a while. " * 6, delay=0.05))
    child = spawn()
    try:
        child.expect("taurus>")
        child.sendline("talk to me")
        child.expect("Words arrive")
        os.close(child.child_fd)  # the terminal goes away: the kernel sends SIGHUP
        child.child_fd = -1
        _, status = os.waitpid(child.pid, 0)
    finally:
        child.terminated = True
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGHUP
    (path,) = store.files()
    reply = json.loads(path.read_text())["messages"][-1]
    assert reply["role"] == "assistant" and reply["interrupted"] is True
    assert reply["content"].startswith("Words arrive")
    assert not [n for n in os.listdir(store.session_dir) if n.endswith(".lock")]


def test_ctrl_c_mid_reply_shows_the_partial_text_once(fake_api, store):
    fake_api.add(slow("Alpha beta gamma delta. " * 30, delay=0.05))
    child = spawn()
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        child.expect("taurus>")
        child.sendline("tell me")
        child.expect("Alpha beta")
        time.sleep(0.6)  # a line of it has arrived, drawn live
        child.sendcontrol("c")
        child.expect("interrupted")
        child.expect("taurus>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    (path,) = store.files()
    partial = json.loads(path.read_text())["messages"][-1]
    assert partial["interrupted"] is True and len(partial["content"]) < 100
    lines = Screen(120, 40).feed(seen.getvalue()).lines()
    shown = [line for line in lines if "Alpha beta" in line]
    assert shown == [partial["content"].strip()], lines  # once, and all of what was saved
    assert "^C" not in "\n".join(lines)


def test_a_typed_byte_that_is_not_utf8_is_kept_as_a_mark(fake_api, store, taurus_home):
    fake_api.add(text("Got it."))
    child = spawn()
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        child.expect("taurus>")
        os.write(child.child_fd, b"caf\xe9 question\r")  # as a terminal in Latin-1 sends it
        child.expect("Got it.")
        child.expect("taurus>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "Exception" not in seen.getvalue() and "Traceback" not in seen.getvalue()
    (path,) = store.files()
    assert json.loads(path.read_text())["messages"][0]["content"] == "caf\ufffd question"
    assert fake_api.sent(0) == [{"role": "user", "content": "caf\ufffd question"}]
    history = (taurus_home / "history").read_bytes().decode("utf-8")  # strictly UTF-8
    assert "+caf\ufffd question" in history
