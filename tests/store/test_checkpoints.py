"""File checkpoints and /rewind: the old content kept before every write and edit, put
back on request, never over a file changed by something else without consent, and a
rewind that can itself be undone. The chat runs the real SDK against the fake API."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.chat import make_app
from helpers.fake_api import text, tool_use, tool_uses

from taurus_ops.chat.commands import Commands
from taurus_ops.store.atomic import create_exclusive
from taurus_ops.store.checkpoints import ABSENT, CheckpointMissing, CheckpointStore, digest


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# -- the store ---------------------------------------------------------------------------
def test_blobs_are_private_deduplicated_checked_and_never_replaced(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    first, created = store.save("abc123", b"one\n")
    assert created and first == sha("one\n")
    again, created = store.save("abc123", b"one\n")
    assert again == first and not created
    path = store.path("abc123", first)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "checkpoints").stat().st_mode & 0o777 == 0o700
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert os.listdir(path.parent) == [first]  # no temporary file left
    assert store.read("abc123", first) == b"one\n"
    assert not create_exclusive(path, b"something else")  # a name is never replaced
    assert path.read_bytes() == b"one\n"
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    with pytest.raises(CheckpointMissing, match="damaged"):
        store.read("abc123", first)
    assert store.verify("abc123") == [f"{path}: content does not match its name"]
    with pytest.raises(CheckpointMissing, match="gone"):
        store.read("abc123", sha("never stored"))


def test_an_id_no_file_name_could_hold_gets_a_folder_inside_the_store(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    for odd in ("../../etc", "a b", "x/y", "", "é" * 70):
        folder = store.folder(odd)
        assert folder.parent == store.root and folder.name.startswith("id-")
        name, _ = store.save(odd, b"content")
        assert store.read(odd, name) == b"content"


def test_forks_share_blobs_and_removing_a_session_keeps_what_a_fork_needs(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    shared, _ = store.save("parent1", b"x" * 1000)
    own, _ = store.save("parent1", b"y" * 500)
    assert store.share("parent1", "fork001", {shared, ABSENT}) == 1
    assert (
        store.path("fork001", shared).stat().st_ino == store.path("parent1", shared).stat().st_ino
    )
    assert store.referencing(shared) == ["fork001", "parent1"]
    assert store.referencing(own) == ["parent1"]
    assert store.size() == 1500  # the linked blob counted once
    assert store.size("fork001") == 1000
    assert store.remove_session("parent1") == 500  # only the blob no fork links is freed
    assert store.read("fork001", shared) == b"x" * 1000
    assert store.session_ids() == ["fork001"]


def test_prune_removes_the_oldest_first_down_to_the_bound(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    shas = []
    for n in range(5):
        found, _ = store.save("s1", bytes([n]) * 1000)
        os.utime(store.path("s1", found), (1_700_000_000 + n, 1_700_000_000 + n))
        shas.append(found)
    store.share("s1", "s2", [shas[0]])
    report = store.prune(3000, keep={shas[1]})
    gone = {b.sha for b in report.removed}
    assert gone == {shas[0], shas[2]}  # the oldest, both links of it; the kept one stays
    assert report.freed == 2000 and report.remaining == store.size() == 3000
    assert not store.path("s2", shas[0]).exists()


# -- the chat keeps them ------------------------------------------------------------------
def _calls(app) -> list[dict]:
    return [c for c in json.loads(Path(app.session.path).read_text())["toolCalls"]]


def test_write_and_edit_keep_the_old_content_and_what_taurus_wrote(fake_api, store, ops):
    fake_api.add(
        tool_use("write", {"file": "notes.txt", "content": "alpha\nbeta\n"}),
        tool_use("edit", {"file": "notes.txt", "old_string": "beta", "new_string": "gamma"}),
        text("Done."),
    )
    app, ui = make_app(store, ["yes", "yes"])
    app.start_new()
    assert app.message("write and edit notes.txt")
    app.close()
    write, edit = _calls(app)
    assert write["checkpoint"] == ABSENT and write["written"] == sha("alpha\nbeta\n")
    assert edit["checkpoint"] == sha("alpha\nbeta\n") and edit["written"] == sha("alpha\ngamma\n")
    assert write["outcome"] == edit["outcome"] == "ok"
    assert edit["realPath"] == str(Path("notes.txt").resolve())
    checkpoints = store.checkpoints
    assert checkpoints.read(app.session.id, edit["checkpoint"]) == b"alpha\nbeta\n"
    assert {b.sha for b in checkpoints.blobs(app.session.id)} == {
        sha("alpha\nbeta\n"),
        sha("alpha\ngamma\n"),
    }
    # the diff shown before each question is of the change the tool then made
    assert [(c.before, c.after) for c in ui.changes] == [
        (None, b"alpha\nbeta\n"),
        (b"alpha\nbeta\n", b"alpha\ngamma\n"),
    ]
    listing = json.loads(ops("checkpoints", app.session.id, "--json").output)
    assert [(c["tool"], c["kept"]) for c in listing["changes"]] == [("write", True), ("edit", True)]
    assert "2 change(s), 2 content(s) kept" in ops("checkpoints", app.session.id).output


def test_a_checkpoint_that_cannot_be_kept_leaves_the_file_alone(fake_api, store, taurus_home):
    Path("keep.txt").write_text("precious\n")
    taurus_home.mkdir(exist_ok=True)
    (taurus_home / "checkpoints").write_text("not a folder")  # nothing can be stored there
    fake_api.add(
        tool_use("edit", {"file": "keep.txt", "old_string": "precious", "new_string": "gone"}),
        text("I could not."),
    )
    app, _ = make_app(store, ["yes"])
    app.start_new()
    app.message("change it")
    app.close()
    assert Path("keep.txt").read_text() == "precious\n"
    (call,) = _calls(app)
    assert call["outcome"] == "error"
    result = json.loads(Path(app.session.path).read_text())["messages"][2]["content"][0]
    assert "could not keep a checkpoint" in result["content"]


# -- /rewind ---------------------------------------------------------------------------
@pytest.fixture
def worked(fake_api, store):
    """A session of two turns: turn 1 (messages 1-4) writes a.txt, turn 2 (5-9) edits it,
    writes b.txt and runs bash."""
    fake_api.add(
        tool_use("write", {"file": "a.txt", "content": "one\n"}),
        text("Wrote a.txt."),
        tool_uses(
            [
                ("edit", {"file": "a.txt", "old_string": "one", "new_string": "two"}),
                ("write", {"file": "b.txt", "content": "bee\n"}),
            ]
        ),
        tool_use("bash", {"command": "echo side effect > c.txt"}),
        text("Changed both."),
    )
    app, ui = make_app(store, ["yes", "yes", "yes", "yes"], allow=None)
    app.start_new()
    app.message("write a.txt")
    app.message("now change it")
    assert Path("a.txt").read_text() == "two\n" and Path("b.txt").read_text() == "bee\n"
    ui.out.clear()
    return app, ui, Commands(app)


def test_rewind_files_only_then_undo(worked):
    app, ui, commands = worked
    session_id = app.session.id
    ui.answers += ["f", "y"]
    commands("/rewind 4")
    assert Path("a.txt").read_text() == "one\n" and not Path("b.txt").exists()
    assert app.session.id == session_id  # the conversation goes on as it was
    assert "restored a.txt (+1 -1)" in ui.said and "removed b.txt (+0 -1)" in ui.said
    assert "bash command ran after message 4" in ui.said and "echo side effect" in ui.said
    assert Path("c.txt").exists()  # what bash did is not undone
    assert any("-two" in line for diff in ui.diffs for line in diff)  # the diff was shown
    record = json.loads(Path(app.session.path).read_text())["rewinds"][-1]
    assert record["to"] == 4 and {f["outcome"] for f in record["files"]} == {"ok"}
    ui.answers += ["y"]
    commands("/rewind undo")
    assert Path("a.txt").read_text() == "two\n" and Path("b.txt").read_text() == "bee\n"
    ui.answers += ["y"]
    commands("/rewind undo")  # the undo is undone too
    assert Path("a.txt").read_text() == "one\n" and not Path("b.txt").exists()
    app.close()


def test_a_file_changed_by_hand_is_not_overwritten_without_consent(worked):
    app, ui, commands = worked
    Path("a.txt").write_text("edited by hand\n")
    ui.answers += ["f", "y", "n"]  # files; restore; do not overwrite the hand edit
    commands("/rewind 4")
    assert Path("a.txt").read_text() == "edited by hand\n"
    assert not Path("b.txt").exists()  # the file nobody touched was restored
    assert "changed since Taurus last wrote them" in ui.said and "a.txt" in ui.said
    ui.answers += ["f", "y", "y"]  # now with consent
    commands("/rewind 4")
    assert Path("a.txt").read_text() == "one\n"
    ui.answers += ["y"]
    commands("/rewind undo")  # the hand edit was kept as a checkpoint: it comes back
    assert Path("a.txt").read_text() == "edited by hand\n"
    app.close()


def test_rewind_both_forks_and_restores_and_conversation_only_just_forks(worked):
    app, ui, commands = worked
    original = app.session
    ui.answers += ["c"]
    commands("/rewind 4")
    assert app.session.id != original.id and len(app.session.messages) == 4
    assert Path("a.txt").read_text() == "two\n"  # files untouched
    fork_one = app.session
    bytes_before = Path(original.path).read_bytes()
    app.switch_to(original.path)
    ui.answers += ["b", "y"]
    commands("/rewind 4")
    assert app.session.id not in (original.id, fork_one.id)
    assert app.session.data["parentSession"] == original.id and app.session.data["forkedAt"] == 4
    assert Path("a.txt").read_text() == "one\n" and not Path("b.txt").exists()
    assert Path(original.path).read_bytes() == bytes_before  # the original kept as it was
    ui.answers += ["y"]
    commands("/rewind undo")  # recorded in the fork, with the blobs it needs
    assert Path("a.txt").read_text() == "two\n"
    app.close()


def test_rewind_lists_the_turns_and_refuses_a_point_inside_a_tool_exchange(worked):
    app, ui, commands = worked
    ui.answers += [""]
    commands("/rewind")
    turns = [line for line in ui.out if "You:" in line]
    assert "write a.txt" in turns[0] and "a.txt +1 -0" in turns[0]
    assert "now change it" in turns[1] and "a.txt +1 -1" in turns[1] and "b.txt +1 -0" in turns[1]
    assert "bash ×1" in turns[1]
    assert turns[0].split()[0] == "0" and turns[1].split()[0] == "4"
    commands("/rewind 6")
    assert "cannot rewind to message 6" in ui.said and "/rewind 5 or /rewind 7" in ui.said
    app.close()


def test_the_checkpoint_store_stays_within_max_bytes(fake_api, store, ops, monkeypatch):
    monkeypatch.setenv("TAURUS_CHECKPOINTS__MAX_BYTES", str(1 << 20))
    from taurus_ops.config import load_config

    Path("big.txt").write_text("v0\n" + "x" * 450_000)  # each version a 450 KB checkpoint
    edits = [
        {"file": "big.txt", "old_string": f"v{n}", "new_string": f"v{n + 1}"} for n in range(3)
    ]
    fake_api.add(*(tool_use("edit", e) for e in edits), text("ok"))
    app, ui = make_app(store, config=load_config(), allow=["edit"])
    app.start_new()
    app.message("edit it three times")
    app.close()
    assert Path("big.txt").read_text().startswith("v3\n")
    assert store.checkpoints.size() <= 1 << 20
    assert "to stay within checkpoints.maxBytes" in ui.said
    assert store.checkpoints.has(app.session.id, sha(Path("big.txt").read_bytes()))  # the newest
    assert "MISSING" in ops("checkpoints", app.session.id).output  # the pruned, said so
    stats = json.loads(ops("stats", "--json").output)
    assert 0 < stats["checkpointBytes"] <= 1 << 20 and stats["checkpointMaxBytes"] == 1 << 20
    assert "File checkpoints (/rewind):" in ops("stats").output


def test_max_bytes_is_bounded_in_the_schema(ops, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoints:\n  maxBytes: 1000\n")
    result = ops("config", "validate", str(bad))
    assert result.exit_code == 2 and "checkpoints.maxBytes" in result.output


# -- crashes ---------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taurus_ops.config import load_config
    from taurus_ops.store import SessionStore
    from taurus_ops.chat.conversation import Conversation
    from taurus_ops.chat.engine import Engine
    from taurus_ops.chat.permissions import Permissions
    from taurus_ops.chat.rewind import Checkpointer
    from taurus_ops.chat.tools import Tools

    class Quiet:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    store = SessionStore.from_config(load_config())
    session = store.load(Path(sys.argv[1]))
    conversation = Conversation(session, lambda: store.save(session))
    engine = Engine(conversation, None, Tools(Path.cwd()), Permissions.build(["*"], [], False),
                    Quiet(), keeper=Checkpointer(store.checkpoints, conversation, 1 << 40))
    n = len(session.tool_calls)
    print("ready", flush=True)
    while True:
        n += 1
        body = f"{n}\\n" + "x" * 1_000_000
        use = {"type": "tool_use", "id": f"toolu_{n:06d}_{sys.argv[2]}", "name": "write",
               "input": {"file": "big.txt", "content": body}}
        session.messages.append({"role": "assistant", "content": [use]})
        engine.run_tools([use])
    """
)


