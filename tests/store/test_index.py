"""The index is a cache: refreshed from the files, rebuilt when missing or damaged."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.config import load_config
from taurus_ops.store import format as fmt
from taurus_ops.store.index import INDEX_NAME, Index
from taurus_ops.store.index.words import stored_dictionary, vocab_again


@pytest.fixture
def index(store):
    with Index(load_config()) as ix:
        yield ix


def _ids(index: Index, archived: bool = False) -> set[str]:
    return {row.id for row in index.rows(archived=archived)}


def test_built_on_first_use_private_and_consistent(store, index, taurus_home) -> None:
    write_session(store.session_dir, make_document("aaa001"))
    write_session(store.session_dir, make_document("bbb002"))
    assert index.check() == []  # no index yet: nothing to disagree
    report = index.refresh()
    assert report.added == 2
    path = taurus_home / INDEX_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _ids(index) == {"aaa001", "bbb002"}
    assert index.check() == []
    assert index.refresh().touched == 0  # nothing changed: nothing re-read


def test_incremental_refresh_changed_added_removed(store, index) -> None:
    a = write_session(store.session_dir, make_document("aaa001", first="first version"))
    b = write_session(store.session_dir, make_document("bbb002"))
    index.refresh()
    # change a (rewritten atomically, as Taurus saves), add c, remove b
    doc = make_document("aaa001", first="second version with zebra")
    doc["messages"].append({"role": "assistant", "content": "more"})
    atomic_write_doc(a, doc)
    write_session(store.session_dir, make_document("ccc003"))
    b.unlink()
    problems = index.check()
    assert problems and "1 changed, 1 new, 1 removed" in problems[0]
    assert all(p.stale for p in problems)  # merely behind: the doctor only notes it
    report = index.refresh()
    assert (report.changed, report.added, report.removed) == (1, 1, 1)
    rows = {row.id: row for row in index.rows()}
    assert set(rows) == {"aaa001", "ccc003"}
    assert rows["aaa001"].messages == len(doc["messages"])
    assert rows["aaa001"].title == "second version with zebra"
    everyone = {row.key for row in index.rows()}
    (hits,) = index.term_messages(["zebra"], everyone)
    assert len(hits) == 1 and sum(map(len, hits.values())) == 1  # one message of one session
    assert index.term_messages(["first version"], everyone) == [{}]
    assert index.check() == []


def test_in_place_edit_with_same_size_is_seen(store, index, monkeypatch) -> None:
    """A file's bytes changed in place (same inode) are seen by the next full look: at
    once here, as when the trusted while after the last one is over."""
    from taurus_ops.store.index import build

    path = write_session(store.session_dir, make_document("aaa001", first="alpha"))
    index.refresh()
    monkeypatch.setattr(build, "TRUST_SECONDS", 0.0)
    data = path.read_bytes().replace(b"alpha", b"omega")  # same size, same inode
    with open(path, "r+b") as handle:
        handle.write(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert index.refresh().changed == 1
    assert index.term_messages(["omega"], {row.key for row in index.rows()})[0]


def test_a_save_is_seen_without_a_stat_of_every_file(store, index, monkeypatch) -> None:
    """After a full look, a changed folder is listed: a file whose inode is its row's is
    not stat'ed, a new or replaced one is; an in-place edit waits for the next full look."""
    from taurus_ops.store.index import build

    paths = [
        write_session(store.session_dir, make_document(f"s{i:05d}", first=f"word{i}"))
        for i in range(20)
    ]
    index.refresh()  # a full look
    stats: list[str] = []

    class Counted:
        def __init__(self, entry: os.DirEntry) -> None:
            self._entry = entry

        def __getattr__(self, name: str) -> object:
            return getattr(self._entry, name)

        def stat(self, follow_symlinks: bool = True) -> os.stat_result:
            stats.append(self._entry.name)
            return self._entry.stat(follow_symlinks=follow_symlinks)

    class Listing:
        def __init__(self, it) -> None:
            self._it = it

        def __enter__(self):
            return (Counted(e) for e in self._it.__enter__())

        def __exit__(self, *exc: object) -> None:
            self._it.__exit__(*exc)

    scandir, lstat = os.scandir, os.lstat

    def counted_lstat(path: str) -> os.stat_result:
        stats.append(os.path.basename(path))
        return lstat(path)

    monkeypatch.setattr(build.os, "scandir", lambda p: Listing(scandir(p)))
    monkeypatch.setattr(build.os, "lstat", counted_lstat)
    doc = make_document("s00003", first="replaced")
    atomic_write_doc(paths[3], doc)  # a save: a new inode
    new = write_session(store.session_dir, make_document("t00001", first="newcomer"))
    with open(paths[5], "r+b") as handle:  # in place: the same inode
        data = handle.read().replace(b"word5", b"wordX")
        handle.seek(0)
        handle.write(data)
    report = index.refresh()
    assert (report.changed, report.added) == (1, 1)
    assert sorted(stats) == sorted([paths[3].name, new.name])  # not the 19 others
    everyone = {row.key for row in index.rows()}
    assert index.term_messages(["newcomer"], everyone)[0]
    assert index.term_messages(["replaced"], everyone)[0]
    assert not index.term_messages(["wordx"], everyone)[0]  # waits for a full look
    monkeypatch.setattr(build, "TRUST_SECONDS", 0.0)
    assert index.refresh().changed == 1
    assert index.term_messages(["wordx"], {row.key for row in index.rows()})[0]


