"""The chat holds the write lock of the very session file it writes, however the session
was opened, and lets it go when it leaves the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.chat import make_app
from helpers.sessions import make_document, write_session

from taurus_ops.chat.app import ChatApp
from taurus_ops.chat.commands import Commands
from taurus_ops.errors import SessionLocked
from taurus_ops.store.lock import SessionLock, is_locked


def _new(app: ChatApp, store) -> None:
    app.start_new()


def _by_id(app: ChatApp, store) -> None:
    app.open_ref("lock0001")


def _by_name(app: ChatApp, store) -> None:
    store.name("lock0001", "mine")
    app.open_ref("mine")


def _latest(app: ChatApp, store) -> None:
    app.open_ref(None)


def _from_archive(app: ChatApp, store) -> None:
    store.archive(store.resolve("lock0001").path)
    app.open_ref("lock0001")


def _fork(app: ChatApp, store) -> None:
    app.open_ref("lock0001")
    app.fork(1)


def _resume(app: ChatApp, store) -> None:
    app.start_new()
    Commands(app)("/resume lock0001")


OPENINGS: dict[str, Callable[[ChatApp, object], None]] = {
    "new": _new,
    "id": _by_id,
    "name": _by_name,
    "latest": _latest,
    "archived": _from_archive,
    "fork": _fork,
    "resume": _resume,
}


@pytest.mark.parametrize("how", sorted(OPENINGS))
def test_the_chat_holds_the_session_lock_of_the_file_it_writes(fake_api, store, how) -> None:
    write_session(store.session_dir, make_document("lock0001", n_turns=1))
    app, _ = make_app(store)
    OPENINGS[how](app, store)
    assert app.session is not None and app.session.path is not None
    path = Path(app.session.path)
    lock = app.lock
    assert isinstance(lock, SessionLock) and lock.fd is not None
    assert lock.target == path and path.parent == store.session_dir and path.is_file()
    assert is_locked(path)
    with pytest.raises(SessionLocked):  # a second writer of that file is refused
        SessionLock(path).acquire()
    app.close()
    assert app.lock is None and not is_locked(path)
    SessionLock(path).acquire().release()  # free once the chat has left it
