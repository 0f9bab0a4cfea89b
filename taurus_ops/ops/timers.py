"""systemd user timers: the other way to run the nightly jobs.

``taurus-ops timers install`` renders ``systemd/*.service|*.timer`` with the real
path of the installed ``taurus-ops`` and the cron settings (as ``OnCalendar=``)
into ``~/.config/systemd/user/``, then reloads and enables the timers where
``systemctl --user`` works, and otherwise prints the exact commands to run.
The services take the same ops lock as the APScheduler daemon, so running both
never overlaps two jobs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.config.cron import WEEKDAYS, parse_cron
from taurus_ops.config.paths import HOME_ENV, taurus_home

JOBS = ("cleanup", "backup")
OPTIONAL_JOBS = ("sync",)  # installed only when its schedule is set (schedule.sync)
TIMERS = [f"taurus-ops-{job}.timer" for job in JOBS]
UNITS = [f"taurus-ops-{job}.{kind}" for job in JOBS for kind in ("service", "timer")]
ALL_TIMERS = [f"taurus-ops-{job}.timer" for job in (*JOBS, *OPTIONAL_JOBS)]
ALL_UNITS = [
    f"taurus-ops-{job}.{kind}" for job in (*JOBS, *OPTIONAL_JOBS) for kind in ("service", "timer")
]


def jobs_for(config: Any) -> list[str]:
    """The jobs with a schedule: cleanup and backup, and sync when schedule.sync is set."""
    return [*JOBS, *(j for j in OPTIONAL_JOBS if getattr(config.settings.schedule, j, None))]


def template_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "systemd"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


# -- cron -> OnCalendar -------------------------------------------------------------------------
def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _component(values: tuple[int, ...], star: bool, width: int = 2) -> str:
    if star:
        return "*"
    parts = []
    for a, b in _runs(values):
        if a == b:
            parts.append(f"{a:0{width}d}")
        elif b == a + 1:
            parts.append(f"{a:0{width}d},{b:0{width}d}")
        else:
            parts.append(f"{a:0{width}d}..{b:0{width}d}")
    return ",".join(parts)


def on_calendar(expression: str) -> str:
    """The systemd ``OnCalendar=`` value for one of our cron expressions."""
    cron = parse_cron(expression)
    v = cron.values
    dow = ""
    if not cron.is_star("day_of_week"):
        names = [WEEKDAYS[d].capitalize() for d in v["day_of_week"]]
        dow = ",".join(names) + " "
    date = (
        f"*-{_component(v['month'], cron.is_star('month'))}-"
        f"{_component(v['day'], cron.is_star('day'))}"
    )
    time = ":".join(
        _component(v[name], cron.is_star(name)) for name in ("hour", "minute", "second")
    )
    return f"{dow}{date} {time}"


# -- rendering ----------------------------------------------------------------------------------
def find_executable() -> list[str]:
    """The command that runs taurus-ops: the installed script, else this Python with -m."""
    found = shutil.which("taurus-ops")
    if found:
        return [os.path.realpath(found)]
    return [os.path.realpath(sys.executable), "-m", "taurus_ops.cli.main"]


def _exec_line(argv: list[str]) -> str:
    out = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        out.append(f'"{arg}"' if any(c.isspace() for c in arg) or '"' in arg else arg)
    return " ".join(out)


def render(config: Any, argv: list[str] | None = None) -> dict[str, str]:
    """Unit name -> text, ready to install."""
    argv = argv or find_executable()
    env_lines = []
    if os.environ.get(HOME_ENV):
        # absolute: a service starts in the home folder, not where this was run
        home = taurus_home()
        env_lines.append(f'Environment="{HOME_ENV}={home}"'.replace("%", "%%"))
    out = {}
    for unit in (
        f"taurus-ops-{j}.{kind}" for j in jobs_for(config) for kind in ("service", "timer")
    ):
        job = unit.split("-")[2].split(".")[0]
        expression = getattr(config.settings.schedule, job)
        text = (template_dir() / unit).read_text(encoding="utf-8")
        text = (
            text.replace("@EXEC@", _exec_line(argv))
            .replace("@ENVIRONMENT@\n", "".join(line + "\n" for line in env_lines))
            .replace("@ON_CALENDAR@", on_calendar(expression))
            .replace("@CRON@", expression.replace("%", "%%"))
        )
        out[unit] = text
    return out


# -- systemctl --------------------------------------------------------------------------------------
def systemctl_works() -> bool:
    if shutil.which("systemctl") is None:
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class TimerResult:
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    to_run: list[str] = field(default_factory=list)  # commands the user should run
    errors: list[str] = field(default_factory=list)


def _run(commands: list[list[str]], result: TimerResult) -> None:
    for cmd in commands:
        text = shlex.join(cmd)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            result.errors.append(f"{text}: {exc}")
            result.to_run.append(text)
            continue
        if done.returncode == 0:
            result.ran.append(text)
        else:
            last = (done.stderr or done.stdout).strip().splitlines()
            result.errors.append(f"{text}: {last[-1] if last else done.returncode}")
            result.to_run.append(text)


def install(config: Any, enable: bool = True, folder: Path | None = None) -> TimerResult:
    """Write the four units, then reload and enable the timers (or say how)."""
    from taurus_ops.store.atomic import atomic_write

    folder = folder or unit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    result = TimerResult()
    for name, text in render(config).items():
        path = folder / name
        atomic_write(path, text.encode("utf-8"), mode=0o644)
        result.written.append(path)
    commands = [["systemctl", "--user", "daemon-reload"]]
    if enable:
        timers = [f"taurus-ops-{job}.timer" for job in jobs_for(config)]
        commands.append(["systemctl", "--user", "enable", "--now", *timers])
    if systemctl_works():
        _run(commands, result)
    else:
        result.to_run = [shlex.join(c) for c in commands]
    return result


def uninstall(folder: Path | None = None) -> TimerResult:
    folder = folder or unit_dir()
    result = TimerResult()
    works = systemctl_works()
    present = [folder / name for name in ALL_UNITS if (folder / name).exists()]
    timers = [p.name for p in present if p.name.endswith(".timer")]
    disable = ["systemctl", "--user", "disable", "--now", *timers]
    if works and present:
        _run([disable], result)
    elif present:
        result.to_run.append(shlex.join(disable))
    for path in present:
        path.unlink()
        result.removed.append(path)
    reload = ["systemctl", "--user", "daemon-reload"]
    if works:
        _run([reload], result)
    else:
        result.to_run.append(shlex.join(reload))
    return result


def status(folder: Path | None = None) -> dict[str, Any]:
    """Which units are installed, and what systemd says of the timers when it can."""
    folder = folder or unit_dir()
    info: dict[str, Any] = {
        "folder": str(folder),
        "installed": {
            name: (folder / name).exists()
            for name in ALL_UNITS
            if name in UNITS or (folder / name).exists()
        },
        "systemd": None,
    }
    if systemctl_works():
        done = subprocess.run(
            ["systemctl", "--user", "list-timers", "--all", "--no-pager", *ALL_TIMERS],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["systemd"] = done.stdout.strip()
    return info
