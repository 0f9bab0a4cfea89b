"""A build of an empty index runs with a rollback journal (its pages written once) and
leaves the index in WAL mode; with another connection open it stays in WAL; and a build
killed at any moment (a real process, SIGKILL) rolls back to an index that the next
refresh fills with exactly the sessions there are."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.sessions import make_document

from taurus_ops.store.index import Index, build, bulk

COUNT = bulk.BULK_FROM + 64


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A Taurus home and a session folder of ``COUNT`` sessions, one in 8 about walruses."""
    home, sessions = tmp_path / "home", tmp_path / "sessions"
    home.mkdir()
    sessions.mkdir()
    rng = random.Random(7)
    for n in range(COUNT):
        first = "walrus tusks" if n % 8 == 0 else "Help me debug the login issue"
        doc = make_document(f"s{n:04d}", n_turns=rng.randint(2, 12), rng=rng, first=first)
        (sessions / f"s{n:04d}.json").write_bytes(json.dumps(doc).encode())
    return home, sessions


def modes_at_apply(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The journal mode each folder's rows are written in, as they are."""
    seen: list[str] = []
    apply = build.apply

    def spy(conn: sqlite3.Connection, *args: object, **kwargs: object) -> None:
        seen.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
        apply(conn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(build, "apply", spy)
    return seen


def expected(sessions: Path) -> tuple[set[str], set[str]]:
    every = {p.stem for p in sessions.glob("*.json")}
    walrus = {f"s{n:04d}" for n in range(COUNT) if n % 8 == 0 and f"s{n:04d}" in every}
    return every, walrus


def check_whole(index: Index, sessions: Path) -> None:
    every, walrus = expected(sessions)
    assert {row.id for row in index.rows()} == every
    assert {row.id for row in index.rows() if row.key in index.term_keys("walrus")} == walrus
    conn = index.connect()
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO words(words) VALUES ('integrity-check')")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_empty_index_is_built_with_a_rollback_journal_and_left_in_wal(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, sessions = folders
    seen = modes_at_apply(monkeypatch)
    with Index.for_dirs(home, sessions) as index:
        index.refresh()
        check_whole(index, sessions)
    assert seen == ["delete"]
    logout = 0
    for n in range(bulk.BULK_FROM + 1):  # as many changed again: the index is not empty now
        path = sessions / f"s{n:04d}.json"
        new = path.with_suffix(".tmp")
        new.write_bytes(path.read_bytes().replace(b"login", b"logout"))
        logout += b"logout" in new.read_bytes()
        new.replace(path)  # as a save does: the folder changes
    with Index.for_dirs(home, sessions) as index:
        index.refresh()
        check_whole(index, sessions)
        assert len(index.term_keys("logout")) == logout > bulk.BULK_FROM // 2
    assert seen == ["delete", "wal"]


def test_a_build_with_another_connection_open_stays_in_wal(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, sessions = folders
    seen = modes_at_apply(monkeypatch)
    with Index.for_dirs(home, sessions) as index:
        index.connect()  # the empty index, which another process now reads
        other = sqlite3.connect(index.path, isolation_level=None)
        try:
            assert other.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
            index.refresh()
            assert other.execute("SELECT count(*) FROM sessions").fetchone() == (COUNT,)
        finally:
            other.close()
        check_whole(index, sessions)
    assert seen == ["wal"]


def test_an_index_left_in_rollback_mode_is_put_back_in_wal_when_opened(
    folders: tuple[Path, Path],
) -> None:
    home, sessions = folders
    with Index.for_dirs(home, sessions) as index:
        index.refresh()
        path = index.path
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    conn.close()
    with Index.for_dirs(home, sessions) as index:
        check_whole(index, sessions)


DELAYS = [0.0, 0.0, 0.005, 0.02]  # seconds from the journal's start to the kill (then random)
BUILDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taurus_ops.store.index import Index
    with Index.for_dirs(Path(sys.argv[1]), Path(sys.argv[2])) as index:
        index.refresh()
    print("built", flush=True)
    """
)


def test_a_build_killed_at_any_moment_rolls_back_and_the_next_refresh_fills_it(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """Killed while its rows go in (the rollback journal is there) or a moment after,
    the build leaves an index that opens clean, holds none of the half-written rows,
    and is filled whole by the next refresh; sessions removed meanwhile are not in it."""
    home, sessions = folders
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    journal = home / "index.sqlite-journal"
    rng = random.Random(11)
    killed_mid_build = 0
    for round_ in range(6):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{home / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, str(script), str(home), str(sessions)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the workers die with the builder
        )
        deadline = time.monotonic() + 60
        while not journal.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(DELAYS[round_] if round_ < len(DELAYS) else rng.uniform(0, 0.1))
        with contextlib.suppress(ProcessLookupError):  # (unless it was done already)
            os.killpg(proc.pid, signal.SIGSTOP)  # held still: what is on disk is what is left
        with_journal = journal.exists()  # then its transaction had not committed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_mid_build += with_journal
        (sessions / f"s{round_ * 8 + 1:04d}.json").unlink()  # the folder changes meanwhile
        with Index.for_dirs(home, sessions) as index:
            conn = index.connect()
            held = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
            assert not with_journal or held == 0  # rolled back: none of the half-written
            index.refresh()
            check_whole(index, sessions)
    assert killed_mid_build >= 1  # the kill did land while the rows went in
