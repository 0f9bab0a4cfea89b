"""Cleanup: the planner's promises (hypothesis), the executor, archive/unarchive, locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.jobs import aged_session, write_config
from helpers.mounts import mount_tmpfs
from helpers.processes import without_dac
from helpers.sessions import make_document, write_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.ops import archive, cleanup
from taurus_ops.ops.cleanup import ARCHIVE, DELETE, Entry, Rules, Snapshot, plan_cleanup
from taurus_ops.words import human_size, plural

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# -- the pure planner -------------------------------------------------------------------------
entry_st = st.fixed_dictionaries(
    {
        "age": st.floats(min_value=0, max_value=400, allow_nan=False),
        "locked": st.booleans(),
        "named": st.booleans(),
        "parseable": st.integers(0, 9).map(lambda n: n != 0),
    }
)
rules_st = st.builds(
    Rules,
    retention_days=st.none() | st.integers(1, 365),
    max_sessions=st.none() | st.integers(1, 30),
    auto_archive=st.booleans(),
    cleanup_named=st.booleans(),
    archive_retention_days=st.none() | st.integers(1, 365),
)


def build_snapshot(specs: list[dict], archived_specs: list[dict]) -> Snapshot:
    def entry(i: int, spec: dict, archived: bool) -> Entry:
        folder = "/nonexistent/archive" if archived else "/nonexistent/sessions"
        updated = NOW - timedelta(days=spec["age"]) if spec["parseable"] else None
        return Entry(
            path=f"{folder}/2025-01-01_s{i:03d}.json",
            id=f"s{i:03d}",
            updated=updated,
            mtime=(NOW - timedelta(days=spec["age"])).timestamp(),
            size=1000 + i,
            archived=archived,
            locked=spec["locked"],
            names=(f"name{i}",) if spec["named"] else (),
            error=None if spec["parseable"] else "not valid JSON",
        )

    active = tuple(entry(i, s, False) for i, s in enumerate(specs))
    archived = tuple(entry(500 + i, s, True) for i, s in enumerate(archived_specs))
    return Snapshot(active, archived)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(entry_st, max_size=40),
    archived_specs=st.lists(entry_st, max_size=10),
    rules=rules_st,
)
def test_planner_promises(specs: list[dict], archived_specs: list[dict], rules: Rules) -> None:
    snapshot = build_snapshot(specs, archived_specs)
    plan = plan_cleanup(rules, snapshot, NOW)
    assert plan_cleanup(rules, snapshot, NOW).as_json() == plan.as_json()  # deterministic
    touched = {a.path for a in plan.actions}
    assert len(touched) == len(plan.actions)
    by_path = {e.path: e for e in snapshot.active + snapshot.archived}
    readable = [e for e in snapshot.active if e.updated is not None]
    newest = max(readable, key=lambda e: (e.updated, e.mtime, e.path), default=None)

    def protected(e: Entry) -> bool:
        return (
            e.updated is None
            or e.locked
            or (bool(e.names) and not rules.cleanup_named)
            or (newest is not None and e.path == newest.path)
        )

    for action in plan.actions:
        e = by_path[action.path]
        # never the newest, never locked, never named (unless allowed), never unparseable
        assert not protected(e) or (e.archived and not (e.locked or e.updated is None))
        assert not e.locked and e.updated is not None
        assert not (e.names and not rules.cleanup_named)
        if e.archived:
            assert action.action == DELETE and rules.archive_retention_days
            assert e.updated < NOW - timedelta(days=rules.archive_retention_days)
        else:
            assert e.path != newest.path
            assert action.action == (ARCHIVE if rules.auto_archive else DELETE)
            assert action.reasons
    # what is left: nothing unprotected older than retentionDays, or beyond maxSessions
    ranked = sorted(readable, key=lambda e: (e.updated, e.mtime, e.path), reverse=True)
    rank = {e.path: i + 1 for i, e in enumerate(ranked)}
    left = [e for e in snapshot.active if e.path not in touched]
    for e in left:
        if protected(e):
            continue
        if rules.retention_days is not None:
            assert e.updated >= NOW - timedelta(days=rules.retention_days)
        if rules.max_sessions is not None:
            assert rank[e.path] <= rules.max_sessions
    if rules.max_sessions is not None:
        extra = [e for e in left if e.updated is not None and rank[e.path] > rules.max_sessions]
        assert all(protected(e) for e in extra)
        assert len([e for e in left if e.updated is not None]) <= rules.max_sessions + len(extra)
    # nothing happens without a rule
    if not rules.active:
        assert plan.actions == []


def test_planner_off_by_default_and_reasons() -> None:
    snap = build_snapshot(
        [{"age": a, "locked": False, "named": False, "parseable": True} for a in (1, 40, 90)], []
    )
    assert plan_cleanup(Rules(), snap, NOW).actions == []
    plan = plan_cleanup(Rules(retention_days=30, max_sessions=2), snap, NOW)
    reasons = {a.id: a.reasons for a in plan.actions}
    assert set(reasons) == {"s001", "s002"}
    assert any("retentionDays=30" in r for r in reasons["s001"])
    assert any("maxSessions=2" in r for r in reasons["s002"])


def test_newest_is_kept_even_when_everything_is_old() -> None:
    specs = [{"age": 300 + i, "locked": False, "named": False, "parseable": True} for i in range(3)]
    plan = plan_cleanup(Rules(retention_days=30), build_snapshot(specs, []), NOW)
    assert [a.id for a in plan.actions] == ["s001", "s002"]
    assert any("newest" in s.why for s in plan.skipped if s.id == "s000")


# -- the command, on real files ---------------------------------------------------------------
def test_dry_run_prints_exactly_what_the_real_run_does(taurus_home: Path, store, ops) -> None:
    folder = store.session_dir
    for i, age in enumerate([0.1, 5, 40, 50, 60, 70]):
        aged_session(folder, f"s{i}", age)
    store.name("s5", "keepme")
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  maxSessions: 4\n")
    dry = ops("cleanup", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = [(a["action"], a["path"]) for a in json.loads(dry.output)["actions"]]
    assert len(planned) == 3 and all(kind == "archive" for kind, _ in planned)
    assert all(Path(p).exists() for _, p in planned)  # the dry run changed nothing
    text = ops("cleanup", "--dry-run")
    for _, path in planned:
        assert Path(path).name in text.output
    real = ops("cleanup", "--json")
    assert real.exit_code == 0, real.output
    out = json.loads(real.output)
    assert [(a["action"], a["path"]) for a in out["actions"]] == planned
    assert out["archivedCount"] == 3 and out["bytesFreed"] > 0
    for _, path in planned:
        assert not Path(path).exists()
        assert (store.archive_dir / Path(path).name).is_file()
    # the named one stayed; its name still resolves; listing shows archived ones
    assert (folder / "keepme.json").resolve().parent == folder.resolve()
    listed = json.loads(ops("list", "--archived", "--json").output)
    assert sum(1 for s in listed if s["archived"]) == 3
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert "cleanup: done: archived 3" in log and "cleanup --dry-run" in log


def test_named_session_archived_when_allowed_keeps_a_working_name(
    taurus_home: Path, store, ops
) -> None:
    aged_session(store.session_dir, "new1", 0.1)
    old = aged_session(store.session_dir, "old1", 90)
    store.name("old1", "legacy")
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  cleanupNamed: true\n")
    assert ops("cleanup").exit_code == 0
    link = store.session_dir / "legacy.json"
    assert link.is_symlink() and link.resolve() == (store.archive_dir / old.name).resolve()
    assert store.resolve("legacy").archived
    assert json.loads(ops("show", "legacy", "--json").output)["sessionId"] == "old1"


def test_delete_mode_and_archive_expiry_remove_names(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "keep", 0.1)
    gone = aged_session(store.session_dir, "gone", 90)
    store.name("gone", "gone-name")
    store.archive_dir.mkdir(parents=True, exist_ok=True)
    expired = aged_session(store.archive_dir, "expired", 400)
    fresh = aged_session(store.archive_dir, "fresh", 10)
    write_config(
        taurus_home,
        "sessions:\n  retentionDays: 30\n  autoArchive: false\n  cleanupNamed: true\n"
        "archive:\n  retentionDays: 365\n",
    )
    result = ops("cleanup")
    assert result.exit_code == 0, result.output
    assert "deleted 2" in result.output.lower()
    assert not gone.exists() and not (store.session_dir / "gone-name.json").is_symlink()
    assert not expired.exists() and fresh.exists()


def test_unparseable_file_is_reported_never_touched(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "ok", 0.1)
    bad = store.session_dir / "2020-01-01_broken.json"
    bad.write_text('{"sessionId": "broken", "messages": [')
    old = time.time() - 400 * 86400
    os.utime(bad, (old, old))
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  maxSessions: 1\n")
    out = ops("cleanup", "--dry-run")
    assert "cannot be parsed" in out.output and "doctor" in out.output
    assert ops("cleanup").exit_code == 0
    assert bad.read_text() == '{"sessionId": "broken", "messages": ['


def test_retention_off_announces_itself(store, ops) -> None:
    aged_session(store.session_dir, "a", 500)
    aged_session(store.session_dir, "b", 0)
    out = ops("cleanup")
    assert out.exit_code == 0 and "retention is off" in out.output
    assert len(store.files()) == 2


def test_pending_warning_on_list_until_a_cleanup_ran(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "a", 0.1)
    for i in range(3):
        aged_session(store.session_dir, f"old{i}", 60 + i)
    listed = ops("list")
    assert "warning" not in listed.output  # nothing configured: no warning, no scan
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    warned = ops("list")
    assert "sessions.retentionDays=30 will archive 3 sessions at the next cleanup" in warned.output
    assert ops("cleanup").exit_code == 0
    aged_session(store.session_dir, "old9", 90)
    assert "warning" not in ops("list").output  # the same rules already ran
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  autoArchive: false\n")
    assert "will delete 1 session at the next cleanup" in ops("list").output


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(entry_st, max_size=40),
    archived_specs=st.lists(entry_st, max_size=10),
    rules=rules_st,
    step=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_a_plan_holds_until_its_next_change(
    specs: list[dict], archived_specs: list[dict], rules: Rules, step: float
) -> None:
    """``Plan.next_change`` is when the plan first differs: the same plan at any moment
    before it, another just after (what lets the pending warning be remembered)."""
    snapshot = build_snapshot(specs, archived_specs)
    plan = plan_cleanup(rules, snapshot, NOW)

    def shape(moment: datetime) -> tuple[list, list]:
        other = plan_cleanup(rules, snapshot, moment)
        return [(a.action, a.path) for a in other.actions], sorted(s.path for s in other.skipped)

    if plan.next_change is None:  # no age rule can reach a session it keeps
        assert shape(NOW + timedelta(days=800)) == shape(NOW)
        return
    assert plan.next_change >= NOW
    assert shape(NOW + (plan.next_change - NOW) * step) == shape(NOW)
    assert shape(plan.next_change + timedelta(microseconds=1)) != shape(NOW)


def test_pending_warning_is_remembered_until_something_it_depends_on_changes(
    taurus_home: Path, store, ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taurus_ops.errors import TaurusError
    from taurus_ops.ops import pending

    aged_session(store.session_dir, "a", 0.1)
    for i in range(3):
        aged_session(store.session_dir, f"old{i}", 60 + i)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    cache = taurus_home / pending.CACHE_FILE
    assert "will archive 3 sessions" in ops("list").output
    assert not cache.exists()  # the folder changed a moment ago: nothing kept
    monkeypatch.setattr(pending, "RACY_SECONDS", 0.0)
    assert "will archive 3 sessions" in ops("list").output
    assert cache.stat().st_mode & 0o777 == 0o600

    planner = cleanup.make_plan

    def refuse(*args: object, **kwargs: object) -> None:
        raise TaurusError("the planner ran")

    monkeypatch.setattr(cleanup, "make_plan", refuse)
    assert "will archive 3 sessions" in ops("list").output  # remembered: no planning
    assert "will archive 3 sessions" in ops("doctor").output
    data = json.loads(cache.read_text())
    data["until"] = time.time() - 1  # a kept session came of age
    cache.write_text(json.dumps(data))
    assert "cleanup cannot run: the planner ran" in ops("list").output
    monkeypatch.setattr(cleanup, "make_plan", planner)

    aged_session(store.session_dir, "old9", 90)  # the folder's stamp moves
    assert "will archive 4 sessions" in ops("list").output
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  autoArchive: false\n")
    assert "will delete 4 sessions" in ops("list").output  # other rules, another answer
    cache.write_text("{damaged")
    assert "will delete 4 sessions" in ops("list").output
    assert json.loads(cache.read_text())["warning"].startswith("sessions.retentionDays=30")


def test_bad_layout_refused(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "a", 40)
    write_config(
        taurus_home,
        f"sessions:\n  retentionDays: 30\n  archiveDirectory: {store.session_dir}/old\n",
    )
    out = ops("cleanup")
    assert out.exit_code == 2 and "overlap" in out.output


# -- archive / unarchive -------------------------------------------------------------------------
def test_archive_and_unarchive_commands(store, ops) -> None:
    path = aged_session(store.session_dir, "abc123", 3)
    store.name("abc123", "nice")
    content = path.read_bytes()
    out = ops("archive", "abc123")
    assert out.exit_code == 0, out.output
    moved = store.archive_dir / path.name
    assert moved.read_bytes() == content and not path.exists()
    assert (store.session_dir / "nice.json").resolve() == moved.resolve()
    again = ops("archive", "abc123")
    assert again.exit_code == 1 and "already archived" in again.output
    assert ops("unarchive", "nice").exit_code == 0
    assert path.read_bytes() == content
    assert (store.session_dir / "nice.json").resolve() == path.resolve()
    missing = ops("unarchive", "zzz")
    assert missing.exit_code != 0 and "Traceback" not in missing.output


# -- real processes: a chat holding a session, two jobs competing --------------------------------
def _start(code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


HOLD_SESSION = """
import sys
from pathlib import Path
from taurus_ops.store.lock import SessionLock
with SessionLock(Path(sys.argv[1])):
    print("ready", flush=True)
    sys.stdin.read()
