"""Forks: a new session from the first N messages of another, the original never touched;
the family (parent, forks, /compact successors) in list, show, search and the chat."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from helpers.chat import make_app
from helpers.fake_api import Invalid, text, validate_request
from helpers.sessions import make_document, write_session

from taurus_ops.chat.commands import Commands
from taurus_ops.chat.conversation import prepare_history
from taurus_ops.store.fork import ForkRefused, cut_problem, fork_document, fork_session, split_ref

# make_document("par001", n_turns=3): 13 messages; 2, 6 and 10 are tool requests answered
# by the message after them
TOOL_REQUESTS = (2, 6, 10)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def parent(store) -> Path:
    doc = make_document("par001", n_turns=3)
    for number, message in enumerate(doc["messages"], 1):
        if message["role"] == "assistant":
            message["usage"] = {
                "model": "claude-sonnet-4-5",
                "inputTokens": 1000 * number,
                "outputTokens": 10,
                "cacheReadTokens": 0,
                "cacheCreationTokens": 0,
            }
    doc["cwd"] = str(Path.cwd())
    doc["allowedTools"] = ["bash"]
    return write_session(store.session_dir, doc)


@pytest.mark.parametrize("count", [0, 1, 3, 5, 7, 9, 13])
def test_a_fork_sends_exactly_its_first_n_messages_and_the_new_one(fake_api, store, parent, count):
    before = sha(parent)
    original = json.loads(parent.read_bytes())
    fake_api.add(text("Carrying on from the fork."))
    app, _ = make_app(store)
    made = app.open_fork(f"par001@{count}")
    assert app.message("try it another way")
    app.close()
    assert sha(parent) == before  # the original, byte for byte
    doc = json.loads(Path(made.session.path).read_bytes())
    assert doc["sessionId"] != "par001" and Path(made.session.path) != parent
    assert doc["parentSession"] == "par001" and doc["forkedAt"] == count
    assert doc["messages"][:count] == original["messages"][:count]
    assert "allowedTools" not in doc  # "always" answers are asked again in a fork
    assert len(doc["toolCalls"]) == sum(1 for n in TOOL_REQUESTS if n <= count)
    expected = prepare_history(
        [*original["messages"][:count], {"role": "user", "content": "try it another way"}]
    )
    assert fake_api.sent(0) == expected
    assert not fake_api.rejected


@pytest.mark.parametrize("count", TOOL_REQUESTS)
def test_a_cut_inside_a_tool_exchange_is_refused_naming_the_nearest_points(
    ops, store, parent, count
):
    before = sorted(p.name for p in store.files())
    result = ops("fork", f"par001@{count}")
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"par001@{count - 1} or par001@{count + 1}" in line
    assert sorted(p.name for p in store.files()) == before


def _random_messages(rng: random.Random) -> list[dict[str, Any]]:
    """User text, assistant text, tool exchanges of 1-3 tools, an exchange a crash left
    without results, a results message with text after the results, interrupted replies."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
    uses = 0
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["text", "tools", "tools", "dangling", "two-users"])
        if kind == "text":
            messages.append({"role": "assistant", "content": f"reply {len(messages)}"})
            messages.append({"role": "user", "content": f"more {len(messages)}"})
        elif kind in ("tools", "dangling"):
            ids = [f"toolu_{(uses := uses + 1)}" for _ in range(rng.randint(1, 3))]
            blocks = [
                {"type": "tool_use", "id": i, "name": "read", "input": {"file": "a"}} for i in ids
            ]
            messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": "looking"}, *blocks]}
            )
            if kind == "tools":
                results: list[dict[str, Any]] = [
                    {"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids
                ]
                if rng.random() < 0.3:
                    results.append({"type": "text", "text": "and also this"})
                messages.append({"role": "user", "content": results})
                messages.append({"role": "assistant", "content": "done"})
            else:
                messages.append({"role": "user", "content": "never mind that"})
        else:
            messages.append({"role": "user", "content": "and another thing"})
    return messages


@pytest.mark.parametrize("seed", range(40))
def test_every_fork_point_is_refused_or_gives_a_history_the_api_accepts(seed):
    """The class: at any N, a fork is refused exactly when it would part a tool_use from
    its result, and otherwise what is sent is the first N messages, valid for the API."""
    messages = _random_messages(random.Random(seed))
    data = {"sessionId": "rnd001", "messages": messages, "toolCalls": []}
    for count in range(len(messages) + 1):
        problem = cut_problem(messages, count)
        previous = messages[count - 1] if count else None
        parts = (
            previous is not None
            and count < len(messages)
            and previous["role"] == "assistant"
            and isinstance(previous["content"], list)
            and isinstance(messages[count]["content"], list)
            and any(b.get("type") == "tool_result" for b in messages[count]["content"])
        )
        assert (problem is not None) == parts, (seed, count)
        if problem is not None:
            continue
        fork = fork_document(data, count)
        assert fork["messages"] == messages[:count]
        history = prepare_history([*fork["messages"], {"role": "user", "content": "next"}])
        try:
            validate_request({"model": "m", "max_tokens": 5, "messages": history})
        except Invalid as exc:
            pytest.fail(f"seed {seed}, fork at {count}: the API would refuse it: {exc}")


def test_fork_command_names_the_fork_and_the_family_shows_everywhere(ops, store, parent):
    made = json.loads(ops("fork", "par001@5", "--name", "second-try", "--json").output)
    assert made["parentSession"] == "par001" and made["forkedAt"] == 5
    assert store.resolve("second-try").session_id == made["id"]
    again = ops("fork", made["id"])  # a fork of the fork, keeping everything
    assert again.exit_code == 0 and "Forked" in again.output
    grandchild = json.loads(
        Path(store.resolve(again.output.split("new session ")[1].split()[0]).path).read_text()
    )
    assert grandchild["parentSession"] == made["id"] and grandchild["forkedAt"] == 5

    listed = {s["id"]: s for s in json.loads(ops("list", "--json").output)}
    assert listed["par001"]["children"] == [made["id"]]
    assert listed[made["id"]]["parentSession"] == "par001" and listed[made["id"]]["forkedAt"] == 5
    assert listed[made["id"]]["children"] == [grandchild["sessionId"]]

    tree = ops("list", "--tree").output.splitlines()
    rows = {line.split()[1] if line.split()[0] == "*" else _id_of(line): line for line in tree}
    assert tree[0].lstrip().startswith("par001")
    assert "└─ " + made["id"] in rows[made["id"]] and "fork @5" in rows[made["id"]]
    assert "   └─ " + grandchild["sessionId"] in rows[grandchild["sessionId"]]

    shown = ops("show", made["id"]).output
    assert "Parent:   par001 (forked at message 5)" in shown
    assert f"Forks:    {grandchild['sessionId']} (@5)" in shown
    assert "[5] You: Thanks, next step 0." in shown  # numbered as fork REF@N counts
    assert f"Forks:    {made['id']} (@5)" in ops("show", "par001").output
    assert "- **Forked from:** par001 (at message 5)" in ops("export", made["id"]).output

    hits = json.loads(ops("search", "step 0", "--json").output)
    branch = {h["id"]: (h["parentSession"], h["forkedAt"]) for h in hits}
    assert branch == {
        "par001": (None, None),
        made["id"]: ("par001", 5),
        grandchild["sessionId"]: (made["id"], 5),
    }
    plain = ops("search", "step 0").output
    assert "[fork of par001 @5]" in plain


def _id_of(line: str) -> str:
    return line.replace("│", " ").replace("├─", " ").replace("└─", " ").split()[0]


def test_a_forks_copied_tokens_are_not_counted_twice(ops, store, parent):
    alone = json.loads(ops("stats", "--json").output)["tokens"]
    assert ops("fork", "par001@9").exit_code == 0
    assert json.loads(ops("stats", "--json").output)["tokens"] == alone


def test_fork_and_tree_in_the_chat(fake_api, store, parent):
    before = sha(parent)
    app, ui = make_app(store)
    app.open_ref("par001")
    commands = Commands(app)
    commands("/fork 9")
    assert app.session.id != "par001" and app.session.data["forkedAt"] == 9
    assert len(app.session.messages) == 9
    assert "Forked par001 at message 9 (the first 9 of 13 messages)" in ui.said
    assert "par001 is kept as it was" in ui.said
    fake_api.add(text("ok"))
    app.message("carry on")
    ui.out.clear()
    commands("/tree")
    assert ui.out[0].startswith("  par001") and f"* └─ {app.session.id}" in ui.out[1]
    fork_id = app.session.id
    commands("/fork 6")
    assert app.session.id == fork_id
    assert "cannot fork" in ui.said and f"{fork_id}@5 or {fork_id}@7" in ui.said
    app.close()
    assert sha(parent) == before


def test_chat_fork_flag_answers_once_in_a_new_session(fake_api, store, parent):
    from taurus_ops.chat.run import ChatOptions, run_chat

    before = sha(parent)
    fake_api.add(text("From message 5 on."))
    assert run_chat(ChatOptions(fork="par001@5", prompt="go on")) == 0
    assert sha(parent) == before
    (fork,) = [p for p in store.files() if p != parent]
    doc = json.loads(fork.read_text())
    assert doc["forkedAt"] == 5 and len(doc["messages"]) == 7
    original = json.loads(parent.read_text())["messages"]
    assert fake_api.sent(0) == prepare_history(
        [*original[:5], {"role": "user", "content": "go on"}]
    )


def test_split_ref_and_bad_points():
    assert split_ref("abc@12") == ("abc", 12)
    assert split_ref("abc") == ("abc", None)
    with pytest.raises(Exception, match="REF@N"):
        split_ref("abc@x")


def test_a_point_past_the_end_is_refused(store, parent):
    with pytest.raises(ForkRefused, match="from 0 to 13"):
        fork_session(store, store.load(parent), 14)
