"""ops.doctor.run with a JobContext: which sessions it checks, when it locks, the
settings it falls back to, and the warnings the report leads with."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.jobs import aged_session, write_config
from helpers.sessions import make_document, write_session

from taurus_ops.errors import ConfigError, OpsLocked, UsageError
from taurus_ops.ops import doctor
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.doctor import DoctorRequest
from taurus_ops.store.lock import OpsLock


def damaged(folder: Path, sid: str) -> tuple[Path, bytes]:
    path = write_session(folder, make_document(sid))
    raw = path.read_bytes()[:-40]  # cut off mid-write
    path.write_bytes(raw)
    return path, raw


def test_refs_choose_the_sessions_checked_and_an_unknown_one_is_a_usage_error(
    taurus_home: Path,
) -> None:
    ctx = JobContext.load()
    write_session(ctx.store.session_dir, make_document("aaa111"))
    damaged(ctx.store.session_dir, "bbb222")
    assert doctor.run(ctx, DoctorRequest()).scan.checked == 2
    only = doctor.run(ctx, DoctorRequest(refs=("aaa111",)))
    assert only.scan.checked == 1 and only.exit_code == 0
    with pytest.raises(UsageError, match="nosuch"):
        doctor.run(ctx, DoctorRequest(refs=("nosuch",)))


def test_only_a_real_fix_takes_the_ops_lock(taurus_home: Path) -> None:
    ctx = JobContext.load()
    path, raw = damaged(ctx.store.session_dir, "bbb222")
    with OpsLock(taurus_home):
        assert doctor.run(ctx, DoctorRequest()).exit_code == 1  # a scan needs no lock
        planned = doctor.run(ctx, DoctorRequest(fix=True, dry_run=True))
        assert planned.plan is not None and planned.plan.actions
        with pytest.raises(OpsLocked):
            doctor.run(ctx, DoctorRequest(fix=True))
    assert path.read_bytes() == raw  # neither the plan nor the refused fix changed it
    fixed = doctor.run(ctx, DoctorRequest(fix=True))
    assert fixed.exit_code == 0 and fixed.quarantine is not None and path.read_bytes() != raw


def test_a_broken_config_falls_back_to_the_built_in_settings(tmp_path: Path) -> None:
    sessions = tmp_path / "elsewhere"
    write_session(sessions, make_document("aaa111"))
    ctx, note = doctor.fallback_context(sessions, ConfigError("/x/config.yaml", ["bad"]))
    assert ctx.config.session_dir == sessions and ctx.config.files == []
    assert "/x/config.yaml" in note and "default settings" in note
    report = doctor.run(ctx, DoctorRequest(notes=(note,)))
    assert report.scan.checked == 1 and report.warnings == [note]
    assert report.as_json()["warnings"] == [note]


def test_a_cleanup_about_to_remove_sessions_leads_the_report(taurus_home: Path) -> None:
    write_config(taurus_home, "sessions:\n  retentionDays: 30\n")
    ctx = JobContext.load()
    aged_session(ctx.store.session_dir, "fresh001", 0.1)
    aged_session(ctx.store.session_dir, "stale002", 90)
    (warning,) = doctor.run(ctx, DoctorRequest()).warnings
    assert warning.startswith("sessions.retentionDays=30 will archive 1 session")