def atomic_write_doc(path: Path, doc: dict) -> None:
    from taurus_ops.store.atomic import atomic_write

    atomic_write(path, fmt.dumps(doc), durable=False)


@pytest.mark.parametrize(
    "damage",
    [
        b"this is not a database at all" * 100,
        b"",
        b"SQLite format 3\x00" + b"\xff" * 5000,
    ],
    ids=["garbage", "empty", "corrupt-header"],
)
def test_damaged_index_is_rebuilt_not_fatal(store, ops, taurus_home, damage: bytes) -> None:
    write_session(store.session_dir, make_document("aaa001", first="find the narwhal"))
    assert ops("search", "-l", "narwhal").exit_code == 0
    path = taurus_home / INDEX_NAME
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(damage)
    if damage:
        with Index(load_config()) as probe:
            found = probe.check()
            assert found and not any(p.stale for p in found)  # the doctor sees it as damage
    result = ops("search", "-l", "narwhal")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("2025-01-18_aaa001.json")
    with Index(load_config()) as fresh:
        assert fresh.check() == []
    assert ops("stats", "--json").exit_code == 0


def test_truncated_index_is_rebuilt(store, ops, taurus_home) -> None:
    for n in range(20):
        write_session(store.session_dir, make_document(f"s{n:03d}", n_turns=5))
    assert ops("search", "-l", "login").exit_code == 0
    path = taurus_home / INDEX_NAME
    with Index(load_config()) as ix:
        ix.connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(b"\x00\xff" * 4096)
    result = ops("search", "-l", "login")
    assert result.exit_code == 0
    assert len(result.output.split()) == 20


def test_old_schema_is_rebuilt(store, index, taurus_home) -> None:
    write_session(store.session_dir, make_document("aaa001"))
    index.refresh()
    index.close()
    conn = sqlite3.connect(taurus_home / INDEX_NAME)
    conn.execute("UPDATE meta SET value = 'ancient' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    assert any("version" in p for p in index.check())
    report = index.refresh()
    assert report.rebuilt and report.damaged
    assert _ids(index) == {"aaa001"}


def test_rebuild_and_archive_rows(store, index) -> None:
    a = write_session(store.session_dir, make_document("aaa001"))
    write_session(store.session_dir, make_document("bbb002"))
    index.refresh()
    store.archive(a)
    index.refresh()
    assert _ids(index) == {"bbb002"}
    assert _ids(index, archived=True) == {"aaa001", "bbb002"}
    report = index.rebuild()
    assert report.rebuilt and report.added == 2


def test_damaged_session_file_is_indexed_as_damaged(store, index) -> None:
    store.ensure()
    (store.session_dir / "2025-01-18_broken.json").write_text("{not json")
    write_session(store.session_dir, make_document("aaa001"))
    index.refresh()
    rows = {row.id: row for row in index.rows()}
    assert rows["broken"].error and rows["aaa001"].error is None


def test_unusable_home_falls_back_to_memory(store, tmp_path) -> None:
    write_session(store.session_dir, make_document("aaa001"))
    home = tmp_path / "home-is-a-file"  # no index can be written there, even by root
    home.write_text("x")
    with Index.for_dirs(home, store.session_dir) as ix:
        ix.refresh()
        assert ix.in_memory and {r.id for r in ix.rows()} == {"aaa001"}


def _listing(ops, *args: str) -> list[dict]:

    result = ops("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_list_from_the_index_equals_list_from_the_files(store, ops, taurus_home) -> None:
    paths = [write_session(store.session_dir, make_document(f"l{n:03d}")) for n in range(6)]
    for n, path in enumerate(paths):
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))
    store.name(paths[0].name, "first")
    (store.session_dir / "2025-01-18_broken.json").write_text("{oops")
    store.archive(paths[1])
    from_files = [_listing(ops), _listing(ops, "--archived")]
    assert not (taurus_home / INDEX_NAME).exists()  # list never builds the index itself
    assert ops("search", "-l", "login").exit_code == 0  # now there is one
    assert [_listing(ops), _listing(ops, "--archived")] == from_files
    # stale: a changed, a new and a removed file are seen at once
    doc = make_document("l002", first="changed title")
    atomic_write_doc(paths[2], doc)
    write_session(store.session_dir, make_document("l999"))
    paths[3].unlink()
    with_index = _listing(ops, "--archived")
    (taurus_home / INDEX_NAME).unlink()
    assert with_index == _listing(ops, "--archived")
    assert "changed title" in {s["title"] for s in with_index}
    # damaged: still right
    assert ops("search", "-l", "login").exit_code == 0
    (taurus_home / INDEX_NAME).write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        Path(f"{taurus_home / INDEX_NAME}{suffix}").unlink(missing_ok=True)
    assert _listing(ops, "--archived") == with_index


