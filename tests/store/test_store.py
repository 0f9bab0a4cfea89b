"""The session store: format, permissions, listing, names, the template route, mending."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from helpers.chat import make_app
from helpers.fake_api import text
from helpers.sessions import make_document, write_session

from taurus_ops.errors import SessionFormatError, UsageError
from taurus_ops.store import Session, SessionStore, dangling_tool_uses, mend_tool_uses
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, ensure_dir, is_temp_name


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_names_the_file_by_date_and_id(store: SessionStore) -> None:
    session = store.create(cwd="/work")
    assert session.path is not None
    assert fmt.FILENAME_RE.match(session.path.name)
    day, sid = fmt.split_file_name(session.path.name)
    assert sid == session.id and len(sid) == 8 and set(sid) <= set(fmt.ID_ALPHABET)
    assert session.created.startswith(day)
    assert fmt.TIME_RE.match(session.created) and fmt.TIME_RE.match(session.updated)
    data = json.loads(session.path.read_text())
    assert list(data)[:3] == ["sessionId", "created", "updated"]
    assert data["messages"] == [] and data["toolCalls"] == []


def test_files_are_0600_and_directories_0700(store: SessionStore, taurus_home: Path) -> None:
    old = os.umask(0o022)
    try:
        session = store.create()
        session.messages.append({"role": "user", "content": "secret sk-ant-xyz"})
        store.save(session)
    finally:
        os.umask(old)
    assert mode(session.path) == 0o600
    assert mode(store.session_dir) == 0o700
    assert mode(taurus_home) == 0o700


def test_ensure_dir_makes_every_missing_parent_private(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    ensure_dir(deep)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3


def test_save_keeps_unknown_fields_and_order(store: SessionStore) -> None:
    doc = make_document("abc123")
    doc["futureField"] = {"nested": [1, 2, 3]}
    doc["messages"][0]["extra"] = "kept"
    path = write_session(store.session_dir, doc)
    session = store.load(path)
    session.messages.append({"role": "assistant", "content": "more"})
    store.save(session)
    again = json.loads(path.read_text())
    assert again["futureField"] == {"nested": [1, 2, 3]}
    assert again["messages"][0]["extra"] == "kept"
    assert list(again)[: len(doc)] == list(doc)


def test_ids_are_unique_in_the_directory(store: SessionStore, monkeypatch) -> None:
    first = store.create()
    seq = iter([first.id, first.id, "zzzz9999"])
    monkeypatch.setattr(fmt, "new_id", lambda: next(seq))
    assert store.create().id == "zzzz9999"
    with pytest.raises(UsageError, match="already exists"):
        store.create(session_id=first.id)


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path: Path) -> None:
    target = ensure_dir(tmp_path / "d") / "x.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = ensure_dir(tmp_path / "d") / "x.json"
    atomic_write(target, b"old")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert not any(is_temp_name(p.name) for p in target.parent.iterdir())


def test_template_route_takes_id_and_times_from_the_file(store: SessionStore, ops) -> None:
    store.ensure()
    template = {
        "sessionId": "new",
        "messages": [
            {"role": "user", "content": "Please review the following code for:\n1. Security"}
        ],
    }
    path = store.session_dir / "2025-01-18_review123.json"
    path.write_text(json.dumps(template, indent=2))
    session = store.load_ref("review123")
    assert session.id == "review123"
    assert session.created == "2025-01-18T00:00:00.000Z"
    assert session.title.startswith("Please review the following code for: 1. Security")
    result = ops("show", "review123")
    assert result.exit_code == 0 and "Session review123" in result.output


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(b"", "empty file"), (b'{"messages": [', "not valid JSON"), (b"[1, 2]", "not a JSON object"),
     (b'{"messages": "hi"}', "not a list")],
)  # fmt: skip
def test_unreadable_sessions_raise_a_format_error(
    store: SessionStore, raw: bytes, problem: str
) -> None:
    store.ensure()
    path = store.session_dir / "2025-01-18_broken.json"
    path.write_bytes(raw)
    with pytest.raises(SessionFormatError, match=problem):
        store.load(path)


def test_list_is_newest_first_with_every_field(store: SessionStore, ops) -> None:
    from datetime import UTC, datetime, timedelta

    base = datetime(2025, 1, 10, tzinfo=UTC)
    for i, sid in enumerate(["old111", "new333", "mid222"]):
        doc = make_document(
            sid,
            created=base + timedelta(days={"old111": 0, "mid222": 1, "new333": 2}[sid]),
            n_turns=i + 1,
        )
        write_session(store.session_dir, doc)
    store.name("mid222", "middle")
    summaries = store.summaries()
    assert [s.id for s in summaries] == ["new333", "mid222", "old111"]
    mid = summaries[1]
    assert mid.names == ["middle"] and mid.messages == 1 + 4 * 3 and mid.tool_calls == 3
    assert mid.title == "Help me debug the login issue"
    assert mid.size == os.path.getsize(mid.path)
    out = json.loads(ops("list", "--json").output)
    assert [s["id"] for s in out] == ["new333", "mid222", "old111"]
    assert set(out[0]) == {
        "id",
        "path",
        "created",
        "updated",
        "messages",
        "toolCalls",
        "title",
        "size",
        "archived",
        "names",
        "error",
        "parentSession",
        "forkedAt",
        "cwd",
        "children",
    }
    assert ops("list", "--limit", "1", "--json").output.count('"id"') == 1
    text = ops("list").output
    assert text.index("new333") < text.index("mid222") < text.index("old111") and "middle" in text


def test_list_reports_damaged_files_without_failing(store: SessionStore, ops) -> None:
    write_session(store.session_dir, make_document("good11"))
    (store.session_dir / "2025-01-19_bad222.json").write_bytes(b'{"sessionId": "bad222", "mess')
    result = ops("list")
    assert result.exit_code == 0
    assert "bad222" in result.output and "damaged" in result.output


def test_archived_sessions_list_and_resolve(store: SessionStore, ops) -> None:
    path = write_session(store.session_dir, make_document("arch01"))
    write_session(store.session_dir, make_document("live01"))
    store.name("arch01", "kept-name")
    new = store.archive(path)
    assert not path.exists() and new.parent == store.archive_dir
    assert os.path.realpath(store.session_dir / "kept-name.json") == str(new)
    ref = store.resolve("arch01")
    assert ref.archived and ref.path == new
    assert store.resolve("kept-name").archived
    assert [s.id for s in store.summaries()] == ["live01"]
    listed = json.loads(ops("list", "--archived", "--json").output)
    assert {(s["id"], s["archived"]) for s in listed} == {("arch01", True), ("live01", False)}
    assert "[archived]" in ops("show", "arch01").output
    back = store.unarchive(new)
    assert back == path and os.path.realpath(store.session_dir / "kept-name.json") == str(path)


def test_name_creates_the_tutorial_symlink(store: SessionStore, ops) -> None:
    path = write_session(store.session_dir, make_document("abc123"))
    result = ops("name", "abc123", "password-reset-implementation")
    assert result.exit_code == 0
    link = store.session_dir / "password-reset-implementation.json"
    assert os.readlink(link) == path.name  # exactly `ln -s 2025-01-18_abc123.json NAME.json`
    assert store.resolve("password-reset-implementation").session_id == "abc123"
    other = write_session(store.session_dir, make_document("def456"))
    refused = ops("name", "def456", "password-reset-implementation")
    assert refused.exit_code != 0 and "already points" in refused.output
    assert ops("name", "def456", "password-reset-implementation", "--force").exit_code == 0
    assert os.readlink(link) == other.name
    assert ops("name", "def456", "abc123").exit_code != 0  # a name may not shadow an id
    assert ops("name", "abc123", "../evil").exit_code == 2
    assert ops("name", "password-reset-implementation", "--remove").exit_code == 0
    assert not link.is_symlink() and other.exists()


def test_mend_closes_dangling_tool_use_only() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}},
                                          {"type": "tool_use", "id": "t2", "name": "grep", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "text", "text": "and then"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t3", "name": "bash", "input": {}}]},
    ]  # fmt: skip
    original = json.loads(json.dumps(messages))
    assert dangling_tool_uses(messages) == [(1, ["t2"]), (3, ["t3"])]
    assert mend_tool_uses(messages) == 2
    assert dangling_tool_uses(messages) == []
    assert [b.get("tool_use_id") for b in messages[2]["content"]] == ["t1", "t2", None]
    assert messages[4]["role"] == "user" and messages[4]["content"][0]["tool_use_id"] == "t3"
    assert messages[:2] == original[:2] and messages[3] == original[3]
    assert mend_tool_uses(messages) == 0


def test_session_new_has_the_tutorial_fields() -> None:
    session = Session.new("abc123", cwd="/x")
    assert session.data["sessionId"] == "abc123" and session.data["cwd"] == "/x"
    assert fmt.parse_time(session.created) is not None


def test_latest_follows_updated_not_just_mtime(store: SessionStore) -> None:
    from datetime import UTC, datetime, timedelta

    base = datetime(2025, 1, 10, tzinfo=UTC)
    newest = write_session(
        store.session_dir, make_document("newest", created=base + timedelta(days=5))
    )
    copied = write_session(
        store.session_dir, make_document("copied", created=base)
    )  # `cp`: new mtime, old updated
    older = write_session(
        store.session_dir, make_document("older1", created=base + timedelta(days=1))
    )
    for path, day in ((newest, 5), (older, 1)):
        stamp = (base + timedelta(days=day, hours=1)).timestamp()
        os.utime(path, (stamp, stamp))
    assert copied.stat().st_mtime > newest.stat().st_mtime
    assert store.latest().session_id == "newest"
    assert store.latest().session_id == max(store.summaries(), key=lambda s: s.sort_key()).id
    newest.unlink()
    assert store.latest().session_id == "older1"


def test_latest_with_no_sessions_says_how_to_start(store: SessionStore) -> None:
    from taurus_ops.errors import SessionNotFound

    with pytest.raises(SessionNotFound, match="taurus chat"):
        store.latest()


def test_orphan_results_are_found_in_one_place() -> None:
    from taurus_ops.store.mend import orphan_results

    messages = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x0", "content": "stray"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "tool_result", "tool_use_id": "t9", "content": "?"}]},
    ]  # fmt: skip
    assert orphan_results(messages) == [(0, [0]), (2, [1])]


def test_move_files_never_overwrites_and_finishes_interrupted_moves(tmp_path: Path) -> None:
    from taurus_ops.store.move import move_files

    src_dir, dest_dir = ensure_dir(tmp_path / "s"), ensure_dir(tmp_path / "d")
    a, b, c = (src_dir / n for n in ("a.json", "b.json", "c.json"))
    for path in (a, b, c):
        path.write_text(path.name)
    (dest_dir / "b.json").write_text("a different file")  # must not be overwritten
    os.link(c, dest_dir / "c.json")  # a crash after linking, before unlinking
    results = move_files([a, b, c], dest_dir)
    assert [(r.source.name, r.dest is not None) for r in results] == [
        ("a.json", True),
        ("b.json", False),
        ("c.json", True),
    ]
    assert "already exists" in (results[1].error or "")
    assert b.read_text() == "b.json" and (dest_dir / "b.json").read_text() == "a different file"
    assert not a.exists() and not c.exists()
    assert (dest_dir / "a.json").read_text() == "a.json" and (
        dest_dir / "c.json"
    ).read_text() == "c.json"


def test_move_files_into_its_own_folder_changes_nothing(tmp_path: Path) -> None:
    from taurus_ops.store.move import move_files

    folder = ensure_dir(tmp_path / "s")
    (folder / "a.json").write_text("keep me")
    (moved,) = move_files([folder / "a.json"], folder)
    assert moved.dest is None and "already in" in (moved.error or "")
    assert (folder / "a.json").read_text() == "keep me"


def _put(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_deeply_nested_file_is_invalid_json_not_a_crash(store, ops):
    write_session(store.session_dir, make_document("good01"))
    _put(
        store.session_dir, "2025-01-02_deep01.json", '{"messages":' + "[" * 5000 + "]" * 5000 + "}"
    )
    with pytest.raises(ValueError):
        fmt.loads((store.session_dir / "2025-01-02_deep01.json").read_bytes())
    for args in (["list"], ["search", "login"], ["stats"]):
        result = ops(*args)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
    shown = ops("show", "deep01")
    assert shown.exit_code != 0
    assert "not valid JSON" in shown.output


def test_lone_surrogate_escape_reads_as_replacement_character(store, ops, tmp_path):
    text = (
        '{"sessionId":"surr01","created":"2025-01-11T00:00:00Z",'
        '"updated":"2025-01-11T00:00:00Z","messages":[{"role":"user","content":"a\\ud800b"}]}'
    )
    _put(store.session_dir, "2025-01-11_surr01.json", text)
    assert fmt.loads(text)["messages"][0]["content"] == "a\ufffdb"
    for args in (
        ["show", "surr01"],
        ["export", "surr01"],
        ["export", "surr01", "-f", "json"],
        ["doctor"],  # exit 1: the file written here is 0644, a warning
        ["search", "a"],
    ):
        result = ops(*args)
        assert result.exit_code == (1 if args == ["doctor"] else 0), (args, result.output)
        assert "Traceback" not in result.output


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
