"""The backup jobs' entry points: one ``run`` each, shared by the command line and the
scheduler; dry runs that change nothing; the ops lock they take."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.errors import OpsLocked
from taurus_ops.ops.backup import create, rotate
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.lock import ops_lock

STAMPS = [datetime(2025, 1, d, 3, 0, tzinfo=UTC) for d in (1, 2, 3, 4)]


@pytest.fixture
def ctx(taurus_home: Path, store) -> JobContext:
    from taurus_ops.config import load_config

    write_session(store.session_dir, make_document("jobs0001"))
    taurus_home.joinpath("config.yaml").write_text("backup:\n  keep: 2\n")
    return JobContext.of(load_config())


def backups(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "backups").glob("taurus-sessions-backup-*.tar.gz"))


def _taurus_ops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_the_ops_lock_is_held_on_by_its_own_thread_only(taurus_home: Path) -> None:
    """A job run inside a scheduled run that holds the lock keeps holding it; nobody else
    (another thread, another process) gets it until the outer holder lets go."""
    taurus_home.mkdir(mode=0o700)
    refused: list[BaseException] = []

    def other_thread() -> None:
        try:
            with ops_lock(taurus_home):
                pass
        except OpsLocked as exc:
            refused.append(exc)

    with ops_lock(taurus_home) as outer:
        with ops_lock(taurus_home) as inner:
            assert inner is outer
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(refused) == 1
        busy = _taurus_ops("backup", "rotate")
        assert busy.returncode == 1 and "another maintenance job" in busy.stderr
    assert _taurus_ops("backup", "rotate").returncode == 0


def test_create_dry_run_names_what_a_real_run_removes(ctx: JobContext) -> None:
    for stamp in STAMPS[:3]:
        create.run(ctx, create.CreateRequest(now=stamp))
    before = backups(ctx.home)
    assert len(before) == 2  # keep: 2
    dry = create.run(ctx, create.CreateRequest(now=STAMPS[3], dry_run=True))
    assert backups(ctx.home) == before  # nothing written, nothing removed
    assert dry.created is None and dry.as_json()["dryRun"] is True
    assert [p.name for p in dry.removed] == [before[0]]  # the oldest of the two
    real = create.run(ctx, create.CreateRequest(now=STAMPS[3]))
    assert [p.name for p in real.removed] == [p.name for p in dry.removed]
    assert real.path.name == dry.path.name
    log = (ctx.home / "logs" / "taurus-ops.log").read_text()
    assert "backup: dry run: would write" in log and "backup: wrote" in log


def test_create_dry_run_makes_no_folder(taurus_home: Path, store, ops) -> None:
    write_session(store.session_dir, make_document("jobs0002"))
    out = ops("backup", "create", "--dry-run")
    assert out.exit_code == 0, out.output
    assert "Would back up 1 file to" in out.output
    assert not (taurus_home / "backups").exists()


def test_rotate_after_lowering_keep(ctx: JobContext, ops) -> None:
    for stamp in STAMPS[:2]:
        create.run(ctx, create.CreateRequest(now=stamp))
    (ctx.home / "backups" / "before-refactor-20250101.json").write_text("{}")
    kept = backups(ctx.home)
    ctx.home.joinpath("config.yaml").write_text("backup:\n  keep: 1\n")
    dry = ops("backup", "rotate", "--dry-run")
    assert dry.exit_code == 0 and f"Would remove old backup {kept[0]}" in dry.output
    assert backups(ctx.home) == kept
    out = ops("backup", "rotate", "--json")
    assert out.exit_code == 0, out.output
    assert [Path(p).name for p in json.loads(out.output)["removed"]] == [kept[0]]
    assert backups(ctx.home) == [kept[1]]
    assert (ctx.home / "backups" / "before-refactor-20250101.json").exists()
    again = ops("backup", "rotate")
    assert "Nothing to remove" in again.output


def test_the_scheduler_runs_the_same_job(ctx: JobContext) -> None:
    """The scheduled run holds the ops lock and calls create.run, which rotates and logs."""
    from taurus_ops.ops import schedule

    for stamp in STAMPS[:2]:
        create.run(ctx, create.CreateRequest(now=stamp))
    old = backups(ctx.home)
    assert schedule.run_job("backup", lock_wait=0) == "ok"
    now = backups(ctx.home)
    assert len(now) == 2 and old[0] not in now and old[1] in now
    log = (ctx.home / "logs" / "taurus-ops.log").read_text()
    assert f"backup: removed old backup {ctx.home / 'backups' / old[0]}" in log
    assert "backup: scheduled run finished: wrote" in log


def test_rotate_counts_only_backups_of_the_same_folders(ctx: JobContext) -> None:
    """A backup of other folders (another scope in its gzip header) is never rotated away;
    one without a scope (older Taurus, a plain tar.gz) counts with any scope."""
    import gzip

    folder = ctx.home / "backups"
    create.run(ctx, create.CreateRequest(now=STAMPS[0]))
    others = folder / "taurus-sessions-backup-20240101-030000.tar.gz"
    with (
        open(others, "wb") as raw,
        gzip.GzipFile("taurus-backup-scope-0123456789abcdef", "wb", fileobj=raw) as gz,
    ):
        gz.write(b"\0" * 1024)
    plain = folder / "taurus-sessions-backup-20240102-030000.tar.gz"
    subprocess.run(["tar", "-czf", str(plain), "-C", str(ctx.home), "sessions"], check=True)
    assert rotate.run(ctx, rotate.RotateRequest(dry_run=True)).removed == []  # 2 of keep 2
    ctx.home.joinpath("config.yaml").write_text("backup:\n  keep: 1\n")
    from taurus_ops.config import load_config

    result = rotate.run(JobContext.of(load_config()), rotate.RotateRequest())
    assert result.removed == [plain]
    assert others.exists()
