"""The viewer beside a chat that is writing and a cleanup that is archiving.

A real writer process holds the session's lock (as ``taurus chat`` does) and saves a
message every few milliseconds; a real ``taurus-ops cleanup`` moves old sessions to the
archive. Meanwhile the viewer answers every page: never an error page, and it never
takes a lock (``flock`` and Taurus's own locks are trip-wired in the viewer's process).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session
from starlette.testclient import TestClient

from taurus_ops.store import SessionStore

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from taurus_ops.store import SessionStore
    store = SessionStore(Path(sys.argv[1]), Path(sys.argv[2]))
    session = store.load_ref(sys.argv[3])
    with store.lock(session):
        print("locked", flush=True)
        for i in range(int(sys.argv[4])):
            role = "assistant" if i % 2 else "user"
            session.messages.append({"role": role, "content": f"live message {i}"})
            store.save(session, durable=False)
            time.sleep(0.004)
    print("done", flush=True)
    """
)
MESSAGES = 400


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every lock the viewer's process tries to take."""
    from taurus_ops.store import lock

    taken: list[str] = []
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        taken.append(f"flock({fd}, {operation})")
        real_flock(fd, operation)

    def acquire(self: lock.FileLock) -> lock.FileLock:
        taken.append(f"lock {self.path}")
        raise AssertionError(f"the viewer took the lock {self.path}")

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(lock.FileLock, "acquire", acquire)
    return taken


def test_serving_beside_a_writing_chat_and_an_archiving_cleanup(
    taurus_home: Path, store: SessionStore, tripwire: list[str]
) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.web.app import create_app

    now = datetime.now(UTC)
    old = []
    for n in range(40):
        created = now - timedelta(days=60 + n)
        path = write_session(store.session_dir, make_document(f"old{n:04d}", created=created))
        os.utime(path, (created.timestamp(), created.timestamp()))
        old.append(f"old{n:04d}")
    store.name("old0003", "kept-name")
    chat = write_session(store.session_dir, make_document("chat0001", created=now))
    (taurus_home / "config.yaml").write_text(
        "sessions:\n  retentionDays: 30\n  cleanupNamed: true\n"
    )
    env = {**os.environ, "TAURUS_HOME": str(taurus_home)}

    app = create_app(load_config(), token=None)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    assert client.get("/").status_code == 200  # the index exists before the storm

    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store.session_dir), str(store.archive_dir),
         "chat0001", str(MESSAGES)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
    cleanup = subprocess.Popen(
        [sys.executable, "-m", "taurus_ops.cli", "cleanup"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    failures: list[str] = []
    answered = [0]

    def visit(paths: list[str], until: float) -> None:
        while time.monotonic() < until and (writer.poll() is None or cleanup.poll() is None):
            for path in paths:
                answer = client.get(path)
                answered[0] += 1
                if answer.status_code != 200 or "Something went wrong" in answer.text:
                    failures.append(f"{path}: {answer.status_code}")

    until = time.monotonic() + 20
    pages = [
        "/", "/?archived=1&sort=messages", "/s/chat0001", "/s/chat0001/turns?from=1",
        "/s/chat0001?at=last", "/search?q=live+message", "/stats",
    ]  # fmt: skip
    moving = [f"/s/{sid}" for sid in old[:8]] + ["/s/kept-name", "/search?q=step&archived=1"]
    second = threading.Thread(target=visit, args=(moving, until))
    second.start()
    visit(pages, until)
    second.join()
    writer_out, _ = writer.communicate(timeout=30)
    _, cleanup_err = cleanup.communicate(timeout=30)

    assert writer.returncode == 0 and "done" in writer_out
    assert cleanup.returncode == 0, cleanup_err
    assert failures == []
    assert answered[0] > 20
    assert [t for t in tripwire if t.startswith("lock")] == []
    assert tripwire == []  # not even a shared flock to peek at one
    # the storm is over: everything is where the files say
    archived = {p.name.split("_", 1)[1][:-5] for p in store.files(archived=True)}
    assert set(old) <= archived
    page = client.get("/s/chat0001?at=last").text
    assert f"live message {MESSAGES - 1}" in page
    assert client.get("/s/old0003").status_code == 200
    assert "archived" in client.get("/s/kept-name").text
    assert chat.exists()
