"""The resume picker's list (from the index, this project first, filtered as you type) and
the progress bar of a first index build."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.screen import Screen
from helpers.sessions import make_document, write_session

from taurus_ops.chat.picker import PickerModel, load_entries, project_root
from taurus_ops.config import load_config
from taurus_ops.store.index import Index


@pytest.fixture
def listed(store, tmp_path):
    project = tmp_path / "work"
    (project / ".git").mkdir()
    (project / "src").mkdir()
    base = datetime.now(UTC)
    rows = [
        ("new001", "Add the login page", str(project / "src")),
        ("old002", "Fix the sprint board", str(project)),
        ("far003", "Write the other tool", "/elsewhere/tool"),
    ]
    for hours, (sid, first, cwd) in enumerate(rows):
        doc = make_document(sid, created=base - timedelta(hours=hours + 1), first=first)
        doc["updated"] = (base - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        doc["cwd"] = cwd
        doc["messages"].append({"role": "user", "content": f"only-in-{sid} text"})
        if sid == "far003":
            doc["parentSession"], doc["forkedAt"] = "old002", 3
        write_session(store.session_dir, doc)
    store.name("old002", "sprint")
    with Index(load_config()) as index:
        yield index, project


def test_rows_come_from_the_index_with_names_family_and_project(store, listed, monkeypatch):
    index, project = listed
    root = project_root(project / "src")
    assert root == str(project)  # the git work tree
    entries = load_entries(index, store, root)
    assert [e.id for e in entries] == ["new001", "old002", "far003"]  # newest first
    by_id = {e.id: e for e in entries}
    assert by_id["old002"].names == ["sprint"]
    assert by_id["far003"].parent == "old002" and by_id["far003"].forked_at == 3
    assert [e.in_project for e in entries] == [True, True, False]
    import taurus_ops.store.index as index_module

    def never(*args, **kwargs):
        raise AssertionError("a session file was read")

    monkeypatch.setattr(index_module, "read_facts", never)  # a current index: no file read
    assert [e.id for e in load_entries(index, store, root)] == ["new001", "old002", "far003"]


def test_this_project_first_tab_for_all_and_type_to_filter(store, listed):
    index, project = listed
    from taurus_ops.ops.search import SearchQuery, search

    entries = load_entries(index, store, str(project))

    def find(terms):
        return {h.key for h in search(index, SearchQuery(terms=terms), refresh=False)}

    model = PickerModel(entries, str(project), current="old002", search=find)
    assert [e.id for e in model.shown] == ["new001", "old002"]
    assert "this project" in model.header() and "2 of 3 sessions" in model.header()
    model.toggle_all()
    assert [e.id for e in model.shown] == ["new001", "old002", "far003"]
    model.type("sprint")  # a name
    assert [e.id for e in model.shown] == ["old002"]
    model.query = ""
    model.type("only-in-far003")  # words only in a message: the index's search
    assert [e.id for e in model.shown] == ["far003"]
    model.query = ""
    model.type("tool elsewhere")  # every term, anywhere in id, names, title, folder
    assert [e.id for e in model.shown] == ["far003"]
    model.type("x-nothing")
    assert model.shown == [] and model.chosen is None
    assert model.preview_lines(80)[0] == "(no session matches)"
    model.query = ""
    model.refilter()
    model.move(5)
    assert model.chosen.id == "far003"
    assert "fork" not in model.row(model.shown[0], 120, 0) and "↳old002@3" in model.row(
        model.chosen, 120, 0
    )
    assert model.row(model.shown[1], 120, 0).startswith("*old002")  # the current one
    user, reply = model.preview(model.chosen)
    assert user == "only-in-far003 text" and reply is None
    assert "forked from old002" in model.preview_lines(100)[0]


def test_without_sessions_here_every_project_shows(store, listed, tmp_path):
    index, _ = listed
    model = PickerModel(load_entries(index, store, str(tmp_path / "nowhere")), "/nowhere")
    assert model.show_all and len(model.shown) == 3


def test_a_first_index_build_shows_a_progress_bar_with_a_count(store, taurus_home):
    pexpect = pytest.importorskip("pexpect")
    for n in range(520):  # past Index.ANNOUNCE_FROM
        doc = make_document(f"s{n:05d}", n_turns=1)
        write_session(store.session_dir, doc)
    env = dict(os.environ, TERM="xterm", COLUMNS="120", LINES="40")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "taurus_ops.cli", "stats", "--json"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    seen = io.StringIO()
    child.logfile_read = seen
    child.expect(pexpect.EOF)
    child.close()
    raw = seen.getvalue()
    assert "Indexing sessions" in raw and "520/520" in raw
    lines = Screen(120, 40).feed(raw).lines()
    assert not any("Indexing" in line for line in lines)  # gone once done
    start = raw.index("{")
    assert (
        json.loads(raw[start : raw.rindex("}") + 1].replace("\r\n", "\n"))["totalSessions"] == 520
    )
    plain = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "index", "rebuild"], capture_output=True, text=True
    )
    assert "Indexing" not in plain.stderr and "Rebuilding" not in plain.stderr  # not on a pipe
    assert Path(taurus_home / "index.sqlite").exists()


def test_the_picker_says_when_there_is_nothing_to_pick(store):
    from taurus_ops.chat.picker import pick
    from taurus_ops.errors import SessionNotFound

    with pytest.raises(SessionNotFound, match="no sessions yet"):
        pick(load_config(), store, Path.cwd())