def test_two_processes_building_at_once_both_answer(store, taurus_home) -> None:
    import subprocess
    import sys

    for n in range(40):
        write_session(store.session_dir, make_document(f"c{n:03d}", n_turns=4))
    command = [sys.executable, "-m", "taurus_ops.cli", "search", "-l", "login"]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert len(out.split()) == 40
    with Index(load_config()) as ix:
        assert ix.check() == [] and len(ix.rows()) == 40


def test_a_long_refresh_is_announced(store, index) -> None:
    for n in range(4):
        write_session(store.session_dir, make_document(f"a{n:03d}", n_turns=0))
    heard: list[int] = []
    index.announce = heard.append
    index.ANNOUNCE_FROM = 3
    index.refresh()
    write_session(store.session_dir, make_document("a999", n_turns=0))
    index.refresh()  # one new file: not worth a word
    assert heard == [4]


def test_an_index_path_that_is_a_link_never_touches_its_target(store, ops, tmp_path) -> None:
    import os
    import stat

    write_session(store.session_dir, make_document("link01"))
    outside = tmp_path / "outside.txt"
    outside.write_text("not an index\n")
    outside.chmod(0o644)
    index = store.session_dir.parent / "index.sqlite"
    index.symlink_to(outside)
    assert "link01" in ops("search", "login").output
    assert ops("stats").exit_code == 0
    assert outside.read_text() == "not an index\n"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o644
    assert not index.is_symlink() and index.is_file()


def test_numbers_no_column_can_hold_are_indexed(store, index, ops) -> None:
    """A fork point, a token count or a time past what SQLite's integers hold is not one:
    the session is indexed, listed and searched all the same."""
    doc = make_document("big001", first="find the numbat")
    doc.update(parentSession="abc123", forkedAt=2**70, usage={"inputTokens": 2**70})
    doc["messages"][0]["usage"] = {"outputTokens": 10**30}
    doc["messages"][1]["content"][1]["input"] = {"n": 10**25}
    write_session(store.session_dir, doc)
    assert index.refresh().added == 1
    listed = {s.id: s for s in index.summaries()}
    assert listed["big001"].forked_at is None and listed["big001"].parent == "abc123"
    assert ops("search", "-l", "numbat").exit_code == 0
    assert ops("search", "-l", str(10**25)).exit_code == 0  # the input as written, exactly
    assert ops("stats", "--json").exit_code == 0


