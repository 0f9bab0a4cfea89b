"""ops.sync.run, ops.share.run and ops.sync.remote_init.run with a JobContext, against a
folder remote; the scheduler's sync and the command line's log alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.jobs import log_lines
from helpers.machines import Machine, make_remote

from taurus_ops.errors import OpsLocked
from taurus_ops.ops import schedule, share, sync
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.sync import SyncRequest
from taurus_ops.ops.sync.remote_init import InitRequest
from taurus_ops.ops.sync.remote_init import run as init_remote
from taurus_ops.store.lock import OpsLock

SYNC_LOG = "taurus_ops.ops.sync"


def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "desk") -> Machine:
    """A machine with its own folder remote, whose settings the process now reads."""
    root = tmp_path / name
    root.mkdir()
    made = Machine(root, "desk", make_remote("file", root))
    for key, value in made.env().items():
        monkeypatch.setenv(key, value)
    return made


def test_a_dry_run_plans_and_writes_nothing_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = machine(tmp_path, monkeypatch)
    desk.add("aaa00001")
    desk.add("bbb00002")
    result = sync.run(JobContext.load(), SyncRequest(dry_run=True))
    assert sorted((a.kind, a.id) for a in result.plan.actions) == [
        ("upload-new", "aaa00001"),
        ("upload-new", "bbb00002"),
    ]
    assert result.moves is None and result.dry_run and result.ok
    assert result.dry_summary().startswith("Would upload 2 and download 0 (0 in step")
    assert desk.remote.raw_objects() == {}
    assert log_lines(desk.home, SYNC_LOG) == []  # only real runs are logged
    done = sync.run(JobContext.load(), SyncRequest(sync.PUSH))
    assert done.moves is not None and done.moves.count("uploaded") == 2 and done.exit_code == 0
    sessions = sorted(k for k in desk.remote.raw_objects() if k.startswith("sessions/"))
    assert sessions == ["sessions/aaa00001.json", "sessions/bbb00002.json"]
    assert done.as_json()["results"]["uploaded"] == ["aaa00001", "bbb00002"]


def test_sync_holds_the_ops_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    desk = machine(tmp_path, monkeypatch)
    desk.add("aaa00001")
    with OpsLock(desk.home), pytest.raises(OpsLocked):
        sync.run(JobContext.load(), SyncRequest(dry_run=True))


def test_the_scheduler_and_the_command_line_run_the_same_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = []
    for name, how in (("by-hand", "cli"), ("scheduled", "scheduler")):
        here = machine(tmp_path, monkeypatch, name)
        here.add("aaa00001")
        here.add("bbb00002")
        if how == "cli":
            assert here.ops("sync").exit_code == 0
        else:
            assert schedule.run_job("sync", lock_wait=0) == "ok"
        lines = [line.replace(here.remote.url, "REMOTE") for line in log_lines(here.home, SYNC_LOG)]
        homes.append((here, lines))
    (_, by_hand), (scheduled_home, scheduled) = homes
    assert scheduled == by_hand
    assert by_hand[-1] == (
        "INFO sync: Synced with REMOTE as desk: uploaded 2, downloaded 0; 0 already in step."
    )
    assert "INFO sync: uploaded aaa00001" in " ".join(by_hand)
    finished = log_lines(scheduled_home.home, "taurus_ops.ops.schedule")[-1]
    assert finished.startswith(
        "INFO sync: scheduled run finished: uploaded 2, downloaded 0, 0 conf"
    )


def test_share_and_remote_init_as_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    desk = machine(tmp_path, monkeypatch)
    desk.add("aaa00001")
    ctx = JobContext.load()
    ready = init_remote(ctx, InitRequest())
    assert ready.lines == [f"Remote {desk.remote.url} is ready: not encrypted."]
    assert ready.marker.get("encrypted") is False
    shared = share.run(ctx, share.ShareRequest("aaa00001"))
    assert shared.id == "aaa00001" and not shared.unchanged
    assert shared.url == f"{desk.remote.url}/shared/aaa00001.json"
    assert "shared/aaa00001.json" in desk.remote.raw_objects()
    again = share.run(ctx, share.ShareRequest("aaa00001"))
    assert again.unchanged and again.as_json()["unchanged"] is True
