"""Job contexts for tests that call ``ops.<job>.run`` directly, on any home and folders."""

from __future__ import annotations

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
