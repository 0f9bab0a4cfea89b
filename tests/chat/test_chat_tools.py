"""The chat's tools, the permission rules and the REPL loop (no model involved)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from taurus_ops.chat.conversation import prepare_history
from taurus_ops.chat.permissions import Permissions, parse_answer
from taurus_ops.chat.repl import is_command, lines_reader, run_loop
from taurus_ops.chat.tools import Tools, call_fields
from taurus_ops.chat.ui import split_complete


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(Path.cwd(), bash_timeout=1, output_limit=300)


def test_file_tools_stay_inside_the_working_directory(tools, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    for name, args in [
        ("read", {"file": str(secret)}),
        ("read", {"file": "../outside.txt"}),
        ("write", {"file": "../x.txt", "content": "x"}),
    ]:
        result = tools.run(name, args)
        assert result.is_error and "outside the working directory" in result.content
    os.symlink(secret, "link.txt")  # a symlink leading out is refused too
    assert tools.run("read", {"file": "link.txt"}).is_error
    assert not (tmp_path / "x.txt").exists()
    free = Tools(Path.cwd(), allow_outside_cwd=True)
    assert "secret" in free.run("read", {"file": str(secret)}).content


def test_write_read_and_edit_exactly_once(tools):
    assert not tools.run("write", {"file": "src/a.py", "content": "x = 1\ny = 1\n"}).is_error
    assert "     1\tx = 1" in tools.run("read", {"file": "src/a.py"}).content
    twice = tools.run("edit", {"file": "src/a.py", "old_string": "= 1", "new_string": "= 2"})
    assert twice.is_error and "2 times" in twice.content
    missing = tools.run("edit", {"file": "src/a.py", "old_string": "zzz", "new_string": "q"})
    assert missing.is_error and "not found" in missing.content
    done = tools.run("edit", {"file": "src/a.py", "old_string": "y = 1", "new_string": "y = 3"})
    assert not done.is_error and "line 2" in done.content
    assert Path("src/a.py").read_text() == "x = 1\ny = 3\n"


def test_grep_skips_git_and_ignored_files(tools):
    Path(".gitignore").write_text("build/\n*.log\n")
    Path("build").mkdir()
    Path("build/out.py").write_text("needle\n")
    Path("debug.log").write_text("needle\n")
    Path("src").mkdir()
    Path("src/main.py").write_text("a\nneedle here\n")
    for git in (False, True):
        if git:
            if not shutil.which("git"):
                pytest.skip("git is not installed")
            subprocess.run(["git", "init", "-q"], check=True)
            Path(".git/needle").write_text("needle\n")
        found = tools.run("grep", {"pattern": "need+le"}).content
        assert found.splitlines() == ["src/main.py:2: needle here"], (git, found)
    assert set(tools.run("glob", {"pattern": "**/*.py"}).content.splitlines()) == {
        "src/main.py",
        "build/out.py",
    }
    assert tools.run("grep", {"pattern": "("}).is_error


def test_bash_runs_in_cwd_with_timeout_and_cap(tools):
    out = tools.run("bash", {"command": "pwd; exit 3"})
    assert out.is_error and os.path.realpath(Path.cwd()) in out.content
    assert "exit status 3" in out.content
    slow = tools.run("bash", {"command": "sleep 30"})
    assert slow.is_error and "timed out" in slow.content
    big = tools.run("bash", {"command": "seq 1 5000"})
    dropped = len("".join(f"{n}\n" for n in range(1, 5001))) - 150  # 100 head + 50 tail bytes
    assert big.content.startswith("1\n2\n3\n") and big.content.endswith("4999\n5000\n")
    assert f"[... {dropped} bytes dropped ...]" in big.content and len(big.content) <= 300


def test_tool_call_fields_are_what_the_jq_recipes_read(tmp_path):
    cwd = Path.cwd()
    assert call_fields("write", {"file": "./src/a.ts", "content": "abc"}, cwd) == {
        "file": "src/a.ts",
        "bytes": 3,
    }
    assert call_fields("edit", {"file": str(cwd / "b.ts"), "old_string": "x"}, cwd) == {
        "file": "b.ts"
    }
    assert call_fields("bash", {"command": "ls"}, cwd) == {"command": "ls"}
    assert call_fields("grep", {"pattern": "x", "path": "src"}, cwd) == {
        "pattern": "x",
        "path": "src",
    }


def test_permission_rules():
    p = Permissions.build(allow=["edit"], deny=["bash"], interactive=False)
    assert p.decide("read") == "allow"
    assert p.decide("edit") == "allow"
    assert p.decide("bash") == "deny"
    assert p.decide("write") == "deny"  # nobody to ask
    assert Permissions.build([], [], interactive=True).decide("write") == "ask"
    assert Permissions.build(["*"], [], interactive=False).decide("bash") == "allow"
    assert [parse_answer(a) for a in ("y", "Always", "", "n", "maybe")] == [
        "yes",
        "always",
        "no",
        "no",
        None,
    ]


def test_repl_loop_dispatches_messages_and_commands():
    seen: list[str] = []

    def on_command(line: str) -> bool:
        seen.append("cmd " + line)
        return line != "/exit"

    reason = run_loop(
        lines_reader(["hello", "  ", "/etc/hosts is odd", "/help", "/exit", "never"]),
        lambda text: seen.append("msg " + text),
        on_command,
    )
    assert reason == "command"
    assert seen == ["msg hello", "msg /etc/hosts is odd", "cmd /help", "cmd /exit"]
    assert run_loop(lines_reader(["a"]), seen.append, on_command) == "eof"
    assert is_command("/name x") and not is_command("/usr/bin/env")


def test_repl_loop_ctrl_c_stops_a_message_not_the_chat():
    calls: list[str] = []

    def on_message(text: str) -> None:
        calls.append(text)
        if text == "first":
            raise KeyboardInterrupt

    def read_then_ctrl_c():
        items = ["first", "second"]

        def read():
            if items:
                return items.pop(0)
            raise KeyboardInterrupt

        return read

    assert run_loop(read_then_ctrl_c(), on_message, lambda c: True) == "interrupt"
    assert calls == ["first", "second"]


def test_history_preparation_strips_and_repairs():
    messages = [
        {"role": "assistant", "content": "hello", "timestamp": "t"},
        {"role": "user", "content": "", "timestamp": "t"},
        {"role": "user", "content": "q", "usage": {}},
        {"role": "system", "content": "odd"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": ""},
                {"type": "tool_use", "id": "t1", "name": "read", "input": {}, "extra": 1},
            ],
            "interrupted": True,
        },
    ]
    out = prepare_history(messages)
    assert out[0]["role"] == "user"
    assert all(set(m) == {"role", "content"} for m in out)
    assert out[-2]["content"] == [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]
    assert out[-1]["content"][0]["tool_use_id"] == "t1"
    from helpers.fake_api import validate_request

    validate_request({"model": "m", "max_tokens": 1, "messages": out})


def test_streamed_markdown_is_split_at_complete_blocks():
    assert split_complete("para one\n\npara tw") == ("para one\n\n", "para tw")
    assert split_complete("```py\nx = 1\n\ny = 2\n") == ("", "```py\nx = 1\n\ny = 2\n")
    assert split_complete("```py\nx = 1\n```\nmore") == ("```py\nx = 1\n```\n", "more")
