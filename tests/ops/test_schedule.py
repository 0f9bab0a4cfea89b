"""The scheduler: cron settings, the APScheduler daemon as a real process, missed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.jobs import write_config
from helpers.sessions import make_document, write_session

from taurus_ops.config.cron import CronError, parse_cron
from taurus_ops.ops import schedule


# -- cron settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expression",
    ["30 3 * * *", "@daily", "*/15 9-17 * * mon-fri", "0 0 1 */3 *", "*/10 * * * * *", "0 3 * * 7"],
)
def test_valid_cron_accepted(expression: str, taurus_home: Path, ops) -> None:
    write_config(taurus_home, f'schedule:\n  cleanup: "{expression}"\n')
    out = ops("config", "validate")
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "minute value 61 is outside 0-59"),
        ("* * *", "3 fields"),
        ("*/0 * * * *", "step"),
        ("0 3 * * fooday", "day-of-week value 'fooday'"),
        ("0 5-2 * * *", "runs backwards"),
        ("0 3 1 * mon", "both a day of month and a day of week"),
        ("@sometimes", "unknown alias"),
    ],
)
def test_bad_cron_is_one_clear_line(expression: str, why: str, taurus_home: Path, ops) -> None:
    write_config(taurus_home, f'schedule:\n  backup: "{expression}"\n')
    out = ops("list")
    assert out.exit_code == 2
    assert out.output.count("\n") == 1
    assert str(taurus_home / "config.yaml") in out.output
    assert "schedule.backup" in out.output and why in out.output


def test_bad_cron_in_environment(ops, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAURUS_SCHEDULE__CLEANUP", "every night")
    out = ops("schedule", "show")
    assert out.exit_code == 2 and "TAURUS_SCHEDULE__CLEANUP" in out.output


def test_weekdays_follow_cron_not_apscheduler_numbering() -> None:
    # cron: 0 and 7 are Sunday, 1 is Monday (APScheduler 3 alone would read 0 as Monday)
    start = datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday
    for expression, weekday in (("0 3 * * 0", 6), ("0 3 * * 7", 6), ("0 3 * * 1", 0)):
        trigger = schedule.make_trigger(expression, UTC)
        fire = trigger.get_next_fire_time(None, start)
        assert fire.weekday() == weekday and fire.hour == 3
    assert parse_cron("0 3 * * 1-5").values["day_of_week"] == (1, 2, 3, 4, 5)
    with pytest.raises(CronError):
        parse_cron("")


# -- the daemon, as a real process -----------------------------------------------------------------
def seed(store_dir: Path) -> tuple[Path, Path]:
    now = datetime.now(UTC)
    new = write_session(store_dir, make_document("fresh", created=now - timedelta(hours=1)))
    old = write_session(store_dir, make_document("stale", created=now - timedelta(days=90)))
    return new, old


def start_daemon(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taurus_ops.cli", *args, "schedule", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_log(
    home: Path,
    text: str,
    proc: subprocess.Popen[str],
    timeout: float = 30,
    count: int = 1,
    every: float = 0.1,
) -> str:
    log = home / "logs" / "taurus-ops.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text() if log.exists() else ""
        if content.count(text) >= count:
            return content
        if proc.poll() is not None:
            break
        time.sleep(every)
    proc.kill()
    _out, err = proc.communicate()
    raise AssertionError(f"{text!r} never logged; stderr: {err}\nlog: {content}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode


def test_daemon_runs_a_job_then_stops_cleanly(taurus_home: Path, store, ops) -> None:
    new, old = seed(store.session_dir)
    write_config(
        taurus_home,
        "sessions:\n  retentionDays: 30\n"
        'schedule:\n  cleanup: "* * * * * *"\n  backup: "0 0 1 1 *"\n',
    )
    daemon = start_daemon()
    try:
        wait_for_log(taurus_home, "cleanup: scheduled run finished: archived 1", daemon)
        assert not old.exists() and (store.archive_dir / old.name).is_file() and new.exists()
        shown = ops("schedule", "show")
        assert f"running (pid {daemon.pid})" in shown.output
        assert "cleanup  * * * * * *" in shown.output
        second = subprocess.run(
            [sys.executable, "-m", "taurus_ops.cli", "schedule", "run"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1 and "already running" in second.stderr
    finally:
        code = stop(daemon)
    assert code == 0
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert "SIGTERM: stopping" in log and log.rstrip().endswith("scheduler stopped")
    assert (taurus_home / "schedule.sqlite").is_file()
    assert "not running" in ops("schedule", "show").output
    # and Ctrl-C (SIGINT) stops it the same way
    daemon = start_daemon()
    wait_for_log(taurus_home, "scheduler started", daemon, count=2)
    assert stop(daemon, signal.SIGINT) == 0


def test_missed_runs_are_coalesced_into_one(taurus_home: Path, store) -> None:
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    seed(store.session_dir)
    write_config(
        taurus_home,
        'sessions:\n  retentionDays: 30\nschedule:\n  cleanup: "0 * * * *"\n'
        '  backup: "0 0 1 1 *"\n',
    )
    # the job store as a daemon stopped (or a laptop asleep) for over 3 hours leaves it
    now = datetime.now(UTC)
    owner = BackgroundScheduler()
    jobstore = SQLAlchemyJobStore(url=schedule.db_url(taurus_home))
    jobstore.start(owner, "default")
    for kind, expression in (("cleanup", "0 * * * *"), ("backup", "0 0 1 1 *")):
        trigger = schedule.make_trigger(expression, owner.timezone)
        when = (
            now - timedelta(hours=3, minutes=1)
            if kind == "cleanup"
            else trigger.get_next_fire_time(None, now)
        )
        job = Job(
            owner,
            id=kind,
            func=schedule.JOB_FUNC,
            trigger=trigger,
            executor="default",
            args=(),
            kwargs=schedule.job_kwargs(kind, None, None),
            name=f"taurus-ops {kind}",
            misfire_grace_time=None,
            coalesce=False,  # the daemon re-adds its jobs with coalescing on
            max_instances=3,
            next_run_time=when,
        )
        jobstore.add_job(job)
    jobstore.shutdown()
    daemon = start_daemon()
    try:
        log = wait_for_log(taurus_home, "cleanup: scheduled run finished", daemon)
        time.sleep(1.5)  # room for any further (wrong) catch-up runs
        log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    finally:
        assert stop(daemon) == 0
    assert "runs missed while the scheduler was not running; running once now" in log
    assert log.count("cleanup: scheduled run starting") == 1
    assert "backup: scheduled run starting" not in log
    assert len(store.files(archived=True)) == 1


def test_job_waits_for_the_ops_lock_then_gives_up(taurus_home: Path, store) -> None:
    from taurus_ops.store.lock import OpsLock

    seed(store.session_dir)
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    with OpsLock(taurus_home):
        assert schedule.run_job("cleanup", lock_wait=0.3) == "skipped"
    assert len(store.files()) == 2
    assert schedule.run_job("cleanup", lock_wait=0) == "ok"
    assert len(store.files()) == 1
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert "cleanup: skipped: another maintenance job" in log


def test_schedule_show_lists_next_runs(taurus_home: Path, ops) -> None:
    write_config(taurus_home, 'schedule:\n  cleanup: "15 4 * * *"\n')
    out = ops("schedule", "show")
    assert out.exit_code == 0
    assert "cleanup  15 4 * * *" in out.output and "backup   0 3 * * *" in out.output
    assert "04:15:00" in out.output or ":15:00" in out.output

    data = json.loads(ops("schedule", "show", "--json").output)
    assert data["daemonPid"] is None
    assert [j["onCalendar"] for j in data["jobs"]] == ["*-*-* 04:15:00", "*-*-* 03:00:00"]


def test_sigterm_lets_the_running_job_finish(taurus_home: Path, store) -> None:
    from taurus_ops.ops.backup.verify import verify_archive

    doc = make_document("big")
    doc["messages"].append({"role": "user", "content": os.urandom(12_000_000).hex()})
    write_session(store.session_dir, doc)  # about 24 MB: the backup takes a while
    write_config(taurus_home, 'schedule:\n  backup: "* * * * * *"\n  cleanup: "0 0 1 1 *"\n')
    daemon = start_daemon()
    try:
        # looked for often: the signal must come while the backup (about a second) runs
        wait_for_log(taurus_home, "backup: scheduled run starting", daemon, every=0.005)
    finally:
        code = stop(daemon)  # SIGTERM while the backup is being written
    assert code == 0
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    signalled = log.index("SIGTERM: stopping")
    finished = log.index("backup: scheduled run finished")
    assert signalled < finished < log.index("scheduler stopped")
    assert log.count("backup: scheduled run starting") == 1  # no new job after the signal
    backups = list((taurus_home / "backups").glob("taurus-sessions-backup-*.tar.gz"))
    assert len(backups) == 1 and verify_archive(backups[0]).ok


def test_a_scheduled_backup_logs_what_it_left_out(home: Path) -> None:
    from taurus_ops.ops import schedule

    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("one1"))
    os.symlink("/etc/hostname", sessions / "elsewhere.json")
    assert schedule.run_job("backup", lock_wait=0) == "ok"
    log = (home / ".taurus" / "logs" / "taurus-ops.log").read_text()
    assert "skipped link" in log and "elsewhere.json" in log
