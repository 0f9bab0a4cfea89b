"""ops.export.run with a JobContext: one session as text or a file, and every session
into a folder, one bad session never stopping the others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.errors import UsageError
from taurus_ops.ops import export
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.export import ExportRequest


def test_one_session_comes_back_as_text_or_goes_to_a_file(
    taurus_home: Path, tmp_path: Path
) -> None:
    ctx = JobContext.load()
    write_session(ctx.store.session_dir, make_document("abc123", first="Find the token secret"))
    shown = export.run(ctx, ExportRequest("abc123", redact=True))
    assert shown.text is not None and "Find the token secret" in shown.text
    assert shown.written is None and shown.redaction is not None and shown.ok
    out = tmp_path / "out"
    out.mkdir()
    written = export.run(ctx, ExportRequest("abc123", format="html", output=out))
    assert written.text is None and written.written == out / "2025-01-18_abc123.html"
    assert written.written.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(UsageError, match="exists"):
        export.run(ctx, ExportRequest("abc123", format="html", output=out))
    with pytest.raises(UsageError, match="refusing to write an export into"):
        export.run(ctx, ExportRequest("abc123", output=ctx.store.session_dir / "x.md"))


def test_every_session_is_exported_and_a_damaged_one_is_noted(
    taurus_home: Path, tmp_path: Path
) -> None:
    ctx = JobContext.load()
    for sid in ("aaa111", "bbb222"):
        write_session(ctx.store.session_dir, make_document(sid))
    (ctx.store.session_dir / "2025-01-18_bad333.json").write_text("{ cut off")
    folder = tmp_path / "exports"
    result = export.run(ctx, ExportRequest(all_sessions=True, output=folder))
    assert result.folder == folder and result.exported == 2
    (failed,) = result.failed
    assert failed.startswith("2025-01-18_bad333.json: ") and result.exit_code == 1
    made = sorted(os.listdir(folder))
    assert made == ["2025-01-18_aaa111.md", "2025-01-18_bbb222.md"]
    assert all(stat.S_IMODE(os.stat(folder / n).st_mode) == 0o600 for n in made)
    with pytest.raises(UsageError, match="2 files already exist"):
        export.run(ctx, ExportRequest(all_sessions=True, output=folder))
    again = export.run(ctx, ExportRequest(all_sessions=True, output=folder, force=True))
    assert again.exported == 2


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ExportRequest(), "give a session REF"),
        (ExportRequest("abc123", all_sessions=True, output=Path("x")), "either REF or --all"),
        (ExportRequest(all_sessions=True), "--all needs -o DIR"),
    ],
)
def test_an_export_asked_for_wrongly_is_refused(
    taurus_home: Path, request_: ExportRequest, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        export.run(JobContext.load(), request_)
