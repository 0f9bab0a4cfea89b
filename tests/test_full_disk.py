"""On a real full file system (a small tmpfs), a command reports success only for what it
actually wrote: one clear line and a non-zero exit otherwise, and nothing half-written
left behind. Needs root to mount; skipped elsewhere."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.mounts import mount_tmpfs
from helpers.sessions import make_document, write_session


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    mount_tmpfs(mount, "size=256k,mode=0700")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def fill(mount: Path) -> Path:
    """Fill the file system to the last byte; returns the filler file."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def grow(mount: Path, size: str) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(mount)], check=True, capture_output=True
    )


@pytest.fixture
def layout(tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Taurus home (index, logs, cache) on the small file system; sessions elsewhere."""
    home = small_fs / "home"
    home.mkdir(mode=0o700)
    sessions = tmp_path / "sessions"
    (home / "config.yaml").write_text(
        f"sessionDirectory: {sessions}\nsessions:\n  archiveDirectory: {tmp_path / 'archive'}\n"
    )
    monkeypatch.setenv("TAURUS_HOME", str(home))
    for n in range(33):
        doc = make_document(f"s{n:02d}")
        doc["messages"].append({"role": "user", "content": os.urandom(6000).hex()})
        write_session(sessions, doc)
    return home


def run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr
    return done


def _one_line_error(done: subprocess.CompletedProcess, words: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], done.stderr


def _indexed(home: Path) -> int:
    conn = sqlite3.connect(f"file:{home / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    finally:
        conn.close()


def test_index_rebuild_on_a_full_disk_says_so(layout: Path, small_fs: Path) -> None:
    fill(small_fs)  # not even an empty database fits
    done = run("index", "rebuild")
    _one_line_error(done, "could not write the index")
    assert "Rebuilt" not in done.stdout
    # readers still answer, from the files (the index is only a cache)
    found = run("search", "-l", "login")
    assert found.returncode == 0 and len(found.stdout.splitlines()) == 33
    assert "Total sessions: 33" in run("stats").stdout


def test_index_rebuild_that_runs_out_of_room_midway_says_so(layout: Path, small_fs: Path) -> None:
    done = run("index", "rebuild")  # 33 sessions of 12 KB of text do not fit in 256 KB
    _one_line_error(done, "disk is full")
    assert "Rebuilt" not in done.stdout
    grow(small_fs, "8m")
    done = run("index", "rebuild")
    assert done.returncode == 0, done.stderr
    assert "33 sessions" in done.stdout
    assert _indexed(layout) == 33  # what it reported is what is on disk


def test_export_on_a_full_disk_claims_nothing(layout: Path, small_fs: Path) -> None:
    fill(small_fs)
    target = small_fs / "share.md"
    done = run("export", "s00", "-o", str(target))
    _one_line_error(done, f"could not write {target}")
    assert "Exported" not in done.stderr
    folder = small_fs / "exports"
    done = run("export", "--all", "-o", str(folder))
    assert done.returncode == 1
    assert "Exported 0 sessions" in done.stderr and "No space left on device" in done.stderr
    assert "not tried (no room left)" in done.stderr
    left = sorted(p.name for p in small_fs.rglob("*") if p.is_file())
    assert not [n for n in left if n.endswith(".md") or ".tmp-" in n], left  # nothing partial


def test_template_new_on_a_full_disk_creates_nothing(layout: Path, small_fs: Path) -> None:
    fill(small_fs)
    folder = small_fs / "project-sessions"
    done = run("--session-dir", str(folder), "template", "new", "debugging", "--var", "problem=x")
    _one_line_error(done, "No space left on device")
    assert done.stdout == ""  # no id printed: no session was made
    assert not folder.exists() or not list(folder.iterdir())  # no session, no temporary file


def test_cleanup_says_when_its_log_could_not_be_written(layout: Path, small_fs: Path) -> None:
    (layout / "config.yaml").write_text(
        (layout / "config.yaml").read_text() + "  maxSessions: 30\n"
    )
    (layout / "logs").mkdir(mode=0o700)
    fill(small_fs)
    done = run("cleanup")
    assert done.returncode == 0, done.stderr
    assert "Archived 3," in done.stdout  # what it did, it did (the sessions are elsewhere)
    warnings = [line for line in done.stderr.splitlines() if "ops log" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], done.stderr
    assert len(list((layout.parent.parent / "archive").glob("*.json"))) == 3
