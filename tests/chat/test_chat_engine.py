"""The chat in-process: the real SDK over HTTP to the fake Messages API, real tools, real store."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.chat import make_app, saved
from helpers.fake_api import drop, fault, overloaded_midstream, text, tool_use, tool_uses
from helpers.sessions import make_document, write_session

from taurus_ops.chat.conversation import prepare_history
from taurus_ops.config import load_config
from taurus_ops.store import format as fmt


def test_tool_round_trip_saves_every_step(fake_api, store):
    Path("notes.txt").write_text("alpha\nbeta login\n")
    fake_api.add(
        tool_use("read", {"file": "notes.txt"}, preface="Reading."),
        tool_uses([("grep", {"pattern": "login"}), ("glob", {"pattern": "*.txt"})]),
        text("Line 2 mentions login."),
    )
    app, ui = make_app(store)
    app.start_new()
    assert app.message("where is login?")
    app.close()
    doc = saved(app)
    # user, assistant(read), results, assistant(grep+glob), results, assistant
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"] * 3
    results = doc["messages"][2]["content"]
    assert "beta login" in results[0]["content"]
    second = doc["messages"][4]["content"]
    assert [r["tool_use_id"] for r in second] == [
        b["id"] for b in doc["messages"][3]["content"] if b["type"] == "tool_use"
    ]
    assert "notes.txt:2: beta login" in second[0]["content"]
    assert "notes.txt" in second[1]["content"]
    calls = doc["toolCalls"]
    assert [c["tool"] for c in calls] == ["read", "grep", "glob"]
    assert calls[0]["file"] == "notes.txt" and calls[1]["pattern"] == "login"
    assert all(c["outcome"] == "ok" and isinstance(c["durationMs"], int) for c in calls)
    assert all(fmt.parse_time(c["timestamp"]) for c in calls)
    # the model saw the whole history each time, without Taurus's own fields
    last = fake_api.sent(-1)
    assert last == prepare_history(doc["messages"][:-1])
    assert all(set(m) == {"role", "content"} for r in fake_api.requests for m in r["messages"])
    assert not fake_api.rejected
    assert ui.texts[-1] == "Line 2 mentions login."


def test_usage_is_stored_per_message_and_in_totals(fake_api, store):
    usage = {"input_tokens": 120, "output_tokens": 30, "cache_read_input_tokens": 7}
    fake_api.add(
        tool_use("read", {"file": "x"}, usage=usage),
        text("no such file", usage={**usage, "cache_creation_input_tokens": 5}),
    )
    app, _ = make_app(store)
    app.start_new()
    app.message("read x")
    app.close()
    doc = saved(app)
    replies = [m for m in doc["messages"] if m["role"] == "assistant"]
    assert replies[0]["usage"] == {
        "model": "claude-test",
        "inputTokens": 120,
        "outputTokens": 30,
        "cacheReadTokens": 7,
        "cacheCreationTokens": 0,
    }
    assert doc["usage"] == {
        "model": "claude-test",
        "inputTokens": 240,
        "outputTokens": 60,
        "cacheReadTokens": 14,
        "cacheCreationTokens": 5,
    }
    assert doc["model"] == "claude-test"
    assert "240" in app.cost_lines()[1]


@pytest.mark.parametrize(
    ("answers", "runs", "asked"),
    [
        (["yes", "yes"], 2, 2),  # yes once: asked every time
        (["always"], 2, 1),  # always: asked once for this session
        (["no", "no"], 0, 2),  # no: refused, the model is told
    ],
)
def test_permission_answers(fake_api, store, answers, runs, asked):
    for n in range(2):
        fake_api.add(tool_use("bash", {"command": f"echo run{n} >> out.txt"}), text(f"done {n}"))
    app, ui = make_app(store, answers=answers)
    app.start_new()
    app.message("first")
    app.message("second")
    app.close()
    assert ui.asked == ["bash"] * asked
    out = Path("out.txt")
    assert (out.read_text().count("run") if out.exists() else 0) == runs
    doc = saved(app)
    outcomes = [c["outcome"] for c in doc["toolCalls"]]
    assert outcomes == (["ok", "ok"] if runs else ["refused", "refused"])
    if not runs:
        result = fake_api.sent(1)[-1]["content"][0]
        assert result["is_error"] and "refused" in result["content"]
    if answers == ["always"]:
        assert doc["allowedTools"] == ["bash"]


def test_print_mode_refuses_without_asking_and_deny_wins(fake_api, store, taurus_home):
    fake_api.add(
        tool_uses(
            [
                ("write", {"file": "a.txt", "content": "x"}),
                ("edit", {"file": "b", "old_string": "a", "new_string": "b"}),
            ]
        ),
        text("ok"),
    )
    app, ui = make_app(store, answers=[], interactive=False, allow=["edit"])
    app.start_new()
    app.message("go")
    app.close()
    assert ui.asked == []
    assert not Path("a.txt").exists()
    calls = saved(app)["toolCalls"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [("write", "refused"), ("edit", "error")]
    refusal = fake_api.sent(1)[-1]["content"][0]["content"]
    assert "--allow write" in refusal
    # permissions.deny beats --allow
    taurus_home.mkdir(exist_ok=True)
    (taurus_home / "config.yaml").write_text("permissions:\n  deny: [write]\n")
    fake_api.add(tool_use("write", {"file": "a.txt", "content": "x"}), text("ok"))
    app, ui = make_app(
        store, interactive=True, allow=["write"], answers=["yes"], config=load_config()
    )
    app.start_new()
    app.message("again")
    assert ui.asked == [] and not Path("a.txt").exists()
    assert "permissions.deny" in fake_api.sent(-1)[-1]["content"][0]["content"]
    app.close()


def test_401_is_one_clear_error_and_the_turn_stays_saved(fake_api, store):
    fake_api.add(fault(401))
    app, ui = make_app(store)
    app.start_new()
    assert not app.message("hello")
    app.close()
    assert any("ANTHROPIC_API_KEY" in line and "401" in line for line in ui.out)
    assert saved(app)["messages"][0]["content"] == "hello"
    assert len(fake_api.requests) == 1  # never retried


def test_529_and_429_are_retried_with_backoff(fake_api, store):
    fake_api.add(fault(529), fault(429, retry_after=0.05), text("finally"))
    app, ui = make_app(store)
    app.start_new()
    assert app.message("hello")
    app.close()
    assert len(fake_api.requests) == 3
    assert any("overloaded (529" in line and "retrying" in line for line in ui.out)
    assert any("rate limited (429" in line and "retrying in 0.1 s" in line for line in ui.out)
    assert saved(app)["messages"][-1]["content"] == "finally"


def test_529_gives_up_after_the_retries(fake_api, store):
    fake_api.add(*[fault(529)] * 3)
    app, ui = make_app(store, max_retries=2)
    app.start_new()
    assert not app.message("hello")
    assert any("gave up after 3 attempts" in line for line in ui.out)
    app.close()


def test_dropped_connection_keeps_the_partial_reply_marked_interrupted(fake_api, store):
    fake_api.add(drop("The answer is forty-two, because", after=2), text("resumed fine"))
    app, ui = make_app(store)
    app.start_new()
    assert not app.message("question")
    doc = saved(app)
    partial = doc["messages"][-1]
    assert partial["role"] == "assistant" and partial["interrupted"] is True
    assert partial["content"] == "The answer is fo"  # two deltas of 8 characters
    assert any("dropped" in line for line in ui.out)
    # the session stays valid: the next turn is accepted with the partial reply in it
    assert app.message("go on")
    app.close()
    sent = fake_api.sent(-1)
    assert sent[1] == {"role": "assistant", "content": "The answer is fo"}
    assert not fake_api.rejected


def test_an_error_event_mid_stream_is_an_interrupted_reply(fake_api, store):
    fake_api.add(overloaded_midstream("Partial words here", after=1))
    app, ui = make_app(store)
    app.start_new()
    app.message("q")
    app.close()
    assert saved(app)["messages"][-1]["interrupted"] is True
    assert any("overloaded" in line for line in ui.out), ui.out


def test_resume_sends_the_whole_history_and_mends_a_cut_tool_use(fake_api, store):
    doc = make_document("abc123", n_turns=3)
    doc["messages"] = doc["messages"][:2]  # cut off after a tool_use, before its result
    doc["cwd"] = "/somewhere/else"
    write_session(store.session_dir, doc)
    fake_api.add(text("carrying on"))
    app, _ = make_app(store)
    _session, mended = app.open_ref("abc")
    assert mended == 1
    banner = "\n".join(app.resume_banner(mended))
    assert "💬 3 messages loaded" in banner and "started in /somewhere/else" in banner
    assert "You: Help me debug the login issue" in banner
    assert app.message("continue please")
    app.close()
    sent = fake_api.sent(0)
    assert sent[0]["content"] == "Help me debug the login issue"
    assert sent[1]["content"][1]["type"] == "tool_use"
    assert sent[2]["content"][0]["tool_use_id"] == sent[1]["content"][1]["id"]
    assert sent[2]["content"][0]["is_error"] is True
    assert sent[2]["content"][1] == {"type": "text", "text": "continue please"}
    assert not fake_api.rejected


def test_template_route_copied_file_resumes(fake_api, store):
    store.ensure()
    (store.session_dir / "2025-01-18_review123.json").write_text(
        json.dumps({"sessionId": "new", "messages": [{"role": "user", "content": "Review this."}]})
    )
    fake_api.add(text("Reviewed."))
    app, _ = make_app(store)
    session, _ = app.open_ref("review123")
    assert session.id == "review123"
    app.message("here is the code")
    app.close()
    # consecutive user messages are combined into one turn for the API
    assert fake_api.sent(0) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Review this."},
                {"type": "text", "text": "here is the code"},
            ],
        }
    ]
    assert saved(app)["sessionId"] == "review123"


def test_compact_archives_the_session_unchanged_and_continues_from_a_summary(fake_api, store):
    fake_api.add(text("We fixed login."), text("SUMMARY: login fixed in src/auth."), text("Next."))
    app, _ = make_app(store)
    old = app.start_new()
    app.message("fix login")
    store.name(old.id, "login-work")
    before = Path(old.path).read_bytes()
    archived, new = app.compact()
    assert archived.parent == store.archive_dir
    assert json.loads(archived.read_bytes())["messages"] == json.loads(before)["messages"]
    assert not Path(old.path).exists()
    assert new.data["parentSession"] == old.id
    assert "SUMMARY: login fixed" in new.messages[0]["content"]
    assert store.resolve("login-work").session_id == new.id  # the name follows the work
    app.message("what next?")
    app.close()
    sent = fake_api.sent(-1)
    assert len(sent) == 1 and "SUMMARY" in json.dumps(sent) and "what next?" in json.dumps(sent)


def test_context_full_is_said_before_the_api_refuses(fake_api, store, taurus_home):
    taurus_home.mkdir(exist_ok=True)
    (taurus_home / "config.yaml").write_text("chat:\n  contextWindow: 3000\n  maxTokens: 1000\n")
    app, ui = make_app(store, config=load_config(), answers=["no"])
    app.start_new()
    assert not app.message("x" * 9000)
    assert fake_api.requests == []
    assert any("/compact" in line for line in ui.out)
    # accepting the offer: the summary covers what fits, the message goes again from it
    app.session.messages.append({"role": "assistant", "content": "noted"})
    fake_api.add(text("SUMMARY of the big paste"), text("Answered from the summary."))
    ui.answers = ["yes"]
    old_id = app.session.id
    assert app.message("what now?")
    app.close()
    assert app.session.data["parentSession"] == old_id
    assert any("do not fit" in line for line in ui.out)
    summary_request = fake_api.sent(0)
    assert "x" * 9000 not in json.dumps(summary_request)
    assert [m["role"] for m in saved(app)["messages"]] == ["user", "user", "assistant"]


def test_ctrl_c_while_a_tool_runs_answers_every_tool_use(fake_api, store, monkeypatch):
    fake_api.add(tool_uses([("bash", {"command": "sleep 5"}), ("read", {"file": "a"})]), text("x"))
    app, _ = make_app(store, allow=["bash"])

    def interrupted(name: str, args: dict[str, Any]):
        raise KeyboardInterrupt

    monkeypatch.setattr(app.tools, "run", interrupted)
    app.start_new()
    app.message("go")
    app.close()
    doc = saved(app)
    results = doc["messages"][-1]["content"]
    assert [r["is_error"] for r in results] == [True, True]
    assert "Ctrl+C" in results[0]["content"] and "Not run" in results[1]["content"]
    assert doc["toolCalls"][0]["outcome"] == "interrupted"
    assert len(fake_api.requests) == 1  # the model was not asked again
    assert prepare_history(doc["messages"]) == [
        {k: m[k] for k in ("role", "content")} for m in doc["messages"]
    ]


def test_template_flag_starts_a_session_from_a_template(fake_api, store):
    pytest.importorskip("taurus_ops.ops.templates", reason="templates module not present")
    from taurus_ops.chat.run import ChatOptions, run_chat

    fake_api.add(text("Reviewing now."))
    status = run_chat(ChatOptions(template="code-review", prompt="def f(): pass"))
    assert status == 0
    (path,) = store.files()
    doc = json.loads(path.read_text())
    assert doc["sessionId"] != "new" and doc["cwd"] == str(Path.cwd().resolve())
    sent = fake_api.sent(0)
    assert "Security vulnerabilities" in sent[0]["content"][0]["text"]
    assert sent[0]["content"][1] == {"type": "text", "text": "def f(): pass"}
    assert doc["messages"][-1]["content"] == "Reviewing now."


def test_a_session_open_in_another_chat_is_refused(fake_api, store):
    from taurus_ops.errors import SessionLocked

    first, _ = make_app(store)
    session = first.start_new()
    second, _ = make_app(store)
    with pytest.raises(SessionLocked, match="close that chat first"):
        second.open_ref(session.id)
    first.close()
    second.open_ref(session.id)  # free once the first chat has gone
    second.close()


def test_resuming_an_archived_session_moves_it_back(fake_api, store):
    path = write_session(store.session_dir, make_document("arch0001", n_turns=1))
    archived = store.archive(path)
    fake_api.add(text("back"))
    app, ui = make_app(store)
    session, _ = app.open_ref("arch0001")
    assert Path(session.path).parent == store.session_dir and not archived.exists()
    assert any("back from the archive" in line for line in ui.out)
    app.message("hi")
    app.close()


def test_auth_token_instead_of_a_key(fake_api, store, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-123")
    app, _ = make_app(store)
    app.start_new()
    assert app.message("hi")
    app.close()
    assert fake_api.headers[-1]["authorization"] == "Bearer token-123"
    assert "token-123" not in Path(app.session.path).read_text()


def test_slash_commands(fake_api, store):
    from taurus_ops.chat.commands import Commands

    fake_api.add(text("Hi there."))
    app, ui = make_app(store)
    first = app.start_new()
    app.message("hello")
    commands = Commands(app)
    assert commands("/name hello-work") is True
    assert (store.session_dir / "hello-work.json").is_symlink()
    assert commands("/name ../evil") is True and any("not a valid" in o for o in ui.out)
    assert commands("/cost") is True and any("This session:" in o for o in ui.out)
    assert commands("/sessions") is True
    assert any(o.startswith(f"* {first.id}") and "(hello-work)" in o for o in ui.out)
    assert commands("/frobnicate") is True and any("unknown command" in o for o in ui.out)
    assert commands("/new") is True
    assert app.session.id != first.id and len(store.files()) == 2
    assert not (store.session_dir / f".{Path(first.path).name}.lock").exists()  # released
    assert commands("/help") is True and any("/compact" in o for o in ui.out)
    assert commands("/exit") is False and commands("/quit") is False
    app.close()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"allow": ["wirte"]}, "no such tool"),
        ({"prompt": "  "}, "empty prompt"),
        ({"resume": True, "session": "x"}, "not both"),
        ({"variables": {"a": "b"}}, "--template"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(fake_api, store, options, problem):
    from taurus_ops.chat.run import ChatOptions, run_chat
    from taurus_ops.errors import UsageError

    with pytest.raises(UsageError, match=problem):
        run_chat(ChatOptions(**options))
    assert store.files() == []


def test_prompt_cache_marks_are_sent_but_never_stored(fake_api, store, taurus_home):
    fake_api.add(text("one"), text("two"))
    app, _ = make_app(store, prompt_caching=True)
    app.start_new()
    app.message("first")
    app.message("second")
    app.close()
    body = fake_api.requests[-1]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "second", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][0] == {"role": "user", "content": "first"}  # only the last is marked
    assert "cache_control" not in Path(app.session.path).read_text()
    taurus_home.mkdir(exist_ok=True)
    (taurus_home / "config.yaml").write_text("chat:\n  promptCaching: false\n")
    fake_api.add(text("three"))
    app, _ = make_app(store, config=load_config())
    app.open_ref(None)
    app.message("third")
    app.close()
    assert "cache_control" not in json.dumps(fake_api.requests[-1])


def test_400_is_one_line_and_not_retried(fake_api, store):
    fake_api.add(fault(400, "messages.0.content: bad things"))
    app, ui = make_app(store)
    app.start_new()
    assert not app.message("hello")
    app.close()
    assert len(fake_api.requests) == 1
    assert any("refused the request (400: messages.0.content: bad things)" in o for o in ui.out)


def test_the_tutorials_jq_recipes_count_what_the_chat_did(fake_api, store):
    import shutil
    import subprocess

    if not shutil.which("jq"):
        pytest.skip("jq is not installed")
    Path("src").mkdir()
    Path("src/users.ts").write_text("let a = 1;\n")
    fake_api.add(
        tool_uses(
            [
                ("write", {"file": "src/new.ts", "content": "x\n"}),
                ("edit", {"file": "./src/users.ts", "old_string": "a = 1", "new_string": "a = 2"}),
                ("read", {"file": "src/users.ts"}),
            ]
        ),
        text("done"),
    )
    app, _ = make_app(store, allow=["write", "edit"])
    app.start_new()
    app.message("change things")
    app.close()
    path = str(app.session.path)

    def jq(program: str) -> list[str]:
        done = subprocess.run(
            ["jq", "-r", program, path], capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    assert jq('.toolCalls[] | select(.tool=="write") | .file') == ["src/new.ts"]
    assert jq('.toolCalls[] | select(.tool=="edit" or .tool=="write") | .file') == [
        "src/new.ts",
        "src/users.ts",
    ]
    assert jq(".toolCalls[].tool") == ["write", "edit", "read"]
    assert jq(".messages[0].content") == ["change", "things"]


@pytest.mark.parametrize(("by", "runs"), [("same", True), ("0@another-machine", False)])
def test_always_answers_count_only_where_they_were_given(fake_api, store, by, runs):
    """A session shared by a teammate brings none of their "always" answers."""
    from taurus_ops.chat.permissions import local_identity
    from taurus_ops.chat.run import ChatOptions, run_chat

    doc = make_document("shared01", n_turns=1)
    doc["allowedTools"] = ["write"]
    doc["allowedToolsBy"] = local_identity() if by == "same" else by
    path = write_session(store.session_dir, doc)
    fake_api.add(tool_use("write", {"file": "w.txt", "content": "x"}), text("done"))
    assert run_chat(ChatOptions(session="shared01", prompt="write it")) == 0
    assert Path("w.txt").exists() is runs
    outcome = json.loads(path.read_text())["toolCalls"][-1]["outcome"]
    assert outcome == ("ok" if runs else "refused")


def _paired(doc: dict[str, Any]) -> None:
    """Every tool_use in the file has its tool_result in the next message and a toolCalls entry."""
    messages = doc["messages"]
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not isinstance(message["content"], list):
            continue
        uses = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        if uses:
            answers = [b["tool_use_id"] for b in messages[index + 1]["content"]]
            assert answers == uses
    assert [c["toolUseId"] for c in doc["toolCalls"]] == [
        b["id"]
        for m in messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]


def test_bad_tool_input_from_the_model_ends_as_error_results(fake_api, store):
    Path("latin1.txt").write_bytes(b"caf\xe9 au lait\n")
    bad = [
        ("read", {"file": "latin1.txt", "offset": "abc"}, "offset must be an integer"),
        ("bash", {"command": "echo hi", "timeout": "soon"}, "timeout must be an integer"),
        ("read", {}, "file is required"),
        ("glob", {"pattern": "*", "junk": {"a": 1}}, "unknown field 'junk'"),
        ("edit", {"file": "latin1.txt", "old_string": "caf", "new_string": "x"}, "not UTF-8"),
        ("write", {"file": 7, "content": "x"}, "file must be a string"),
        ("frobnicate", {"x": 1}, "unknown tool 'frobnicate'"),
        ("grep", {"pattern": "("}, "bad regular expression"),
    ]
    fake_api.add(tool_uses([(name, args) for name, args, _ in bad]), text("I will fix my input."))
    app, _ = make_app(store, allow=["*"])
    app.start_new()
    assert app.message("go")
    app.close()
    doc = saved(app)
    _paired(doc)
    results = doc["messages"][2]["content"]
    for (name, _, reason), result in zip(bad, results, strict=True):
        assert result["is_error"] is True and reason in result["content"], (name, result)
    assert [c["outcome"] for c in doc["toolCalls"]] == ["error"] * len(bad)
    assert Path("latin1.txt").read_bytes() == b"caf\xe9 au lait\n"  # untouched
    assert doc["messages"][-1]["content"] == "I will fix my input."
    assert not fake_api.rejected  # the results went back to the model in a valid request


def test_text_that_is_not_utf8_is_kept_everywhere_as_a_replacement_mark(
    fake_api, store, tmp_path, monkeypatch
):
    work = os.path.join(os.fsencode(tmp_path), b"caf\xe9")  # a working directory not UTF-8
    os.mkdir(work)
    with open(os.path.join(work, b"r\xe9sum\xe9.txt"), "wb") as handle:
        handle.write(b"needle \xff here\n")
    monkeypatch.chdir(work)
    fake_api.add(
        tool_uses([("glob", {"pattern": "*"}), ("grep", {"pattern": "needle"})]),
        tool_use("read", {"file": "lone \ud800 surrogate.txt"}, preface="Odd \udfff name:"),
        text("Done \ud83d and \udce9."),
    )
    app, ui = make_app(store)
    app.start_new()
    assert app.message("look at caf\udce9 \ud800 please")  # a prompt as a terminal may give it
    app.close()
    raw = Path(app.session.path).read_bytes()
    doc = json.loads(raw.decode("utf-8"))  # valid UTF-8, strictly
    messages = doc["messages"]
    assert messages[0]["content"] == "look at caf\ufffd \ufffd please"
    assert messages[2]["content"][0]["content"] == "r\ufffdsum\ufffd.txt"
    assert messages[2]["content"][1]["content"] == "r\ufffdsum\ufffd.txt:1: needle \ufffd here"
    assert messages[3]["content"][0]["text"] == "Odd \ufffd name:"
    assert messages[3]["content"][1]["input"] == {"file": "lone \ufffd surrogate.txt"}
    assert messages[-1]["content"] == "Done \ufffd and \ufffd."
    assert doc["cwd"] == os.fsdecode(os.path.realpath(work)).replace("\udce9", "\ufffd")
    assert ui.texts[-1] == "Done \ufffd and \ufffd."  # the terminal gets the mark too
    assert not fake_api.rejected
    assert "caf\ufffd" in fake_api.requests[0]["system"][0]["text"]  # sent as valid JSON
    banner = "\n".join(app.resume_banner())
    assert "started in" not in banner  # the same directory, though its name is not UTF-8


def test_a_one_shot_run_that_gets_no_reply_leaves_no_session(store, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-dummy")
    app, ui = make_app(store, interactive=False, max_retries=1)
    app.start_new(until_reply=True)
    assert not app.message("hello")
    app.close()
    assert any("connection" in line for line in ui.out), ui.out
    assert store.files() == [] and os.listdir(store.session_dir) == []  # no file, no lock left


def test_a_one_message_session_says_message_not_messages(fake_api, store):
    doc = make_document("one00001", n_turns=0)
    write_session(store.session_dir, doc)
    app, _ = make_app(store)
    _session, mended = app.open_ref("one00001")
    banner = app.resume_banner(mended)
    app.close()
    assert "💬 1 message loaded" in banner


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


def test_an_empty_session_reference_is_refused_not_a_new_session(fake_api, store):
    import pytest

    from taurus_ops.chat.run import ChatOptions, run_chat
    from taurus_ops.errors import TaurusError

    # `taurus chat -s "$ID" -p ...` with $ID unset must not quietly talk in a new session
    with pytest.raises(TaurusError, match="empty"):
        run_chat(ChatOptions(session="", prompt="continue"))
    assert store.files() == [] and fake_api.requests == []