"""

HOLD_OPS = """
import sys
from pathlib import Path
from taurus_ops.store.lock import OpsLock
with OpsLock(Path(sys.argv[1])):
    print("ready", flush=True)
    sys.stdin.read()
"""


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def test_session_open_in_a_chat_process_is_never_touched(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "new", 0.1)
    held = aged_session(store.session_dir, "held", 90)
    other = aged_session(store.session_dir, "other", 90)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    from taurus_ops.config import load_config

    config = load_config()
    plan = cleanup.make_plan(config, store)  # planned while nothing is locked
    assert {a.id for a in plan.actions} == {"held", "other"}
    chat = _start(HOLD_SESSION, str(held))
    try:
        dry = ops("cleanup", "--dry-run")
        assert "open in a running chat" in dry.output
        result = archive.execute(plan, store)  # the chat opened it after planning
        done = {o.action.id: o for o in result.outcomes}
        assert not done["held"].done and "locked" in done["held"].detail
        assert done["other"].done
        assert held.exists()
    finally:
        _stop(chat)
    assert not other.exists()


def _taurus_ops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_two_jobs_never_run_at_once(taurus_home: Path, store) -> None:
    aged_session(store.session_dir, "new", 0.1)
    aged_session(store.session_dir, "old", 90)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    holder = _start(HOLD_OPS, str(taurus_home))
    try:
        refused = _taurus_ops("cleanup")
        assert refused.returncode == 1
        assert "another maintenance job" in refused.stderr
        assert refused.stderr.count("\n") == 1  # one line, no traceback
        backup = _taurus_ops("backup", "create")
        assert backup.returncode == 1 and "another maintenance job" in backup.stderr
        assert len(store.files()) == 2  # nothing moved while the other job held the lock
        waiter = subprocess.Popen(
            [sys.executable, "-m", "taurus_ops.cli", "cleanup", "--wait", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        assert waiter.poll() is None  # still waiting for the lock
    finally:
        _stop(holder)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "Archived 1" in out
    assert [p.name.split("_")[1] for p in store.files()] == ["new.json"]


# -- across file systems -------------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path: Path):
    mount = tmp_path / "other-fs"
    mount.mkdir()
    mount_tmpfs(mount, "size=4m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def test_archive_across_file_systems(taurus_home: Path, store, ops, tmpfs: Path) -> None:
    aged_session(store.session_dir, "new", 0.1)
    old = aged_session(store.session_dir, "old", 90)
    store.name("old", "named")
    content = old.read_bytes()
    archive = tmpfs / "archive"
    write_config(
        taurus_home,
        f"sessions:\n  retentionDays: 30\n  cleanupNamed: true\n  archiveDirectory: {archive}\n",
    )
    assert os.stat(store.session_dir).st_dev != os.stat(tmpfs).st_dev
    out = ops("cleanup")
    assert out.exit_code == 0, out.output
    moved = archive / old.name
    assert moved.read_bytes() == content and not old.exists()
    assert oct(moved.stat().st_mode & 0o777) == "0o600"
    assert (store.session_dir / "named.json").resolve() == moved.resolve()
    assert not [p for p in archive.iterdir() if p.name.startswith(".")]  # no temp left


def test_an_interrupted_move_is_finished_by_the_next_run(taurus_home: Path, store, ops) -> None:
    aged_session(store.session_dir, "new", 0.1)
    old = aged_session(store.session_dir, "old", 90)
    store.name("old", "old-name")
    # a crash after the link into the archive, before the original was removed
    store.archive_dir.mkdir(parents=True)
    os.link(old, store.archive_dir / old.name)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n  cleanupNamed: true\n")
    plan = json.loads(ops("cleanup", "--dry-run", "--json").output)
    assert [a["id"] for a in plan["actions"]] == ["old"]
    assert any("interrupted" in r for r in plan["actions"][0]["reasons"])
    assert ops("cleanup").exit_code == 0
    assert not old.exists() and (store.archive_dir / old.name).is_file()
    assert store.resolve("old-name").archived
    # a different file of the same name in the archive is left for the doctor
    clash = aged_session(store.session_dir, "clash", 90)
    (store.archive_dir / clash.name).write_text("{}")
    out = ops("cleanup", "--dry-run")
    assert "already in the archive" in out.output and clash.exists()


def test_logs_hold_no_secrets(taurus_home: Path, store, ops, monkeypatch) -> None:
    secret = "sk-ant-api03-" + "x" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    aged_session(store.session_dir, "new", 0.1)
    doc = make_document("leaky", created=datetime.now(UTC) - timedelta(days=90))
    doc["messages"].append({"role": "user", "content": f"my key is {secret}"})
    doc["updated"] = doc["created"]
    write_session(store.session_dir, doc)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    assert ops("cleanup").exit_code == 0
    assert ops("backup", "create").exit_code == 0
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert "cleanup: archived" in log and "backup: wrote" in log
    assert secret not in log and "sk-ant" not in log
    assert oct((taurus_home / "logs" / "taurus-ops.log").stat().st_mode & 0o777) == "0o600"


def test_unwritable_archive_loses_nothing(taurus_home: Path, store, ops, tmp_path: Path) -> None:
    mount = tmp_path / "read-only"
    mount.mkdir()
    mount_tmpfs(mount, "size=1m,ro")
    try:
        aged_session(store.session_dir, "new", 0.1)
        old = aged_session(store.session_dir, "old", 90)
        content = old.read_bytes()
        write_config(taurus_home, f"sessions:\n  retentionDays: 30\n  archiveDirectory: {mount}\n")
        out = ops("cleanup")
        assert out.exit_code == 1
        assert "Read-only file system" in out.output and "Traceback" not in out.output
        assert old.read_bytes() == content
        assert not [p for p in store.session_dir.iterdir() if p.name.endswith(".lock")]
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def test_cleanup_goes_on_past_a_lock_it_may_not_open(home: Path) -> None:
    """A lock file another user owns (left by `sudo taurus chat`) keeps that one session
    where it is; the rest of the plan is still carried out."""
    sessions = home / ".taurus" / "sessions"
    base = datetime(2025, 1, 18, tzinfo=UTC)
    for i in range(3):
        write_session(sessions, make_document(f"s{i}", created=base.replace(day=18 + i)))
    lock = sessions / ".2025-01-18_s0.json.lock"
    lock.write_text("1\n")
    os.chmod(lock, 0o600)
    os.chown(lock, 12345, 12345) if os.geteuid() == 0 else os.chmod(lock, 0)
    (home / ".taurus" / "config.yaml").write_text("sessions:\n  maxSessions: 1\n")
    done = without_dac(["cleanup"])
    assert done.returncode == 1, done.stderr
    assert "2025-01-18_s0.json" in done.stderr and "ermission denied" in done.stderr
    assert (sessions / "2025-01-18_s0.json").is_file()
    assert (home / ".taurus" / "archive" / "2025-01-19_s1.json").is_file()
    assert (sessions / "2025-01-20_s2.json").is_file()


# -- file checkpoints: a deleted session takes its folder, an archived one keeps it ---------------
BIG = [
    ("a.py", None, b"one\n" * 300),
    ("a.py", b"one\n" * 300, b"two\n" * 500),
    ("b.py", b"bee\n" * 200, b"bee 2\n" * 100),
]
FORK_KEEPS = [b"one\n" * 300, b"two\n" * 500]  # a fork at message 5 names the first two edits
PARENT_ONLY = [b"bee\n" * 200, b"bee 2\n" * 100]
LONER = [b"see\n" * 70, b"sea\n" * 90]


def blob_sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def family_home(home: Path, store) -> tuple[Path, Path, str]:  # type: ignore[no-untyped-def]
    """An old parent with a fresh fork (sharing two blobs), an old loner; (parent, loner,
    the fork's id). Retention deletes old sessions."""
    from helpers.checkpoints import edited_session

    from taurus_ops.store.checkpoints import CheckpointStore
    from taurus_ops.store.fork import fork_session

    parent = edited_session(home, store.session_dir, "parent01", BIG)
    loner = edited_session(home, store.session_dir, "loner001", [("c.py", LONER[0], LONER[1])])
    fork = fork_session(store, store.load(parent), 5, CheckpointStore.for_home(home))
    assert fork.linked == 2
    write_config(home, "sessions:\n  retentionDays: 30\n  autoArchive: false\n")
    return parent, loner, fork.session.id


def test_a_deleted_session_takes_its_checkpoints_and_leaves_a_forks(
    taurus_home: Path, store, ops
) -> None:
    from helpers.doctoring import tree

    from taurus_ops.store.checkpoints import CheckpointStore

    parent, loner, fork_id = family_home(taurus_home, store)
    blobs = CheckpointStore.for_home(taurus_home)
    ops("list")  # (reading the settings leaves their start-up cache)

    def data() -> dict:  # everything but the ops log
        return {k: v for k, v in tree(taurus_home).items() if not k.startswith("logs")}

    before = data()
    dry = ops("cleanup", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert data() == before
    lines = {
        line.split()[1].rsplit("/", 1)[-1].rstrip(":"): line for line in dry.output.splitlines()
    }
    shared = human_size(sum(map(len, FORK_KEEPS)))
    assert lines[parent.name].endswith(
        f"; and its checkpoints ({human_size(sum(map(len, PARENT_ONLY)))}; "
        f"{shared} shared with a fork or parent stays)"
    )
    assert lines[loner.name].endswith(f"; and its checkpoints ({human_size(sum(map(len, LONER)))})")
    freed = sum(map(len, PARENT_ONLY + LONER))
    assert f", and {human_size(freed)} of their checkpoints)" in dry.output
    planned = json.loads(ops("cleanup", "--dry-run", "--json").output)
    by_id = {a["id"]: a for a in planned["actions"]}
    assert by_id["parent01"]["checkpointFolder"] == str(blobs.folder("parent01"))
    assert by_id["parent01"]["checkpointBytes"] == sum(map(len, PARENT_ONLY))
    assert by_id["parent01"]["checkpointShared"] == sum(map(len, FORK_KEEPS))
    assert by_id["loner001"]["checkpointBytes"] == sum(map(len, LONER))
    assert planned["checkpointBytes"] == freed

    done = ops("cleanup", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["deletedCount"] == 2 and out["checkpointBytesFreed"] == freed
    assert not parent.exists() and not loner.exists()
    assert blobs.session_ids() == [fork_id]  # both folders went; the fork's stays
    for data in FORK_KEEPS:  # the fork's blobs: the same bytes, now its own only link
        assert blobs.read(fork_id, blob_sha(data)) == data
        assert blobs.path(fork_id, blob_sha(data)).stat().st_nlink == 1
    assert blobs.verify(fork_id) == []
    shown = json.loads(ops("checkpoints", fork_id, "--json").output)
    assert all(change["kept"] for change in shown["changes"]) and len(shown["changes"]) == 2
    # stats and `checkpoints REF` agree on what is left
    stats = json.loads(ops("stats", "--json").output)
    assert stats["checkpointBytes"] == shown["bytes"] == blobs.size() == sum(map(len, FORK_KEEPS))
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert f"removed the checkpoints of parent01 ({blobs.folder('parent01')}, " in log
    assert f"and {plural(freed, 'byte')} of checkpoints, 0 left" in log.splitlines()[-1]
    assert cleanup.read_state(taurus_home)["checkpointBytesFreed"] == freed  # type: ignore[index]
    from helpers.jobs import run_doctor

    report = run_doctor(taurus_home, store.session_dir, store.archive_dir, full=True)
    assert [p for p in report.problems if p.code.startswith("checkpoint")] == []


def test_a_delete_that_is_skipped_keeps_its_checkpoints(taurus_home: Path, store) -> None:
    from helpers.doctoring import tree

    from taurus_ops.config import load_config

    parent, loner, _ = family_home(taurus_home, store)
    plan = cleanup.make_plan(load_config(), store)
    assert {a.id: bool(a.checkpoint_folder) for a in plan.actions} == {
        "parent01": True,
        "loner001": True,
    }
    folders = taurus_home / "checkpoints"
    kept = tree(folders)
    with parent.open("ab") as handle:  # written after planning: left for the next run
        handle.write(b"\n")
    chat = _start(HOLD_SESSION, str(loner))  # opened in a chat after planning
    try:
        result = archive.execute(plan, store)
    finally:
        _stop(chat)
    assert [o.done for o in result.outcomes] == [False, False]
    assert parent.exists() and loner.exists()
    assert tree(folders) == kept and result.checkpoint_bytes_freed == 0


def test_a_folder_another_session_file_names_is_never_removed(taurus_home: Path, store) -> None:
    """Two files with one id (a copy kept by hand in a project folder): deleting one leaves
    the checkpoints the other names."""
    import shutil

    from taurus_ops.config import load_config

    parent, _, _ = family_home(taurus_home, store)
    (store.session_dir / "project-a").mkdir()
    shutil.copy(parent, store.session_dir / "project-a" / parent.name)
    plan = cleanup.make_plan(load_config(), store)
    (action,) = [a for a in plan.actions if a.id == "parent01"]
    assert action.checkpoint_folder == "" and action.checkpoint_bytes == 0
    result = archive.execute(plan, store)
    assert all(o.done for o in result.outcomes) and not parent.exists()
    assert (taurus_home / "checkpoints" / "parent01").is_dir()
    assert not (taurus_home / "checkpoints" / "loner001").exists()


def test_an_archived_session_keeps_its_checkpoints_and_rewinds_after_unarchive(
    taurus_home: Path, store, ops, fake_api
) -> None:
    from helpers.chat import make_app
    from helpers.fake_api import text, tool_use

    from taurus_ops.chat.commands import Commands
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.checkpoints import CheckpointStore

    fake_api.add(
        tool_use("write", {"file": "notes.txt", "content": "alpha\nbeta\n"}),
        text("Wrote it."),
        tool_use("edit", {"file": "notes.txt", "old_string": "beta", "new_string": "gamma"}),
        text("Changed it."),
    )
    app, _ = make_app(store, ["yes", "yes"])
    app.start_new()
    app.message("write notes.txt")
    app.message("now change it")
    app.close()
    sid = app.session.id
    blobs = CheckpointStore.for_home(taurus_home)
    folder = blobs.folder(sid)
    held = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(held) == 2
    aged_session(store.session_dir, "newest01", -1)  # the newest is always kept
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    later = datetime.now(UTC) + timedelta(days=60)
    result = cleanup.run(JobContext.load(), cleanup.CleanupRequest(now=later))
    assert [o.action.id for o in result.archived] == [sid]
    assert store.resolve(sid).archived
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == held  # in place, by id
    shown = json.loads(ops("checkpoints", sid, "--json").output)
    assert shown["folder"] == str(folder) and all(c["kept"] for c in shown["changes"])
    assert ops("unarchive", sid).exit_code == 0
    app, ui = make_app(store, [])
    app.open_ref(sid)
    ui.answers += ["f", "y"]  # files only; yes, restore
    Commands(app)("/rewind 4")  # to just before the edit
    assert Path("notes.txt").read_text() == "alpha\nbeta\n"
    app.close()
