"""``taurus-ops doctor``: every kind of damage found, salvaged, quarantined, and fixed once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.damage import DAMAGES, before, format_damages, message_spans
from helpers.doctoring import assert_api_accepts, compare, tree
from helpers.jobs import run_doctor
from helpers.sessions import make_document, write_session

from taurus_ops.ops.doctor.checks import scan_store
from taurus_ops.ops.doctor.plan import make_plan
from taurus_ops.store import format as fmt
from taurus_ops.store.lock import OpsLock, lock_path


def doctor(store, fix: bool = False, **kw):
    home = Path(os.environ["TAURUS_HOME"])
    return run_doctor(home, store.session_dir, store.archive_dir, fix=fix, **kw)


def quarantined(taurus_home: Path) -> dict[str, bytes]:
    out = {}
    for path in (taurus_home / "quarantine").glob("*/*"):
        if path.name != "MANIFEST.jsonl" and path.is_file():
            out[path.name] = path.read_bytes()
    return out


def healthy_file(store, sid: str = "abc123", n_turns: int = 4) -> tuple[Path, dict, bytes]:
    doc = make_document(sid, n_turns=n_turns)
    path = write_session(store.session_dir, doc)
    return path, doc, path.read_bytes()


# -- files that do not parse ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_each_damage_is_salvaged_without_losing_or_inventing(store, taurus_home, kind, seed):
    path, doc, raw = healthy_file(store, n_turns=5)
    hurt = DAMAGES[kind](raw, random.Random(seed))
    path.write_bytes(hurt.data)

    found = doctor(store)
    assert found.exit_code == 1 and any(p.path == str(path) for p in found.problems)
    assert path.read_bytes() == hurt.data  # a scan changes nothing

    fixed = doctor(store, fix=True)
    assert fixed.exit_code == 0, fixed.lines()
    # the quarantine holds the exact original bytes
    assert quarantined(taurus_home)[path.name] == hurt.data
    assert (taurus_home / "quarantine").stat().st_mode & 0o777 == 0o700

    if not path.exists():  # nothing to salvage: moved to the quarantine, and the report says so
        assert kind == "empty" or before(raw, hurt.at) == 0
        assert any("moved to" in p.outcome for p in fixed.problems)
    else:
        assert path.stat().st_mode & 0o777 == 0o600
        session = store.load(path)
        result = compare(session.messages, doc["messages"])
        wanted = before(raw, min(hurt.at, len(raw)))
        # every message wholly before the damage, exactly as it was, in order
        assert session.messages[:wanted] == doc["messages"][:wanted]
        assert result["invented"] == 0
        assert session.id == "abc123"
        assert fmt.parse_time(session.data["created"]) and fmt.parse_time(session.data["updated"])
        assert_api_accepts(session.messages)
    again = doctor(store)
    assert again.exit_code == 0 and not again.problems, again.lines()


def test_damage_free_kinds_lose_nothing(store):
    path, doc, raw = healthy_file(store)
    for kind in ("bom", "trailing-garbage", "concatenated", "control-chars"):
        path.write_bytes(DAMAGES[kind](raw, random.Random(7)).data)
        assert doctor(store, fix=True).exit_code == 0
        assert store.load(path).messages == doc["messages"], kind


def test_a_hole_in_the_middle_keeps_the_messages_after_it(store):
    path, doc, raw = healthy_file(store, n_turns=6)
    spans = message_spans(raw)
    start, end = spans[5]
    path.write_bytes(raw[: start + 10] + b"\0" * (end - start - 20) + raw[end - 10 :])
    doctor(store, fix=True)
    messages = store.load(path).messages
    result = compare(messages, doc["messages"])
    assert result["lost"] >= 1 and result["invented"] == 0
    assert messages[:5] == doc["messages"][:5]
    assert doc["messages"][-1] in messages  # found again after the hole
    assert_api_accepts(messages)


def test_cut_mid_assistant_message_drops_it_and_closes_the_tool_use(store):
    path, doc, raw = healthy_file(store)
    spans = message_spans(raw)
    start, end = spans[2]  # the tool_result after the first tool_use
    path.write_bytes(raw[: start + (end - start) // 2])
    report = doctor(store, fix=True)
    messages = store.load(path).messages
    assert messages[:2] == doc["messages"][:2]
    assert messages[2]["content"][0]["tool_use_id"] == doc["messages"][1]["content"][1]["id"]
    assert messages[2]["content"][0]["is_error"] is True
    assert len(messages) == 3
    assert "close 1 dangling tool_use" in report.problems[0].fix
    assert store.load(path).tool_calls == [
        {"tool": doc["toolCalls"][0]["tool"], **doc["messages"][1]["content"][1]["input"]}
    ]


def test_invalid_utf8_inside_a_message_keeps_it_marked(store):
    path, doc, raw = healthy_file(store)
    at = raw.index(b"Help me debug") + 3
    path.write_bytes(raw[:at] + b"\xff" + raw[at + 1 :])
    doctor(store, fix=True)
    messages = store.load(path).messages
    assert messages[0]["content"] == "Hel\ufffd me debug the login issue"
    assert messages[0]["repaired"] == "invalid UTF-8 shown as U+FFFD"
    assert messages[1:] == doc["messages"][1:]


def test_two_different_sessions_in_one_file_become_two_files(store, taurus_home):
    path, doc, raw = healthy_file(store)
    other = make_document("zzz999", n_turns=2, first="A different conversation")
    path.write_bytes(raw + fmt.dumps(other))
    report = doctor(store, fix=True)
    assert report.exit_code == 0
    assert store.load(path).messages == doc["messages"]
    new = store.load_ref("zzz999")
    assert new.messages == other["messages"]
    assert doctor(store).exit_code == 0


def test_metadata_rebuilt_from_the_file_name_when_the_head_is_lost(store):
    path, doc, raw = healthy_file(store)
    text = raw.decode()
    head_end = text.index('"messages"')
    path.write_bytes(
        b'{\n  "sessionId": "abc1\x00\x00\x00\x00\x00\x00\x00\x00\x00\n  ' + raw[head_end:]
    )
    doctor(store, fix=True)
    session = store.load(path)
    assert session.id == "abc123"
    assert session.created.startswith("2025-01-18T00:00:00")
    assert session.messages == doc["messages"]


def test_big_file_cut_mid_write(store):
    doc = make_document("big001", n_turns=400)
    for message in doc["messages"]:
        if isinstance(message["content"], str):
            message["content"] += " " + "x" * 2000
    path = write_session(store.session_dir, doc)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 3 // 4])
    doctor(store, fix=True)
    messages = store.load(path).messages
    wanted = before(raw, len(raw) * 3 // 4)
    assert wanted > 1000 and messages[:wanted] == doc["messages"][:wanted]
    assert_api_accepts(messages)


# -- documents that parse but break the format ------------------------------------------------
@pytest.mark.parametrize("kind", sorted(format_damages(make_document("abc123"))))
def test_format_damage_is_found_and_fixed_once(store, taurus_home, kind):
    doc = make_document("abc123", n_turns=3)
    bad = format_damages(doc)[kind]
    store.ensure()
    path = store.session_dir / "2025-01-18_abc123.json"
    path.write_bytes(fmt.dumps(bad))
    os.chmod(path, 0o600)
    found = doctor(store)
    assert found.exit_code == 1, kind
    fixed = doctor(store, fix=True)
    assert fixed.exit_code == 0, fixed.lines()
    assert quarantined(taurus_home)[path.name] == fmt.dumps(bad)
    data = json.loads(path.read_bytes())
    assert data["sessionId"] == "abc123"
    assert fmt.parse_time(data["created"]) and fmt.parse_time(data["updated"])
    assert isinstance(data["messages"], list) and isinstance(data["toolCalls"], list)
    kept = [m for m in bad.get("messages", []) if isinstance(bad.get("messages"), list)]
    ok = [m for m in kept if m.get("role") in ("user", "assistant") and m.get("content") != 42]
    assert compare(data["messages"], ok)["intact"] == len(ok)
    assert_api_accepts(data["messages"])
    assert doctor(store).exit_code == 0


def test_id_that_disagrees_with_the_file_name(store):
    path, doc, raw = healthy_file(store)
    copy = store.session_dir / "2025-01-19_fork01.json"
    copy.write_bytes(raw)
    os.chmod(copy, 0o600)
    report = doctor(store)
    assert [p.code for p in report.problems] == ["id-mismatch"]
    doctor(store, fix=True)
    data = json.loads(copy.read_bytes())
    assert data["sessionId"] == "fork01" and data["previousSessionId"] == "abc123"
    assert data["messages"] == doc["messages"]
    assert path.read_bytes() == raw
    assert doctor(store).exit_code == 0


def test_template_route_file_is_not_a_problem(store):
    store.ensure()
    path = store.session_dir / "2025-01-18_review123.json"
    path.write_text(
        json.dumps({"sessionId": "new", "messages": [{"role": "user", "content": "Hi"}]})
    )
    os.chmod(path, 0o600)
    assert doctor(store).exit_code == 0


# -- duplicates ----------------------------------------------------------------------------------
def test_duplicate_ids_older_copy_quarantined_and_names_follow(store, taurus_home):
    path, doc, raw = healthy_file(store)
    older = dict(doc, messages=doc["messages"][:3])
    archived = write_session(store.archive_dir, older)
    assert archived.name == path.name
    store.name("abc123", "login-bug")
    report = doctor(store)
    assert [p.code for p in report.problems] == ["duplicate-id"]
    doctor(store, fix=True)
    assert not archived.exists() and path.read_bytes() == raw
    assert quarantined(taurus_home)[archived.name] == fmt.dumps(older)
    assert os.path.realpath(store.session_dir / "login-bug.json") == str(path)
    assert doctor(store).exit_code == 0


def test_duplicate_ids_different_conversations_get_new_ids(store):
    path, _doc, raw = healthy_file(store)
    other = make_document("abc123", n_turns=2, first="Something else entirely")
    other_path = store.session_dir / "2025-02-01_abc123.json"
    other_path.write_bytes(fmt.dumps(other))
    os.chmod(other_path, 0o600)
    doctor(store, fix=True)
    files = sorted(p.name for p in store.files())
    assert len(files) == 2
    assert path.exists() and path.read_bytes() == raw  # the longer one keeps the id
    renamed = next(p for p in store.files() if p != path)
    data = json.loads(renamed.read_bytes())
    assert data["messages"] == other["messages"] and data["previousSessionId"] == "abc123"
    assert renamed.name.endswith(f"_{data['sessionId']}.json")
    assert doctor(store).exit_code == 0


# -- the store around the files -----------------------------------------------------------------
def test_permissions_are_narrowed(store):
    path, _, raw = healthy_file(store)
    os.chmod(path, 0o644)
    os.chmod(store.session_dir, 0o755)
    report = doctor(store)
    assert sorted(p.code for p in report.problems) == ["permissions", "permissions"]
    doctor(store, fix=True)
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.session_dir.stat().st_mode & 0o777 == 0o700
    assert path.read_bytes() == raw and doctor(store).exit_code == 0


def test_stale_lock_removed_and_temp_files_quarantined(store, taurus_home):
    path, _, raw = healthy_file(store)
    lock_path(path).write_text("999999\n")
    temp = path.with_name(f".{path.name}.tmp-0badc0de")
    temp.write_bytes(raw[:100])
    young = path.with_name(f".{path.name}.tmp-00000001")
    young.write_bytes(b"{")
    old = time.time() - 3600
    os.utime(temp, (old, old))
    report = doctor(store)
    assert sorted(p.code for p in report.problems) == ["stale-lock", "temp-file"]
    doctor(store, fix=True)
    assert not lock_path(path).exists() and not temp.exists()
    assert young.exists()  # may belong to a save in progress
    assert quarantined(taurus_home)[temp.name.lstrip(".")] == raw[:100]
    assert path.read_bytes() == raw


def test_a_temp_file_holding_a_newer_whole_version_becomes_the_session(store, taurus_home):
    path, doc, raw = healthy_file(store)
    newer = dict(doc, messages=[*doc["messages"], {"role": "assistant", "content": "One more."}])
    temp = path.with_name(f".{path.name}.tmp-feedface")
    temp.write_bytes(fmt.dumps(newer))
    os.utime(temp, (1, 1))
    doctor(store, fix=True)
    assert store.load(path).messages == newer["messages"]
    assert not temp.exists()
    assert quarantined(taurus_home)[path.name] == raw
    assert doctor(store).exit_code == 0


def test_a_session_open_in_a_chat_is_reported_and_never_touched(store, taurus_home):
    path, _, raw = healthy_file(store)
    path.write_bytes(raw[:-40])
    os.chmod(path, 0o644)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from taurus_ops.store.lock import SessionLock;"
            "l = SessionLock(sys.argv[1]).acquire(); print('ok', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        report = doctor(store, fix=True)
        assert report.exit_code == 1
        problem = next(p for p in report.problems if p.path == str(path))
        assert problem.status == "skipped" and str(holder.pid) in problem.outcome
        assert path.read_bytes() == raw[:-40]
        assert path.stat().st_mode & 0o777 == 0o644  # not even its mode is touched
        assert all(p.status == "skipped" for p in report.problems if p.path == str(path))
        assert lock_path(path).exists()
    finally:
        holder.kill()
        holder.wait()
    assert doctor(store, fix=True).exit_code == 0  # the chat is gone: now it is repaired
    assert doctor(store).exit_code == 0


def test_names_dangling_escaping_and_repointable(store, tmp_path):
    path, _, _raw = healthy_file(store)
    store.name("abc123", "good")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, store.session_dir / "escape.json")
    os.symlink("2025-01-01_gone00.json", store.session_dir / "dangling.json")
    archived = write_session(store.archive_dir, make_document("arch01"))
    os.symlink("2025-01-18_arch01.json", store.session_dir / "moved.json")  # archived by hand
    report = doctor(store)
    codes = sorted(p.code for p in report.problems)
    assert codes == ["dangling-name", "dangling-name", "escaping-name"]
    doctor(store, fix=True)
    assert not (store.session_dir / "escape.json").is_symlink()
    assert outside.read_text() == "{}"  # the target is never touched
    assert not (store.session_dir / "dangling.json").is_symlink()
    assert os.path.realpath(store.session_dir / "moved.json") == str(archived)
    assert os.path.realpath(store.session_dir / "good.json") == str(path)
    assert doctor(store).exit_code == 0


def test_nothing_to_salvage_takes_its_names_along(store, taurus_home):
    path, _, _ = healthy_file(store)
    store.name("abc123", "doomed")
    path.write_bytes(b"\0" * 4096)
    report = doctor(store, fix=True)
    assert report.exit_code == 0
    assert not path.exists() and not (store.session_dir / "doomed.json").is_symlink()
    assert quarantined(taurus_home)[path.name] == b"\0" * 4096
    assert doctor(store).exit_code == 0


def test_dry_run_changes_nothing(store, taurus_home):
    path, _, raw = healthy_file(store)
    path.write_bytes(raw[:300])
    os.chmod(path, 0o644)
    lock_path(path).write_text("1\n")
    before_tree = tree(taurus_home)
    report = doctor(store, fix=True, dry_run=True)
    assert report.exit_code == 1 and report.plan is not None and report.plan.actions
    assert tree(taurus_home) == before_tree


def test_plan_is_pure(store):
    path, _, raw = healthy_file(store)
    path.write_bytes(raw[:500])
    scan = scan_store(Path(os.environ["TAURUS_HOME"]), store.session_dir, store.archive_dir)
    first = [(a.kind, a.data) for a in make_plan(scan).ordered()]
    second = [(a.kind, a.data) for a in make_plan(scan).ordered()]
    assert first == second and path.read_bytes() == raw[:500]


def test_only_the_given_refs_are_checked(store):
    a, _, raw_a = healthy_file(store, "aaa111")
    b, _, raw_b = healthy_file(store, "bbb222")
    a.write_bytes(raw_a[:1200])
    b.write_bytes(raw_b[:200])
    report = run_doctor(
        Path(os.environ["TAURUS_HOME"]),
        store.session_dir,
        store.archive_dir,
        refs=(str(a),),
        fix=True,
    )
    assert report.scan.checked == 1
    assert b.read_bytes() == raw_b[:200] and a.read_bytes() != raw_a[:1200]


def test_a_second_maintenance_job_is_refused(store, taurus_home):
    healthy_file(store)
    with OpsLock(taurus_home):
        from taurus_ops.errors import OpsLocked

        with pytest.raises(OpsLocked):
            doctor(store, fix=True)
        assert doctor(store).exit_code == 0  # a read-only scan needs no lock


def test_index_that_disagrees_is_rebuilt(store, taurus_home):
    index_module = pytest.importorskip("taurus_ops.store.index")
    _path, _, _raw = healthy_file(store)
    index = index_module.Index.for_dirs(taurus_home, store.session_dir, store.archive_dir)
    index.refresh()
    index.close()
    index.path.write_bytes(b"this is not a database" * 100)
    report = doctor(store)
    assert [p.code for p in report.problems] == ["index"] and report.exit_code == 1
    assert doctor(store, fix=True).exit_code == 0
    assert doctor(store).exit_code == 0 and not doctor(store).problems


def test_repairs_leave_the_index_current(store, taurus_home):
    index_module = pytest.importorskip("taurus_ops.store.index")
    path, _, raw = healthy_file(store)
    index = index_module.Index.for_dirs(taurus_home, store.session_dir, store.archive_dir)
    index.refresh()
    index.close()
    path.write_bytes(raw[:400])
    os.utime(path, (time.time() + 5, time.time() + 5))
    doctor(store, fix=True)
    assert not doctor(store).problems


# -- the command -------------------------------------------------------------------------------
def test_cli_exit_codes_and_json(ops, store, taurus_home):
    result = ops("doctor")
    assert result.exit_code == 0 and "Healthy" in result.output
    path, _, raw = healthy_file(store)
    path.write_bytes(raw[:-10])
    result = ops("doctor", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["healthy"] is False and data["problems"][0]["code"] == "unreadable"
    assert data["problems"][0]["severity"] == "error" and data["problems"][0]["fix"]
    result = ops("doctor", "--fix")
    assert result.exit_code == 0 and "fixed:" in result.output
    assert "quarantine" in result.output
    result = ops("doctor", "--fix", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["healthy"] is True
    assert ops("doctor", "--dry-run").exit_code == 2
    assert ops("doctor", "nosuchsession").exit_code == 2
    assert ops("doctor", "--bogus").exit_code == 2


def test_cli_reports_a_broken_config_file_and_still_checks(ops, store, taurus_home):
    healthy_file(store)
    (taurus_home / "config.yaml").write_text("sessions: [unclosed\n")
    result = ops("doctor")
    assert result.exit_code == 1
    assert "config.yaml" in result.output and "Checked 1 session file" in result.output
    assert "edit it by hand" in result.output


def test_cli_progress_bar_is_not_used_off_a_terminal(ops, store):
    healthy_file(store)
    result = ops("doctor")
    assert "checking sessions" not in result.output


def test_chat_shaped_messages_with_their_own_usage_fields(store):
    """Messages the chat wrote carry `usage`/`timestamp`/`model`: a hole must not end the walk."""
    doc = make_document("abc123", n_turns=6)
    for i, message in enumerate(doc["messages"]):
        message["timestamp"] = f"2025-01-18T10:{i:02d}:00.000Z"
        if message["role"] == "assistant":
            message["usage"] = {"inputTokens": 10 * i, "outputTokens": i}
            message["model"] = "claude-sonnet-4-5"
    doc["usage"] = {"inputTokens": 1, "outputTokens": 2, "model": "claude-sonnet-4-5"}
    path = write_session(store.session_dir, doc)
    raw = path.read_bytes()
    spans = message_spans(raw)
    for hit in (3, 10, len(spans) - 2):
        start, end = spans[hit]
        middle = (start + end) // 2
        path.write_bytes(raw[:middle] + b"\0" * 16 + raw[middle + 16 :])
        assert doctor(store, fix=True).exit_code == 0
        data = json.loads(path.read_bytes())
        result = compare(data["messages"], doc["messages"])
        assert result["invented"] == 0 and result["lost"] <= 2, (hit, result)
        assert data["messages"][:hit] == doc["messages"][:hit]
        assert doc["messages"][-1] in data["messages"]
        assert data["toolCalls"] == doc["toolCalls"] and data["usage"] == doc["usage"]
        assert_api_accepts(data["messages"])


def test_progress_bar_on_a_terminal_with_many_files(store, taurus_home):
    pexpect = pytest.importorskip("pexpect")
    from taurus_ops.cli.doctor import PROGRESS_FROM

    for i in range(PROGRESS_FROM):
        write_session(store.session_dir, make_document(f"s{i:05d}", n_turns=0))
    child = pexpect.spawn(
        sys.executable,
        ["-c", "from taurus_ops.cli.main import main; main()", "doctor"],
        env={**os.environ, "COLUMNS": "100"},
        encoding="utf-8",
        timeout=60,
    )
    child.expect("checking sessions")
    child.expect(f"Checked {PROGRESS_FROM} session file")
    child.expect("Healthy")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_cleanup_warning_is_part_of_the_report(ops, store, monkeypatch):
    cleanup = pytest.importorskip("taurus_ops.ops.cleanup")
    healthy_file(store)
    monkeypatch.setattr(
        cleanup, "pending_warning", lambda config, store: "cleanup will archive 3 session(s)"
    )
    result = ops("doctor")
    assert "warning: cleanup will archive 3 session(s)" in result.output
    data = json.loads(ops("doctor", "--json").output)
    assert data["warnings"] == ["cleanup will archive 3 session(s)"]


def test_doctor_fix_with_archive_directory_equal_to_sessions_keeps_every_session(
    ops, taurus_home
) -> None:
    folder = taurus_home / "sessions"
    for n in range(2):
        write_session(folder, make_document(f"same0{n}"))
    (taurus_home / "config.yaml").write_text(f"sessions:\n  archiveDirectory: {folder}\n")
    result = ops("doctor", "--fix")
    assert "share the id" not in result.output
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "2025-01-18_same00.json",
        "2025-01-18_same01.json",
    ]
    assert not list(taurus_home.glob("quarantine/*/*.json"))
