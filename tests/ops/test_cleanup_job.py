"""ops.cleanup.run, the one cleanup job: called directly with a JobContext, from the
command line and from the scheduler, it plans, executes, records and logs alike."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.doctoring import tree
from helpers.jobs import aged_session, log_lines, write_config

from taurus_ops.errors import OpsLocked, UsageError
from taurus_ops.ops import cleanup, schedule
from taurus_ops.ops.cleanup import CleanupRequest
from taurus_ops.ops.context import JobContext
from taurus_ops.store.lock import OpsLock
from taurus_ops.words import plural

CLEANUP_LOG = "taurus_ops.ops.cleanup"


def seed(home: Path) -> None:
    write_config(home, "sessions:\n  retentionDays: 30\n")
    for sid, age in (("fresh001", 0.1), ("stale002", 90), ("stale003", 200)):
        aged_session(home / "sessions", sid, age)


def test_a_dry_run_plans_what_the_rules_say_and_changes_nothing(taurus_home: Path, ops) -> None:
    seed(taurus_home)
    ctx = JobContext.load()  # (reading the settings may leave their start-up cache)
    before = tree(taurus_home)
    result = cleanup.run(ctx, CleanupRequest(dry_run=True))
    assert sorted(a.id for a in result.plan.actions) == ["stale002", "stale003"]
    assert {a.action for a in result.plan.actions} == {cleanup.ARCHIVE}
    assert result.dry_run and result.outcomes == [] and result.ok and result.exit_code == 0
    after = tree(taurus_home)
    assert {k: v for k, v in after.items() if not k.startswith("logs")} == before
    assert not cleanup.state_path(taurus_home).exists()  # a dry run is not recorded
    assert log_lines(taurus_home, CLEANUP_LOG) == [
        "INFO cleanup --dry-run: would archive 2, delete 0 "
        f"({plural(result.plan.bytes, 'byte')}); 0 kept by protection"
    ]
    printed = json.loads(ops("cleanup", "--dry-run", "--json").output)
    assert {**printed, "now": None} == {**result.as_json(), "now": None}  # what the CLI prints


def test_the_scheduler_and_the_command_line_run_the_same_cleanup(
    taurus_home: Path, tmp_path: Path, ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(taurus_home)
    assert ops("cleanup").exit_code == 0
    by_hand = log_lines(taurus_home, CLEANUP_LOG)
    other = tmp_path / "scheduled-home"
    seed(other)
    monkeypatch.setenv("TAURUS_HOME", str(other))
    assert schedule.run_job("cleanup", lock_wait=0) == "ok"
    scheduled = log_lines(other, CLEANUP_LOG)
    assert scheduled == by_hand
    assert by_hand[0] == "INFO cleanup: start (sessions.retentionDays=30)"
    assert by_hand[-1].startswith("INFO cleanup: done: archived 2, deleted 0, freed ")
    assert sum("cleanup: archived HOME/sessions/" in line for line in by_hand) == 2
    archived = [sorted(os.listdir(home / "archive")) for home in (taurus_home, other)]
    assert archived[0] == archived[1] and len(archived[0]) == 2  # carried out alike
    for home in (taurus_home, other):  # and recorded alike
        assert cleanup.read_state(home)["archived"] == 2  # type: ignore[index]
    finished = log_lines(other, "taurus_ops.ops.schedule")[-1]
    assert finished.startswith("INFO cleanup: scheduled run finished: archived 2, deleted 0")


def test_with_retention_off_nothing_is_read_or_locked(taurus_home: Path) -> None:
    aged_session(taurus_home / "sessions", "stale002", 900)
    with OpsLock(taurus_home):  # another job runs: an idle cleanup does not mind
        result = cleanup.run(JobContext.load(), CleanupRequest())
    assert result.off and result.plan.actions == [] and result.ok
    assert result.as_json() == {"actions": [], "skipped": [], "note": cleanup.OFF_NOTE}
    assert result.summary() == "retention is off (nothing configured), nothing to do"
    assert log_lines(taurus_home, CLEANUP_LOG) == []


def test_an_overlapping_archive_is_refused_before_waiting_for_the_lock(taurus_home: Path) -> None:
    write_config(
        taurus_home,
        f"sessions:\n  retentionDays: 30\n  archiveDirectory: {taurus_home / 'sessions' / 'old'}\n",
    )
    with OpsLock(taurus_home):
        with pytest.raises(UsageError, match="overlap"):
            cleanup.run(JobContext.load(), CleanupRequest(wait=60))
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    with OpsLock(taurus_home), pytest.raises(OpsLocked):
        cleanup.run(JobContext.load(), CleanupRequest())


def test_the_rules_are_measured_from_the_moment_asked_for(taurus_home: Path) -> None:
    seed(taurus_home)
    later = datetime.now(UTC) + timedelta(days=1000)
    result = cleanup.run(JobContext.load(), CleanupRequest(dry_run=True, now=later))
    assert result.plan.now == later
    assert sorted(a.id for a in result.plan.actions) == ["stale002", "stale003"]
    (kept,) = result.plan.skipped  # old by then too, but the newest is always kept
    assert kept.id == "fresh001" and kept.why == "the newest session is always kept"


def family(home: Path) -> str:
    """An old parent whose fresh fork links two of its checkpoints, and an old loner, in
    ``home``, retention deleting old sessions; returns the fork's id."""
    from helpers.checkpoints import edited_session

    from taurus_ops.store import SessionStore
    from taurus_ops.store.checkpoints import CheckpointStore
    from taurus_ops.store.fork import fork_session

    store = SessionStore(home / "sessions", home / "archive")
    edits = [("a.py", None, b"one\n" * 50), ("a.py", b"one\n" * 50, b"two\n" * 60)]
    edits.append(("b.py", b"bee\n" * 70, b"bee 2\n" * 80))
    parent = edited_session(home, store.session_dir, "parent01", edits)
    edited_session(home, store.session_dir, "loner001", [("c.py", b"see\n", b"sea\n")])
    fork = fork_session(store, store.load(parent), 5, CheckpointStore.for_home(home))
    write_config(home, "sessions:\n  retentionDays: 30\n  autoArchive: false\n")
    return fork.session.id


def test_the_scheduled_cleanup_takes_the_checkpoints_of_what_it_deletes(
    taurus_home: Path, tmp_path: Path, ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taurus_ops.store.checkpoints import CheckpointStore

    homes = {"by hand": taurus_home, "scheduled": tmp_path / "scheduled-home"}
    forks = {name: family(home) for name, home in homes.items()}
    kept = {
        name: {b.sha: b.size for b in CheckpointStore.for_home(home).blobs(forks[name])}
        for name, home in homes.items()
    }
    assert ops("cleanup").exit_code == 0
    monkeypatch.setenv("TAURUS_HOME", str(homes["scheduled"]))
    assert schedule.run_job("cleanup", lock_wait=0) == "ok"
    logs = {name: log_lines(home, CLEANUP_LOG) for name, home in homes.items()}
    assert logs["scheduled"] == logs["by hand"]
    assert sum("cleanup: removed the checkpoints of " in line for line in logs["by hand"]) == 2
    for name, home in homes.items():
        blobs = CheckpointStore.for_home(home)
        assert blobs.session_ids() == [forks[name]]
        assert {b.sha: b.size for b in blobs.blobs(forks[name])} == kept[name]
        assert blobs.verify(forks[name]) == []
        for sha in kept[name]:
            blobs.read(forks[name], sha)  # whole, and checked against its name
    finished = log_lines(homes["scheduled"], "taurus_ops.ops.schedule")[-1]
    assert "deleted 2" in finished and "of checkpoints" in finished
