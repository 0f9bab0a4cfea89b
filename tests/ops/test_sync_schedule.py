"""schedule.sync: the daemon's sync job and the taurus-ops-sync timer, off until set."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.machines import Machine, make_remote

from taurus_ops.ops import schedule, timers


def configure(machine: Machine, cron: str | None) -> None:
    text = (machine.home / "config.yaml").read_text()
    if cron:
        text += f'schedule:\n  sync: "{cron}"\n'
    (machine.home / "config.yaml").write_text(text)


def load(machine: Machine):  # type: ignore[no-untyped-def]
    import os

    from taurus_ops.config import load_config

    os.environ["TAURUS_HOME"] = str(machine.home)
    return load_config()


def test_the_scheduled_sync_job_syncs_and_logs_what_moved(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    configure(desk, "*/30 * * * *")
    desk.add("sched001")
    desk.add("sched002")
    load(desk)
    assert schedule.run_job("sync", lock_wait=0) == "ok"
    log = (desk.home / "logs" / "taurus-ops.log").read_text()
    assert "sync: uploaded sched001" in log and "sync: uploaded sched002" in log
    assert "sync: scheduled run finished: uploaded 2, downloaded 0" in log
    assert sorted(p.name for p in (remote.folder / "sessions").iterdir()) == [
        "sched001.json",
        "sched002.json",
    ]
    remote.folder.rename(tmp_path / "gone")  # the remote unmounted: logged, never raised
    assert schedule.run_job("sync", lock_wait=0) == "error"
    assert "does not exist (is it mounted?)" in (desk.home / "logs" / "taurus-ops.log").read_text()


def test_the_daemon_has_a_sync_job_only_when_it_is_scheduled(tmp_path: Path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    config = load(desk)
    assert [j.kind for j in schedule.describe(config)] == ["cleanup", "backup"]
    scheduler, _ = schedule.build_scheduler(config, scheduler_cls=BackgroundScheduler)
    assert sorted(j.id for j in scheduler.get_jobs()) == ["backup", "cleanup"]
    configure(desk, "15 * * * *")
    config = load(desk)
    scheduler, _ = schedule.build_scheduler(config, scheduler_cls=BackgroundScheduler)
    assert sorted(j.id for j in scheduler.get_jobs()) == ["backup", "cleanup", "sync"]
    assert [j.expression for j in schedule.describe(config) if j.kind == "sync"] == ["15 * * * *"]


def test_timers_install_a_sync_timer_when_it_is_scheduled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    assert sorted(timers.render(load(desk))) == sorted(timers.UNITS)
    configure(desk, "*/20 8-18 * * mon-fri")
    units = timers.render(load(desk))
    assert "taurus-ops-sync.timer" in units and "taurus-ops-sync.service" in units
    assert (
        "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 08..18:00,20,40:00" in units["taurus-ops-sync.timer"]
    )
    assert " sync --wait 1800" in units["taurus-ops-sync.service"]
    monkeypatch.setattr(timers, "systemctl_works", lambda: False)
    folder = tmp_path / "units"
    result = timers.install(load(desk), folder=folder)
    assert any("taurus-ops-sync.timer" in cmd for cmd in result.to_run)
    assert (folder / "taurus-ops-sync.timer").exists()
    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", *(str(folder / n) for n in units)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    gone = timers.uninstall(folder=folder)
    assert {p.name for p in gone.removed} == set(units)
