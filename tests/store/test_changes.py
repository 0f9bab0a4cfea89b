"""The changes journal (``store.changes``) and the index's look through it: after a save
by Taurus the index reads the journal, not the folder, and whenever anything else
changed the folder, or the journal is not whole, it looks at the folder instead."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.store import SessionStore, changes
from taurus_ops.store.index import Index, build
from taurus_ops.store.newest import directory_stamp

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sessions"
    folder.mkdir()
    return folder


# -- the journal itself --------------------------------------------------------------------
def test_changes_read_back_in_order_for_their_folder_only(tmp_path: Path) -> None:
    home, folder, other = tmp_path, _folder(tmp_path), tmp_path / "other"
    start = changes.mark(home)
    assert start == [0, 0, 0]  # no journal yet
    changes.record(home, folder, [1, 2, 3, 4], [1, 2, 5, 6], ["a.json"])
    changes.record(home, other, [9, 9, 9, 9], [9, 9, 9, 10], ["x.json"])
    changes.record(home, folder, [1, 2, 5, 6], None, ["a.lock", "b\udcff.json"])
    found = changes.since(home, start, folder)
    assert found is not None
    entries, end = found
    assert entries == [
        ([1, 2, 3, 4], [1, 2, 5, 6], ["a.json"]),
        ([1, 2, 5, 6], None, ["a.lock", "b\udcff.json"]),
    ]
    assert end == changes.mark(home)
    assert changes.since(home, end, folder) == ([], end)
    assert stat.S_IMODE(os.stat(home / changes.JOURNAL_FILE).st_mode) == 0o600


def test_a_line_still_being_written_waits_for_the_next_look(tmp_path: Path) -> None:
    home, folder = tmp_path, _folder(tmp_path)
    changes.record(home, folder, [1, 1, 1, 1], [1, 1, 2, 2], ["a.json"])
    with open(home / changes.JOURNAL_FILE, "ab") as handle:
        handle.write(b'{"dir": "' + os.fsencode(folder) + b'", "fr')
    found = changes.since(home, [0, 0, 0], folder)
    assert found is not None
    entries, end = found
    assert len(entries) == 1
    assert end[2] < os.stat(home / changes.JOURNAL_FILE).st_size


@pytest.mark.parametrize(
    "line", [b"{not json\n", b"[1, 2]\n", b'{"dir": "F", "names": "a.json"}\n', b"\xff\xfe\n"]
)
def test_a_damaged_journal_is_not_read(tmp_path: Path, line: bytes) -> None:
    home, folder = tmp_path, _folder(tmp_path)
    changes.record(home, folder, [1, 1, 1, 1], [1, 1, 2, 2], ["a.json"])
    with open(home / changes.JOURNAL_FILE, "ab") as handle:
        handle.write(line.replace(b"F", os.fsencode(folder)))
    assert changes.since(home, [0, 0, 0], folder) is None


@pytest.mark.parametrize(
    "start", [[1, 2], [0, 0, -1], [0, 0, 10**9], ["0", 0, 0], None, [0.5, 0, 0], "x"]
)
def test_a_mark_that_is_not_one_reads_nothing(tmp_path: Path, start: object) -> None:
    home, folder = tmp_path, _folder(tmp_path)
    changes.record(home, folder, [1, 1, 1, 1], [1, 1, 2, 2], ["a.json"])
    assert changes.since(home, start, folder) is None


def test_a_full_journal_starts_again_and_its_readers_look(tmp_path, monkeypatch) -> None:
    home, folder = tmp_path, _folder(tmp_path)
    monkeypatch.setattr(changes, "JOURNAL_MAX", 200)
    changes.record(home, folder, [1, 1, 1, 1], [1, 1, 2, 2], ["a.json"])
    old = changes.mark(home)
    changes.record(home, folder, [1, 1, 2, 2], [1, 1, 3, 3], ["b" * 150 + ".json"])
    assert changes.mark(home) != old
    changes.record(home, folder, [1, 1, 3, 3], [1, 1, 4, 4], ["c.json"])  # a new file
    assert changes.since(home, old, folder) is None  # not the journal marked
    found = changes.since(home, changes.mark(home), folder)
    assert found == ([], changes.mark(home))
    (home / changes.JOURNAL_FILE).unlink()
    assert changes.since(home, old, folder) is None  # the journal marked is gone


def test_nothing_is_written_or_read_through_a_link_planted_at_the_journal(tmp_path) -> None:
    home, folder = tmp_path, _folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep\n")
    (home / changes.JOURNAL_FILE).symlink_to(victim)
    assert changes.since(home, [0, 0, 0], folder) is None
    changes.record(home, folder, [1, 1, 1, 1], [1, 1, 2, 2], ["a.json"])
    assert victim.read_bytes() == b"keep\n"
    assert not (home / changes.JOURNAL_FILE).is_symlink()
    assert changes.since(home, [0, 0, 0], folder) is not None


# -- the index's look through it -------------------------------------------------------------
def _home_with(tmp_path: Path, count: int = 20) -> tuple[SessionStore, Index]:
    home = tmp_path / "home"
    store = SessionStore(home / "sessions", home / "archive")
    store.index_home = home
    store.ensure()
    for n in range(count):
        write_session(store.session_dir, make_document(f"s{n:03d}", BASE + timedelta(hours=n)))
    old = (BASE - timedelta(days=30)).timestamp()
    os.utime(store.session_dir, (old, old))  # settled: not a folder changed just now
    index = Index.for_dirs(home, store.session_dir, store.archive_dir)
    index.refresh()
    return store, index


def _chat_turn(store: SessionStore, path: Path, words: str) -> None:
    with store.lock(path):
        session = store.load(path)
        session.data["messages"].append({"role": "user", "content": words})
        store.save(session)


def _hits(index: Index, word: str) -> set[str]:
    keys = index.term_keys(word) or set()
    return {
        Path(path).name
        for key, path in index.query("SELECT key, path FROM sessions")
        if key in keys
    }


def test_after_a_chat_turn_the_index_reads_the_journal_not_the_folder(
    tmp_path, monkeypatch
) -> None:
    store, index = _home_with(tmp_path)
    path = sorted(store.session_dir.glob("*.json"))[7]
    _chat_turn(store, path, "walrus")
    store.create("fresh", messages=[{"role": "user", "content": "narwhal"}])

    def no_listing(*args: object) -> object:
        raise AssertionError("the folder was listed")

    monkeypatch.setattr(build, "_listing", no_listing)
    monkeypatch.setattr(build, "scan", no_listing)
    report = index.refresh()
    assert (report.added, report.changed, report.removed) == (1, 1, 0)
    assert _hits(index, "walrus") == {path.name}
    assert len(_hits(index, "narwhal")) == 1
    assert index.refresh().touched == 0  # and again, with nothing new in the journal


@pytest.mark.parametrize("foreign", ["new", "replaced", "removed", "renamed", "journal lost"])
def test_any_other_change_makes_the_index_look_at_the_folder(tmp_path, foreign: str) -> None:
    store, index = _home_with(tmp_path)
    files = sorted(store.session_dir.glob("*.json"))
    _chat_turn(store, files[3], "walrus")
    if foreign == "new":
        write_session(store.session_dir, make_document("zz-new", BASE, first="narwhal"))
    elif foreign == "replaced":
        write_session(store.session_dir, {**json.loads(files[5].read_bytes()), "title": "t"})
    elif foreign == "removed":
        files[5].unlink()
    elif foreign == "renamed":
        files[5].rename(files[5].with_name("2026-01-01_renamed.json"))
    else:
        (store.index_home / changes.JOURNAL_FILE).unlink()
    _chat_turn(store, files[4], "walrus")  # more of the journal after the gap
    index.refresh()
    rebuilt = Index.for_dirs(tmp_path / "other", store.session_dir, store.archive_dir)
    rebuilt.refresh()
    columns = "SELECT path, size, mtime_ns, inode, title FROM sessions ORDER BY path"
    assert index.query(columns) == rebuilt.query(columns)
    assert _hits(index, "walrus") == {files[3].name, files[4].name}


def test_saves_by_several_processes_at_once_leave_the_index_right(tmp_path: Path) -> None:
    """Real processes, each a chat saving its own session turn after turn, while the index
    refreshes: at the end it holds what a build from nothing holds."""
    store, index = _home_with(tmp_path, count=6)
    files = sorted(store.session_dir.glob("*.json"))
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from taurus_ops.store import SessionStore
        home, path = Path(sys.argv[1]), Path(sys.argv[2])
        store = SessionStore(home / "sessions", home / "archive")
        store.index_home = home
        for turn in range(40):
            with store.lock(path):
                session = store.load(path)
                session.data["messages"].append({"role": "user", "content": f"turn {turn}"})
                store.save(session, durable=False)
        """
    )
    home = store.index_home
    assert home is not None
    chats = [
        subprocess.Popen([sys.executable, "-c", script, str(home), str(path)]) for path in files[:4]
    ]
    while any(chat.poll() is None for chat in chats):
        index.refresh()
    assert all(chat.returncode == 0 for chat in chats)
    index.refresh()
    rebuilt = Index.for_dirs(tmp_path / "other", store.session_dir, store.archive_dir)
    rebuilt.refresh()
    columns = "SELECT path, size, mtime_ns, inode, messages FROM sessions ORDER BY path"
    assert index.query(columns) == rebuilt.query(columns)


def test_a_file_system_of_whole_seconds_is_not_trusted_to_the_journal(tmp_path) -> None:
    """Told by the folder's ctime, which only the kernel sets: a folder whose mtime was
    set to a whole second (as ``touch -d`` does) is still trusted."""
    folder = _folder(tmp_path)
    os.utime(folder, (BASE.timestamp(), BASE.timestamp()))
    stamp = directory_stamp(folder)
    assert stamp is not None and stamp[2] % 1_000_000_000 == 0
    assert build._fine(stamp) == (stamp[3] % 1_000_000_000 != 0)
    assert not build._fine([stamp[0], stamp[1], stamp[2] + 1, 3_000_000_000])
    assert not build._fine(None)
