"""``latest`` (what ``chat --resume`` resumes) from the note of the newest save equals
``latest`` from a look at every file, whatever happens to the folder between: saves by
Taurus (touching ``updated`` or not), new sessions, files written, replaced, removed
or renamed by other programs, name links, a damaged or planted note."""

from __future__ import annotations

import os
import random
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.store import SessionStore, newest
from taurus_ops.store import format as fmt
from taurus_ops.store.lock import SessionLock

OPS = ["save", "save-untouched", "create", "foreign-new", "foreign-old", "remove", "link", "junk"]
OPS += ["lock", "lock-elsewhere"]


def _by_scan(store: SessionStore) -> Path:
    return SessionStore(store.session_dir, store.archive_dir).latest().path  # no home: no note


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ops=st.lists(st.tuples(st.sampled_from(OPS), st.booleans()), min_size=1, max_size=12),
    seed=st.integers(0, 999),
)
def test_the_noted_newest_is_the_newest(
    tmp_path_factory, ops: list[tuple[str, bool]], seed: int
) -> None:
    """Asked after some steps only, so that saves also follow other changes unasked."""
    rng = random.Random(seed)
    home = tmp_path_factory.mktemp("home")
    store = SessionStore(home / "sessions", home / "archive")
    store.index_home = home
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(3):
        write_session(store.session_dir, make_document(f"old{n}", base + timedelta(days=n)))
    assert store.latest().path == _by_scan(store)  # the look at every file notes its find
    for step, (op, ask) in enumerate(ops):
        files = sorted(p for p in store.session_dir.glob("*.json") if not p.is_symlink())
        if op in ("save", "save-untouched") and files:
            session = store.load(rng.choice(files))
            session.data["title"] = f"step {step}"
            store.save(session, touch=op == "save")
        elif op == "create":
            store.create(title=f"new {step}")
        elif op in ("foreign-new", "foreign-old"):
            doc = make_document(f"f{step:03d}", base + timedelta(days=rng.randint(0, 5)))
            when = datetime.now(UTC) if op == "foreign-new" else base  # as a sync writes it
            doc["updated"] = fmt.format_time(when)
            write_session(store.session_dir, doc)
        elif op == "remove" and len(files) > 1:
            rng.choice(files).unlink()
        elif op == "link" and files:
            link = store.session_dir / f"name{step}.json"
            os.symlink(rng.choice(files).name, link)
        elif op == "lock" and files:
            with store.lock(rng.choice(files)):
                pass
        elif op == "lock-elsewhere" and files:  # a lock by a job that keeps no note
            with SessionLock(rng.choice(files)):
                pass
        elif op == "junk":
            (home / newest.NOTE_FILE).write_text(rng.choice(["{", "[]", '{"name": "../x.json"}']))
        if ask or step == len(ops) - 1:
            assert store.latest().path == _by_scan(store), (ops, step)


def test_the_note_is_private_and_trusted_only_while_the_folder_stands(store) -> None:
    store.ensure()
    first = store.create(title="first")
    second = store.create(title="second")
    assert store.latest().path == second.path
    note = store.index_home / newest.NOTE_FILE
    assert stat.S_IMODE(note.stat().st_mode) == 0o600
    assert newest.noted(store.index_home, store.session_dir) == second.path
    store.save(first)  # the newest now
    assert newest.noted(store.index_home, store.session_dir) == first.path
    (store.session_dir / "stray.txt").write_text("x")  # anything else: the note stands no more
    assert newest.noted(store.index_home, store.session_dir) is None
    assert store.latest().path == first.path  # found by a look at every file, and noted
    assert newest.noted(store.index_home, store.session_dir) == first.path


@pytest.mark.parametrize("name", ["../escape.json", "sub/dir.json", "not-a-session.txt"])
def test_a_note_naming_no_session_file_is_ignored(store, name: str) -> None:
    session = store.create(title="only")
    note = store.index_home / newest.NOTE_FILE
    newest.note(
        store.index_home, store.session_dir, name, 1e12, newest.directory_stamp(store.session_dir)
    )
    assert note.exists()
    assert store.latest().path == session.path


def test_a_chat_s_lock_keeps_the_note(store) -> None:
    """What a resumed chat does to the folder (its lock file made, a save, the lock file
    removed) leaves the note standing: the next resume looks at no file."""
    store.ensure()
    older = store.create(title="older")
    newer = store.create(title="newer")
    assert store.latest().path == newer.path
    with store.lock(older):
        store.save(older)
    assert newest.noted(store.index_home, store.session_dir) == older.path
    with SessionLock(newer.path):  # a lock that does not keep it (cleanup's, say)
        pass
    assert newest.noted(store.index_home, store.session_dir) is None


def test_a_failed_save_leaves_no_note(store, monkeypatch) -> None:
    store.ensure()
    session = store.create(title="one")
    store.latest()
    assert newest.noted(store.index_home, store.session_dir) == session.path
    from taurus_ops.store import store as store_module

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "save_document", broken)
    with pytest.raises(OSError):
        store.save(session)
    assert not (store.index_home / newest.NOTE_FILE).exists()
