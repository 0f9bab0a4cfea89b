"""The locks in a Taurus home (store.lock.HomeLock: the ops lock, the scheduler's lock)
and ops.lock.ops_lock, which jobs take: refused with the holder named, waited for,
given up when the job is cancelled."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.jobs import log_lines
from helpers.sessions import make_document, write_session

from taurus_ops.errors import OpsLocked, TaurusError
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.lock import ops_lock
from taurus_ops.ops.schedule import DaemonLock, DaemonRunning
from taurus_ops.store.lock import HomeLock, OpsLock

HOLD = """
import sys
from pathlib import Path
from taurus_ops.ops.schedule import DaemonLock
from taurus_ops.store.lock import OpsLock
lock = {"ops": OpsLock, "daemon": DaemonLock}[sys.argv[1]](Path(sys.argv[2]))
with lock:
    print("ready", flush=True)
    sys.stdin.read()
"""

LOCKS = {
    "ops": (
        OpsLock,
        OpsLocked,
        "another maintenance job (cleanup, backup, sync or doctor) is running: process {pid}",
    ),
    "daemon": (
        DaemonLock,
        DaemonRunning,
        "the scheduler is already running for {home} (process {pid})",
    ),
}


def hold(kind: str, home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, kind, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_a_home_lock_refuses_a_second_holder_by_name_then_frees(tmp_path: Path, kind: str) -> None:
    lock_cls, error, message = LOCKS[kind]
    home = tmp_path / "not-there-yet"
    holder = hold(kind, home)
    try:
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700  # made private by the lock
        with pytest.raises(error) as refused:
            lock_cls(home).acquire()
        assert isinstance(refused.value, TaurusError)
        assert str(refused.value) == message.format(pid=holder.pid, home=home)
    finally:
        release(holder)
    with lock_cls(home) as lock:  # free once its holder ended
        assert isinstance(lock, HomeLock) and lock.path.read_text() == f"{os.getpid()}\n"
    assert not lock.path.exists()  # a released lock leaves no file behind


def test_the_ops_lock_and_the_scheduler_lock_are_independent(tmp_path: Path) -> None:
    with OpsLock(tmp_path), DaemonLock(tmp_path) as daemon:
        assert daemon.path.name == "schedule.lock"
        with pytest.raises(OpsLocked):
            OpsLock(tmp_path).acquire()  # a second handle in one process is refused too


def test_ops_lock_waits_for_the_holder_and_says_so(taurus_home: Path) -> None:
    ctx = JobContext.load()
    held = OpsLock(taurus_home).acquire()
    threading.Timer(0.4, held.release).start()
    start = time.monotonic()
    with ops_lock(ctx, wait=20, log=ctx.log("cleanup")):
        waited = time.monotonic() - start
    assert 0.3 < waited < 10
    (line,) = log_lines(taurus_home, "taurus_ops.ops.cleanup")
    assert line.startswith("INFO waiting up to 20s: another maintenance job")


def test_ops_lock_gives_up_early_when_the_job_is_cancelled(taurus_home: Path) -> None:
    ctx = JobContext.load(cancel=threading.Event())
    assert ctx.cancel is not None
    with OpsLock(taurus_home):
        threading.Timer(0.3, ctx.cancel.set).start()
        start = time.monotonic()
        with pytest.raises(OpsLocked), ops_lock(ctx, wait=60):
            pass
        assert time.monotonic() - start < 10  # not the 60 seconds asked for
    with ops_lock(taurus_home):  # a home works as well as a context
        pass


@pytest.mark.parametrize("kind", ["session", *sorted(LOCKS)])
@pytest.mark.parametrize("how", ["acquire", "with"])
def test_taking_a_lock_gives_back_that_very_lock(tmp_path: Path, kind: str, how: str) -> None:
    """What ``acquire()`` and ``with`` give is the lock object itself, of its own class
    (a SessionLock keeps its ``target``), so a holder releases the lock it took."""
    from taurus_ops.store.lock import SessionLock

    made = SessionLock(tmp_path / "s.json") if kind == "session" else LOCKS[kind][0](tmp_path)
    if how == "acquire":
        taken = made.acquire()
        assert taken is made and taken.fd is not None
        taken.release()
    else:
        with made as taken:
            assert taken is made and taken.fd is not None
    assert made.fd is None and type(taken) is type(made)


def test_a_lock_sidecar_that_is_a_symlink_never_writes_through_it(store, tmp_path):
    # e.g. unpacked from someone else's tarball: the lock must not truncate what it points to
    from taurus_ops.errors import SessionLocked
    from taurus_ops.store.lock import SessionLock, lock_path

    path = write_session(store.session_dir, make_document("abc123", n_turns=1))
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    lock_path(path).symlink_to(victim)
    with SessionLock(path) as lock:
        assert not lock.path.is_symlink()
        try:
            SessionLock(path).acquire()
            raise AssertionError("a second writer was let in")
        except SessionLocked:
            pass
    assert victim.read_text() == "precious\n"
    assert not lock_path(path).exists() and not lock_path(path).is_symlink()
