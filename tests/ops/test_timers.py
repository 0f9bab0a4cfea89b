"""systemd user timers: cron -> OnCalendar agrees with the scheduler; units pass systemd-analyze."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taurus_ops.ops import schedule, timers

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)

EXPRESSIONS = [
    "30 3 * * *",
    "0 3 * * *",
    "*/15 9-17 * * 1-5",
    "0 0 1 */3 *",
    "@weekly",
    "0 12 * * 0,6",
    "5,6,7,20 1 * * *",
    "*/20 * * * * *",
    "0 4 15 * *",
]


def systemd_next(expression: str, count: int) -> list[datetime]:
    """The next ``count`` elapses systemd computes for an OnCalendar value, in UTC."""
    done = subprocess.run(
        ["systemd-analyze", "calendar", f"--iterations={count}", expression],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", done.stdout)
    return [datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps]


@needs_analyze
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_on_calendar_fires_when_the_scheduler_does(expression: str) -> None:
    value = timers.on_calendar(expression)
    theirs = systemd_next(value, 6)
    assert len(theirs) == 6
    trigger = schedule.make_trigger(expression, UTC)
    moment = theirs[0] - timedelta(seconds=1)  # the same starting point for both
    ours = []
    for _ in range(6):
        moment = trigger.get_next_fire_time(None, moment)
        ours.append(moment)
        moment = moment + timedelta(seconds=1)
    assert [t.replace(microsecond=0) for t in ours] == theirs


def render_into(folder: Path, config, argv: list[str] | None = None) -> list[Path]:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in timers.render(config, argv).items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths


def analyze_verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_analyze
def test_rendered_units_pass_systemd_analyze_verify(taurus_home: Path, tmp_path: Path) -> None:
    from taurus_ops.config import load_config

    (taurus_home).mkdir(parents=True, exist_ok=True)
    (taurus_home / "config.yaml").write_text('schedule:\n  cleanup: "15 2 * * mon-fri"\n')
    config = load_config()
    paths = render_into(tmp_path / "units", config)
    done = analyze_verify(paths)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if "taurus-ops" in line], done.stderr
    timer = (tmp_path / "units" / "taurus-ops-cleanup.timer").read_text()
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 02:15:00" in timer
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
    service = (tmp_path / "units" / "taurus-ops-cleanup.service").read_text()
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    program = exec_line.split("=", 1)[1].split()[0]
    assert os.access(program, os.X_OK)  # the real installed command
    assert f'Environment="TAURUS_HOME={taurus_home}"' in service
    assert "Nice=19" in service and "IOSchedulingClass=idle" in service
    assert "NoNewPrivileges=yes" in service and "@" not in exec_line.split("=", 1)[1]


@needs_analyze
def test_verify_would_catch_a_broken_unit(taurus_home: Path, tmp_path: Path) -> None:
    from taurus_ops.config import load_config

    paths = render_into(tmp_path / "bad", load_config(), ["/nonexistent/bin/taurus-ops"])
    assert analyze_verify(paths).returncode != 0


def test_install_status_uninstall(taurus_home: Path, ops, monkeypatch: pytest.MonkeyPatch) -> None:
    # never enable timers in the real user manager of whoever runs the tests
    monkeypatch.setattr(timers, "systemctl_works", lambda: False)
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user"
    dry = ops("timers", "install", "--dry-run")
    assert dry.exit_code == 0 and "OnCalendar=*-*-* 03:30:00" in dry.output
    assert not folder.exists()
    out = ops("timers", "install")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(timers.UNITS)
    assert "systemctl --user daemon-reload" in out.output
    assert (
        "systemctl --user enable --now taurus-ops-cleanup.timer taurus-ops-backup.timer"
        in out.output
    )
    status = ops("timers", "status")
    assert status.output.count("installed") >= 4
    gone = ops("timers", "uninstall")
    assert gone.exit_code == 0 and "systemctl --user disable --now" in gone.output
    assert list(folder.iterdir()) == []
    assert "No taurus-ops units" in ops("timers", "uninstall").output


def test_timers_carry_the_taurus_home_the_user_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TAURUS_HOME given relative to the current folder: a service (which starts in the
    home folder) must get the same absolute Taurus home, not the bare relative text."""
    from taurus_ops.config import load_config
    from taurus_ops.ops import timers

    work = tmp_path / "work"
    (work / "th").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TAURUS_HOME", "th")
    service = timers.render(load_config(), ["/usr/bin/taurus-ops"])["taurus-ops-backup.service"]
    assert f'Environment="TAURUS_HOME={work / "th"}"' in service
