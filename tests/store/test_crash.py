"""Crash safety and locking with real processes: SIGKILL at random moments, two writers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from taurus_ops.errors import SessionLocked
from taurus_ops.store import SessionLock, SessionStore, is_locked

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taurus_ops.store import SessionStore
    store = SessionStore(Path(sys.argv[1]))
    path = Path(sys.argv[2])
    session = store.load(path)
    n = len(session.messages)
    print("ready", flush=True)
    while True:
        role = "user" if n % 2 == 0 else "assistant"
        session.messages.append({"role": role, "content": f"m{n} " + "x" * (n % 997)})
        session.tool_calls.append({"tool": "read", "file": f"f{n}", "timestamp": "2025-01-18T10:24:15.789Z"})
        store.save(session)
        n += 1
    """
)


def expected_message(n: int) -> dict:
    return {"role": "user" if n % 2 == 0 else "assistant", "content": f"m{n} " + "x" * (n % 997)}


def test_sigkill_at_random_moments_never_breaks_the_file(
    store: SessionStore, tmp_path: Path
) -> None:
    """200 writer processes killed mid-save: the file always parses and holds a prefix."""
    session = store.create()
    path = session.path
    rng = random.Random(1234)
    previous = 0
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for _round in range(200):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(store.session_dir), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        data = json.loads(path.read_bytes())  # always a whole, valid document
        messages = data["messages"]
        assert len(messages) >= previous  # nothing that was saved is lost
        assert messages == [expected_message(i) for i in range(len(messages))]
        assert len(data["toolCalls"]) == len(messages)
        assert store.load(path).id == session.id
        previous = len(messages)
    assert previous > 200  # the writers really were writing when killed
    assert os.stat(path).st_mode & 0o777 == 0o600


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taurus_ops.store import SessionLock
    lock = SessionLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
    """
)


def _start_holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_with_the_holders_pid(store: SessionStore) -> None:
    session = store.create()
    holder = _start_holder(session.path)
    try:
        assert is_locked(session.path)
        with pytest.raises(SessionLocked) as info:
            SessionLock(session.path).acquire()
        assert info.value.pid == holder.pid
        assert str(holder.pid) in str(info.value)
        # readers are never blocked
        assert store.load(session.path).id == session.id
        assert [s.id for s in store.summaries()] == [session.id]
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        holder.wait(timeout=10)
    assert not is_locked(session.path)
    with SessionLock(session.path):
        assert is_locked(session.path)


def test_lock_of_a_killed_holder_is_stale_and_reusable(store: SessionStore) -> None:
    session = store.create()
    holder = _start_holder(session.path)
    holder.kill()
    holder.wait(timeout=10)
    lock_file = session.path.with_name(f".{session.path.name}.lock")
    assert lock_file.exists()  # left behind by the crash...
    assert not is_locked(session.path)  # ...but nobody holds it
    with SessionLock(session.path) as lock:
        assert lock.fd is not None
    assert not lock_file.exists()


def test_cli_readers_work_while_a_chat_holds_the_lock(store: SessionStore) -> None:
    session = store.create()
    session.messages.append({"role": "user", "content": "hello there"})
    store.save(session)
    holder = _start_holder(session.path)
    try:
        env = dict(os.environ)
        for args in (["list"], ["show", session.id]):
            proc = subprocess.run(
                [sys.executable, "-m", "taurus_ops.cli", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            assert session.id in proc.stdout
    finally:
        holder.kill()
        holder.wait(timeout=10)
