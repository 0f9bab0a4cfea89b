"""ops.schedule.status (``schedule show``) and the scheduler's job runner, without a daemon."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers.jobs import log_lines, write_config

from taurus_ops.ops import schedule
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.schedule import DaemonLock, JobInfo

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_status_names_each_job_and_the_running_scheduler(taurus_home: Path) -> None:
    write_config(taurus_home, 'schedule:\n  cleanup: "15 4 * * *"\n')
    ctx = JobContext.load()
    idle = schedule.status(ctx)
    assert idle.daemon_pid is None
    assert [(j.kind, j.expression) for j in idle.jobs] == [
        ("cleanup", "15 4 * * *"),
        ("backup", "0 3 * * *"),
    ]
    assert [j["onCalendar"] for j in idle.as_json()["jobs"]] == ["*-*-* 04:15:00", "*-*-* 03:00:00"]
    with DaemonLock(taurus_home):
        assert schedule.status(ctx).daemon_pid == os.getpid()


def test_a_saved_run_before_the_next_is_overdue() -> None:
    hour = timedelta(hours=1)
    assert JobInfo("cleanup", "0 * * * *", NOW, NOW - hour).overdue
    assert not JobInfo("cleanup", "0 * * * *", NOW, NOW).overdue
    assert not JobInfo("cleanup", "0 * * * *", NOW, None).overdue
    assert not JobInfo("cleanup", "0 * * * *", None, NOW - hour).overdue


def test_an_unknown_job_is_logged_and_never_raised(taurus_home: Path) -> None:
    assert schedule.run_job("vacuum", lock_wait=0) == "error"
    assert log_lines(taurus_home, "taurus_ops.ops.schedule") == [
        "INFO vacuum: scheduled run starting",
        "ERROR vacuum: failed: unknown job 'vacuum'",
    ]
