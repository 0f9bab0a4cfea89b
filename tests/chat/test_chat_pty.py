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
from helpers.sessions import make_document, write_session

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
        child.expect(r"\+print\('hi'\)")  # the diff of the new file, before the question
        child.expect(r"\[y\] yes, once")
        child.sendline("y")  # one key answers; the Enter after it is ignored
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


def test_single_keys_answer_after_the_diff_and_the_status_line_leaves_no_trace(fake_api, store):
    Path("a.py").write_text("def f():\n    return 1\n")
    fake_api.add(
        tool_use(
            "edit",
            {"file": "a.py", "old_string": "return 1", "new_string": "return 2"},
            preface="I'll fix f.",
        ),
        tool_use("bash", {"command": "rm -rf build"}),
        slow("Fixed f; left build alone.", delay=1.2, chunk=40),  # a wait before the text
    )
    child = spawn()
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        child.expect("taurus>")
        child.sendline("fix f")
        child.expect("Allow edit a.py")
        child.expect(r"-    return 1")
        child.expect(r"\+    return 2")
        child.expect(r"\[n\] no")
        child.send("y")  # no Enter
        child.expect("Edited a.py at line 2")
        child.expect(r"Allow bash rm -rf build")
        child.expect(r"\$ rm -rf build")
        child.expect(r"\[n\] no")
        child.send("n")
        child.expect("Fixed f; left build alone.")
        child.expect("taurus>")
        child.sendline("/cost")
        child.expect(r"This session: .* ≈ \$\d+\.\d+")
        child.expect("taurus>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert Path("a.py").read_text() == "def f():\n    return 2\n"
    raw = seen.getvalue()
    assert "Thinking…" in raw and "Running edit…" in raw  # the status line was drawn
    lines = Screen(120, 40).feed(raw).lines()
    screen = "\n".join(lines)
    assert "Thinking" not in screen and "Running" not in screen  # and is gone
    assert not any(ch in screen for ch in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    assert [line for line in lines if "Fixed f" in line] == ["Fixed f; left build alone."]
    assert "→ yes, once" in screen and "→ no" in screen
    (path,) = store.files()
    calls = json.loads(path.read_text())["toolCalls"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [("edit", "ok"), ("bash", "refused")]


def test_a_piped_one_shot_run_prints_no_status_line(fake_api, store):
    import subprocess

    fake_api.add(slow("Plain answer.", delay=0.5, chunk=40))
    done = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli.chat_main", "chat", "-p", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "Plain answer.\n"
    assert "Thinking" not in done.stderr and "\x1b" not in done.stdout + done.stderr


def _three_sessions(store) -> None:
    from datetime import UTC, datetime, timedelta

    here = str(Path.cwd().resolve())
    for hours, (sid, first, cwd) in enumerate(
        [("ccc333", "Other project work", "/elsewhere"), ("bbb222", "Plan the sprint", here),
         ("aaa111", "Fix the login bug", here)]
    ):  # fmt: skip
        doc = make_document(
            sid, created=datetime.now(UTC) - timedelta(hours=hours + 1), first=first
        )
        doc["cwd"] = cwd
        doc["messages"].append({"role": "user", "content": f"the word zebra{sid} is only here"})
        write_session(store.session_dir, doc)


def until_shown(child, seen: io.StringIO, text: str, timeout: float = 30) -> list[str]:
    """Read the child's output until ``text`` is on the emulated screen (the picker redraws
    only the cells that change, so the raw bytes need not hold it whole)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = Screen(120, 40).feed(seen.getvalue()).lines()
        if any(text in line for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never shown:\n" + "\n".join(lines))
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)


def test_the_picker_filters_resumes_and_cancels(fake_api, store):
    _three_sessions(store)
    fake_api.add(text("Back on the other project."))
    child = spawn("--pick")
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        lines = until_shown(
            child, seen, "2 of 3 sessions from this project"
        )  # this project's first
        assert any("aaa111" in line and "Fix the login bug" in line for line in lines)
        assert not any("ccc333" in line for line in lines)
        child.send("\t")  # all projects
        until_shown(child, seen, "3 of 3 sessions from all projects")
        child.send("zebraccc")  # only in a message: found through the index
        lines = until_shown(child, seen, "1 of 3 sessions from all projects")
        assert any("ccc333" in line and "Other project work" in line for line in lines)
        child.send("\r")
        child.expect("Resuming session from")
        child.expect("ccc333.json")
        child.expect("taurus>")
        child.sendline("still there?")
        child.expect("Back on the other project.")
        child.expect("taurus>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert fake_api.sent(0)[-1]["content"][-1]["text"] == "still there?"
    assert len(store.files()) == 3

    child = spawn("--pick")
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        until_shown(child, seen, "2 of 3 sessions from this project")
        child.send("\x1b")
        child.expect("No session chosen.")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and len(store.files()) == 3
