"""ops.archive.run: archive and unarchive by hand, each session on its own, under the
ops lock, every move logged."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.jobs import aged_session, log_lines

from taurus_ops.errors import OpsLocked, SessionNotFound, UsageError
from taurus_ops.ops import archive
from taurus_ops.ops.archive import ArchiveRequest, Moved, NotMoved
from taurus_ops.ops.context import JobContext
from taurus_ops.store.lock import OpsLock


def test_each_session_asked_for_moves_and_one_that_cannot_is_noted(taurus_home: Path) -> None:
    ctx = JobContext.load()
    a = aged_session(ctx.store.session_dir, "aaa111", 1)
    b = aged_session(ctx.store.session_dir, "bbb222", 1)
    result = archive.run(ctx, ArchiveRequest(("aaa111", "nosuch", "bbb222")))
    assert [type(item) for item in result.items] == [Moved, NotMoved, Moved]  # as asked
    assert [(m.old, m.new) for m in result.moved] == [
        (a, taurus_home / "archive" / a.name),
        (b, taurus_home / "archive" / b.name),
    ]
    assert not a.exists() and not b.exists()
    (missing,) = result.failed
    assert missing.ref == "nosuch" and isinstance(missing.error, SessionNotFound)
    assert not result.ok and result.exit_code == 1
    assert result.as_json()["failed"] == [{"ref": "nosuch", "why": str(missing.error)}]
    assert log_lines(taurus_home, "taurus_ops.ops.cleanup") == [
        f"INFO archive: HOME/sessions/{a.name} -> HOME/archive/{a.name}",
        f"INFO archive: HOME/sessions/{b.name} -> HOME/archive/{b.name}",
    ]
    back = archive.run(ctx, ArchiveRequest(("aaa111",), unarchive=True))
    assert back.ok and a.exists()
    again = archive.run(ctx, ArchiveRequest(("aaa111",), unarchive=True))
    (refused,) = again.failed
    assert isinstance(refused.error, UsageError) and "is not archived" in str(refused.error)


def test_nothing_moves_while_another_maintenance_job_runs(taurus_home: Path) -> None:
    ctx = JobContext.load()
    a = aged_session(ctx.store.session_dir, "aaa111", 1)
    with OpsLock(taurus_home), pytest.raises(OpsLocked):
        archive.run(ctx, ArchiveRequest(("aaa111",)))
    assert a.exists()
