"""Job contexts for tests that call ``ops.<job>.run`` directly, on any home and folders."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taurus_ops.config.effective import Config
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.doctor import DoctorRequest, DoctorResult
from taurus_ops.ops.doctor import run as doctor_run


def context(
    home: Path, session_dir: Path | None = None, archive_dir: Path | None = None
) -> JobContext:
    """The built-in settings for the Taurus home ``home``, with these session and archive
    directories (by default the home's own ``sessions`` and ``archive``)."""
    from taurus_ops.config.settings import Settings

    settings = Settings.model_validate(
        {
            "sessionDirectory": Path(session_dir or home / "sessions"),
            "sessions": {"archiveDirectory": Path(archive_dir or home / "archive")},
        }
    )
    return JobContext.of(Config(settings=settings, home=Path(home)))


def run_doctor(
    home: Path, session_dir: Path, archive_dir: Path | None = None, **request: Any
) -> DoctorResult:
    """``ops.doctor.run`` on these folders with ``DoctorRequest(**request)``."""
    return doctor_run(context(home, session_dir, archive_dir), DoctorRequest(**request))


def write_config(home: Path, text: str) -> None:
    """``home``'s own config.yaml (the home made if missing)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(text)


def aged_session(folder: Path, sid: str, age_days: float, now: datetime | None = None) -> Path:
    """A one-turn session last updated ``age_days`` before ``now`` (its file's mtime too)."""
    from helpers.sessions import make_document, write_session

    created = (now or datetime.now(UTC)) - timedelta(days=age_days)
    doc = make_document(sid, created=created, n_turns=1)
    doc["updated"] = doc["created"]
    path = write_session(folder, doc)
    os.utime(path, (created.timestamp(), created.timestamp()))
    return path


def log_lines(home: Path, logger: str) -> list[str]:
    """``LEVEL message`` for each line ``logger`` wrote to ``home``'s ops log (the time and
    pid left out), with ``home`` written as ``HOME`` so two homes' logs compare."""
    import re

    from taurus_ops.ops.log import log_file

    path = log_file(home)
    if not path.exists():
        return []
    line_re = re.compile(r"^\S+ \S+ (\w+) \[\d+\] (\S+): (.*)$")
    out = []
    for line in path.read_text().splitlines():
        found = line_re.match(line)
        if found and found.group(2) == logger:
            out.append(f"{found.group(1)} {found.group(3)}".replace(str(home), "HOME"))
    return out