def test_kill_9_mid_write_leaves_the_file_and_its_checkpoints_agreeing(fake_api, store, tmp_path):
    """Writers killed at random moments while they keep checkpoints and write a 1 MB file:
    every change the session names has its checkpoints, whole, and the file holds what
    the last change left (either side of a change the kill cut off)."""
    session = store.create(cwd=str(Path.cwd()))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(15)
    checkpoints = store.checkpoints
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(session.path), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        doc = json.loads(session.path.read_bytes())
        calls = doc["toolCalls"]
        for call in calls:
            for name in (call["checkpoint"], call["written"]):
                if name != ABSENT:  # named, so there, whole
                    assert digest(checkpoints.read(session.id, name)) == name
        if not calls:
            continue
        now = sha(Path("big.txt").read_bytes()) if Path("big.txt").exists() else ABSENT
        last = calls[-1]
        if last["outcome"] == "ok":
            assert now == last["written"]
        else:  # cut off while it ran: the old content or the new, never anything else
            assert last["outcome"] == "running" and now in (last["checkpoint"], last["written"])
        problems = checkpoints.verify(session.id)
        assert all("temporary file" in p for p in problems), problems
    assert len(calls) > 3  # the writers really were writing when killed
    # resumed, the cut-off change is marked interrupted and a rewind sees no foreign edit
    from helpers.chat import make_app as chat

    app, _ = chat(store)
    app.open_ref(session.id)
    assert all(c["outcome"] in ("ok", "interrupted") for c in app.session.tool_calls)
    plan = app.plan_rewind(0)
    assert [s.shown for s in plan.steps] == ["big.txt"]
    assert not plan.steps[0].plan.changed_elsewhere
    app.close()
