"""The commands that read every session answer from the index: with nothing changed,
no session file is parsed; with one changed, it is parsed once; and many files are
read on every core with the same result as one by one."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt
from taurus_ops.store import parallel, reading
from taurus_ops.store.atomic import atomic_write


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every parse of a session file by the lenient reader (the one every reader uses)."""
    seen: list[int] = []
    real = reading.read_bytes

    def counted(raw: bytes) -> reading.Reading:
        seen.append(len(raw))
        return real(raw)

    monkeypatch.setattr(reading, "read_bytes", counted)
    return seen


def _home(taurus_home: Path, store, count: int = 30) -> list[Path]:
    now = datetime.now(UTC)
    paths = []
    for n in range(count):
        doc = make_document(f"h{n:03d}", created=now - timedelta(days=n * 3), n_turns=2)
        paths.append(write_session(store.session_dir, doc))
    (store.session_dir / "2025-01-18_broken.json").write_text("{not json")
    store.name(paths[0].name, "first")
    for path in paths[-4:]:
        store.archive(path)
    (taurus_home / "config.yaml").write_text("sessions:\n  retentionDays: 30\n")
    return paths


READERS = [
    ("list",),
    ("list", "--limit", "3"),
    ("list", "--json", "--archived"),
    ("list", "--tree"),
    ("search", "login"),
    ("search", "-l", "login"),
    ("stats",),
    ("stats", "--since", "30d"),
    ("cleanup", "--dry-run"),
]


def test_nothing_changed_nothing_parsed(taurus_home: Path, store, ops, parses) -> None:
    paths = _home(taurus_home, store)
    assert ops("search", "-l", "login").exit_code == 0  # builds the index
    assert len(parses) == 31  # every file once (26 active + 1 damaged + 4 archived)
    parses.clear()
    for args in READERS:
        result = ops(*args)
        assert result.exit_code == 0, (args, result.output)
        assert parses == [], args
    assert "will archive" in ops("list").output  # the pending-rule warning was worked out
    # one session changes: the first reader parses it, once; the others parse nothing
    doc = make_document("h001", n_turns=5, first="changed once")
    atomic_write(paths[1], fmt.dumps(doc), durable=False)
    for args in READERS:
        assert ops(*args).exit_code == 0
    assert len(parses) == 1
    assert "changed once" in ops("list", "--json").stdout


def test_list_and_cleanup_without_an_index_read_the_files(
    taurus_home: Path, store, ops, parses
) -> None:
    _home(taurus_home, store, count=5)
    listed = json.loads(ops("list", "--json").stdout)
    assert len(listed) == 2 and parses  # 5 - 4 archived + 1 broken, each file read
    assert not (taurus_home / "index.sqlite").exists()  # list never builds the index
    parses.clear()
    assert ops("cleanup", "--dry-run").exit_code == 0
    assert len(parses) == 6  # a plan reads every active and archived file


def test_limit_reads_only_the_rows_it_shows(taurus_home: Path, store, ops, monkeypatch) -> None:
    _home(taurus_home, store)
    assert ops("search", "-l", "login").exit_code == 0
    from taurus_ops.store.index import queries

    shown: list[int] = []
    real = queries._summary

    def counted(*args: object) -> object:
        shown.append(1)
        return real(*args)

    monkeypatch.setattr(queries, "_summary", counted)
    every = json.loads(ops("list", "--json").stdout)
    assert len(shown) == len(every) == 27
    shown.clear()
    three = json.loads(ops("list", "--json", "--limit", "3").stdout)
    assert three == every[:3] and len(shown) == 3


def test_many_files_read_on_every_core_equal_one_by_one(
    taurus_home: Path, store, ops, monkeypatch
) -> None:
    for n in range(40):
        doc = make_document(f"p{n:03d}", n_turns=n % 5, first=f"pool {n} login")
        os.utime(write_session(store.session_dir, doc), (1_700_000_000 + n,) * 2)
    (store.session_dir / "2025-01-18_broken.json").write_text("[1]")
    serial = [ops("search", "pool", "--json").stdout, ops("stats", "--json").stdout]
    serial.append(ops("list", "--json").stdout)
    (taurus_home / "index.sqlite").unlink()
    monkeypatch.setattr(parallel, "POOL_FROM", 8)  # every build and list uses workers now
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    started: list[object] = []
    handed_over: list[str | None] = []
    real_init = parallel.Workers.__init__

    def spy(self: parallel.Workers, count: int, *args: Any, **kwargs: Any) -> None:
        real_init(self, count, *args, **kwargs)
        started.append(self.pool)
        handed_over.append(self.hand_over)

    monkeypatch.setattr(parallel.Workers, "__init__", spy)
    pooled = [ops("search", "pool", "--json").stdout, ops("stats", "--json").stdout]
    (taurus_home / "index.sqlite").unlink()
    pooled.append(ops("list", "--json").stdout)  # no index: the files, read by workers
    assert pooled == serial
    assert sum(pool is not None for pool in started) == 2  # the build, and list's reading
    if os.path.isdir(parallel.HAND_OVER_IN):  # the build's batches came through files
        assert sum(folder is not None for folder in handed_over) == 1
