"""Review findings in retention, archive and backup: each test pins one fixed bug."""

from __future__ import annotations

import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user = tmp_path / "user-home"
    monkeypatch.setenv("TAURUS_HOME", str(user / ".taurus"))
    return user


@pytest.mark.parametrize("archive", ["~/.taurus/sessions", "~/.taurus/sessions/old"])
def test_backup_with_archive_in_the_session_directory(
    archive: str, home: Path, ops, tmp_path: Path
) -> None:
    """An archive folder equal to or inside the session folder is backed up once, not twice."""
    taurus = home / ".taurus"
    base = datetime(2025, 1, 18, 10, 0, tzinfo=UTC)
    write_session(taurus / "sessions", make_document("keep1", created=base))
    write_session(taurus / "sessions" / "old", make_document("old1", created=base))
    (taurus / "config.yaml").write_text(f"sessions:\n  archiveDirectory: {archive}\n")
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    (made,) = (taurus / "backups").glob("taurus-sessions-backup-*.tar.gz")
    with tarfile.open(made) as tar:
        names = tar.getnames()
    assert len(names) == len(set(names)), names
    assert ".taurus/sessions/2025-01-18_keep1.json" in names
    assert ".taurus/sessions/old/2025-01-18_old1.json" in names
    assert ops("backup", "verify", str(made)).exit_code == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["tar", "-xzf", str(made), "-C", str(plain)], check=True)
    assert (plain / ".taurus/sessions/old/2025-01-18_old1.json").is_file()
