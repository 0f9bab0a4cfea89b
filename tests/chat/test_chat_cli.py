"""`taurus chat` as a real process: no key, -p and stdin, SIGKILL mid-stream, SIGTERM and SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.fake_api import slow, text, tool_use

TAURUS = [sys.executable, "-m", "taurus_ops.cli.chat_main"]


def run(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TAURUS, *args], input=input, capture_output=True, text=True, timeout=timeout
    )


def sessions(store) -> list[dict]:
    return [json.loads(p.read_text()) for p in store.files()]


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_no_api_key_is_one_line_and_nothing_is_created(store):
    done = run("chat", "-p", "hello")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "ANTHROPIC_API_KEY" in lines[0] and "ANTHROPIC_BASE_URL" in lines[0]
    assert "Traceback" not in done.stderr
    assert store.files() == []


def test_help_does_not_load_the_sdk():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from taurus_ops.cli.chat_main import cli\n"
        "r = CliRunner().invoke(cli, ['chat', '--help'])\n"
        "assert r.exit_code == 0 and '--resume' in r.output, r.output\n"
        "print('anthropic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_print_mode_and_stdin_prompt_then_resume_by_name(fake_api, store):
    fake_api.add(text("First answer."), text("Second answer."), text("Third."))
    done = run("chat", "-p", "first question")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "First answer.\n"
    assert "Session saved:" in done.stderr
    (doc,) = sessions(store)
    store.name(doc["sessionId"], "my-work")
    done = run("chat", "-s", "my-work", input="second question from a pipe\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Second answer.\n"
    done = run("chat", "--resume", "-p", "third")
    assert fake_api.sent(-1) == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "second question from a pipe"},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "third"},
    ]
    assert len(store.files()) == 1


def test_sigkill_mid_stream_leaves_a_file_that_resumes(fake_api, store):
    fake_api.add(slow("This reply streams slowly and will never finish. " * 4, delay=0.05))
    proc = subprocess.Popen(
        [*TAURUS, "chat", "-p", "slow question"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: proc.stdout.read(4) != b"")  # the reply has started streaming
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    (path,) = store.files()
    doc = json.loads(path.read_text())  # a valid file
    assert doc["messages"][0]["content"] == "slow question"
    # a tool cut off by SIGKILL: the next resume mends it
    fake_api.add(tool_use("bash", {"command": "sleep 60"}), text("unused"), text("Resumed."))
    proc = subprocess.Popen(
        [*TAURUS, "chat", "-r", "-p", "run it", "--allow", "bash"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any(c.get("tool") == "bash" for m in _messages(path) for c in _uses(m)))
        time.sleep(0.2)
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    fake_api.replies.clear()
    fake_api.add(text("Resumed."))
    done = run("chat", "-r", "-p", "and now?")
    assert done.returncode == 0, done.stderr
    assert "mended 1" in done.stderr
    sent = fake_api.sent(-1)
    assert sent[0]["content"] == [
        {"type": "text", "text": "slow question"},
        {"type": "text", "text": "run it"},
    ]
    assert sent[1]["content"][0]["name"] == "bash"
    assert sent[2]["content"][0]["is_error"] is True
    assert not fake_api.rejected
    assert json.loads(path.read_text())["messages"][-1]["content"] == "Resumed."


def _messages(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["messages"]
    except (OSError, ValueError):
        return []


def _uses(message: dict) -> list[dict]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [{"tool": b["name"]} for b in content if b.get("type") == "tool_use"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_the_partial_reply_and_exit(fake_api, store, signum):
    fake_api.add(slow("Streaming words one after another for a while. " * 4, delay=0.05))
    proc = subprocess.Popen(
        [*TAURUS, "chat", "-p", "question"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        first = proc.stdout.read(8)
        assert first
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert b"Session saved" in err and b"Traceback" not in err
    (doc,) = sessions(store)
    reply = doc["messages"][-1]
    assert reply["role"] == "assistant" and reply["interrupted"] is True
    assert reply["content"].startswith("Stream")
    assert not [n for n in os.listdir(store.session_dir) if n.startswith(".")]  # lock released


def test_a_refused_key_leaves_no_new_session_but_a_resumed_one_keeps_the_prompt(fake_api, store):
    from helpers.fake_api import fault

    fake_api.add(fault(401))
    done = run("chat", "-p", "hello")
    assert done.returncode == 1 and "ANTHROPIC_API_KEY" in done.stderr
    assert "No session kept" in done.stderr and "Traceback" not in done.stderr
    assert store.files() == [] and os.listdir(store.session_dir) == []
    fake_api.add(text("First."), fault(401))
    assert run("chat", "-p", "first").returncode == 0
    (path,) = store.files()
    done = run("chat", "-s", path.name[11:-5], "-p", "second, refused")
    assert done.returncode == 1 and "Session saved" in done.stderr
    messages = json.loads(path.read_text())["messages"]
    assert [m["content"] for m in messages] == ["first", "First.", "second, refused"]


def test_a_prompt_and_a_folder_that_are_not_utf8(fake_api, store, tmp_path):
    work = os.path.join(os.fsencode(tmp_path), b"d\xe9p\xf4t")
    os.mkdir(work)
    with open(os.path.join(work, b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"needle\n")
    fake_api.add(tool_use("grep", {"pattern": "needle"}), text("Found it in caf\udce9."))
    done = subprocess.run(
        [*TAURUS, "chat", "-p", "-"],
        input=b"where is the needle \xff?\n",
        capture_output=True,
        cwd=work,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8") == "Found it in caf\ufffd.\n"  # shown with the mark
    assert "caf\ufffd.txt:1: needle" in done.stderr.decode("utf-8")
    (doc,) = sessions(store)
    assert doc["messages"][0]["content"] == "where is the needle \ufffd?"
    assert doc["messages"][2]["content"][0]["content"] == "caf\ufffd.txt:1: needle"
    assert doc["toolCalls"][0]["outcome"] == "ok" and not fake_api.rejected
    fake_api.add(text("Again."))
    done = subprocess.run(  # the prompt as an argument, with a byte that is not UTF-8
        [*TAURUS, "chat", "-r", "-p", b"and caf\xe9?"], capture_output=True, cwd=work, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (doc,) = sessions(store)
    assert doc["messages"][-2]["content"] == "and caf\ufffd?"
    assert doc["messages"][-1]["content"] == "Again."