def test_a_session_s_words_are_dropped_with_it(store, index, ops) -> None:
    """Replacing or removing a session takes its words from the word table (no session
    stays a candidate for words it lost), on the small path (its words added to the
    vocabulary) and after a build (the vocabulary read back whole)."""

    words = [f"w{n:05d}x" for n in range(3000)]
    doc = make_document("long01", first="start " + " ".join(words) + " aardvark zebrafinish")
    path = write_session(store.session_dir, doc)
    write_session(store.session_dir, make_document("short1", first="zebrafinish too"))
    index.refresh()
    key = {row.id: row.key for row in index.rows()}["long01"]
    assert key in index.term_keys("zebrafinish") and key in index.term_keys(words[-1])
    assert index.term_keys("0299") == {key}  # inside a word
    assert index.term_keys("qzyx zebra") == set()  # "qzyx" ends no word of theirs
    assert index.term_keys("99x-aard") == {key}  # a word's end, then a start
    assert ops("search", "-l", "aardvark zebrafinish").output.strip() == str(path)
    atomic_write_doc(path, make_document("long01", first="only a few words now"))
    assert index.refresh().changed == 1
    new_key = {row.id: row.key for row in index.rows()}["long01"]
    for gone in (words[0], words[len(words) // 2], "zebrafinish"):
        assert {key, new_key} & (index.term_keys(gone) or set()) == set()
    assert index.term_keys("few words") == {new_key}
    path.unlink()
    index.refresh()
    assert index.term_keys("few words") == set()
    conn = index.connect()
    conn.execute("INSERT INTO words(words) VALUES ('integrity-check')")
    with conn:
        vocab_again(conn)  # the removed session's words are gone from it too
    assert index.term_keys("w00001x") == set()
    assert index.term_keys("zebrafinish") == {row.key for row in index.rows() if row.id == "short1"}


def test_stored_text_is_packed_and_read_on_many_threads_at_once() -> None:
    """A zstd context is not to be shared between threads (the viewer serves searches on
    several): each thread gets its own, and what they read back is what was packed."""
    import threading

    from taurus_ops.store.index import text

    texts = [[f"message {i} of {n} " * (n + 1) for i in range(5)] for n in range(200)]
    packed = [text.pack(["user"] * 5, t) for t in texts]
    contexts: list[object] = []  # kept alive, so no two can share an id
    problems: list[str] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for n, p in enumerate(packed):
            assert p is not None
            again = text.pack(["user"] * 5, texts[n])
            if again is None or again.body != p.body:
                problems.append(f"pack {n}")
            if text.unpack(p.body)[1] != "\x00".join(texts[n]).encode():
                problems.append(f"unpack {n}")
            if not text.holds_all(p.body, [f"message 4 of {n} ".encode()], True):
                problems.append(f"holds_all {n}")
        contexts.append(text._contexts.decompressors[0])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert len({id(c) for c in contexts}) == 8  # one context a thread


def test_text_is_compressed_with_a_dictionary_trained_once(store, ops, monkeypatch) -> None:
    """An index trains its zstd dictionary on the first look that reads enough files and
    keeps it: text stored before it stays readable beside text stored with it, a new
    process reads both, and a body naming a dictionary the index lacks is damage."""
    import zstandard

    from taurus_ops.store import parallel
    from taurus_ops.store.index import schema, text

    monkeypatch.setattr(text, "DICTIONARY_FROM", 30)
    monkeypatch.setattr(parallel, "POOL_FROM", 20)  # read by worker processes, given it
    monkeypatch.setattr(text, "DICTIONARY_SAMPLES", 20)
    first = write_session(store.session_dir, make_document("early1", first="before any quokka"))
    config = load_config()
    with Index(config) as index:
        index.refresh()  # one file: no dictionary
        assert stored_dictionary(index.connect()) is None
        for n in range(40):
            doc = make_document(f"many{n:02d}", first=f"session {n} about the quokka colony")
            write_session(store.session_dir, doc)
        index.refresh()
        conn = index.connect()
        stored = stored_dictionary(conn)
        assert stored is not None
        wanted = zstandard.ZstdCompressionDict(stored).dict_id()
        ids = [
            zstandard.get_frame_parameters(b).dict_id
            for (b,) in conn.execute("SELECT body FROM texts")
        ]
        assert ids.count(0) == 1 and ids.count(wanted) == 40  # the early one as it was
        text._dictionaries.clear()  # as a new process finds it
    result = ops("search", "-l", "quokka")
    assert result.exit_code == 0 and len(result.output.split()) == 41
    assert str(first) in result.output
    with Index(config) as index:
        conn = index.connect()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'dictionary'", (b"not one",))
    with Index(config) as index:  # a dictionary that is not one: the index is rebuilt
        assert index.refresh().damaged is not None
        assert len(list(index.rows())) == 41
    with pytest.raises(schema.Damaged):
        text._decompress(
            zstandard.ZstdCompressor(
                dict_data=zstandard.train_dictionary(
                    4096, [f"sample {n} text ".encode() * 20 for n in range(40)]
                )
            ).compress(b"x" * 100)
        )
