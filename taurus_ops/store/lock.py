"""Advisory write locks on sessions.

A chat writing a session holds ``flock`` on a hidden sidecar file
(``.2025-01-18_abc123.json.lock``) holding its pid. The sidecar, not the session,
carries the lock because every save replaces the session file. A second writer is
refused with the holder's pid; readers never take the lock and are never blocked.
A sidecar left by a crash holds no flock, so it is stale and harmless.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from taurus_ops.errors import OpsLocked, SessionLocked, TaurusError
from taurus_ops.store.newest import noting

LOCK_SUFFIX = ".lock"


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


def is_lock_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".json" + LOCK_SUFFIX)


def target_of_lock(lock: Path) -> Path:
    return lock.with_name(lock.name[1 : -len(LOCK_SUFFIX)])


def read_holder(lock: Path) -> int | None:
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """True if a process of that number runs on this machine (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def is_held(lock: Path) -> bool:
    """True if some process holds ``lock`` now (a stale sidecar is not held)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def is_locked(target: Path) -> bool:
    return is_held(lock_path(target))


def _own_kind(fd: int) -> bool:
    """True for a regular file with one name: what Taurus makes a lock file."""
    st = os.fstat(fd)
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


class FileLock:
    """An exclusive, non-blocking flock on ``path`` holding this process's pid."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> Self:
        while True:
            try:
                fd = os.open(
                    self.path,
                    os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                    0o600,
                )
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                # Taurus never makes a lock a symlink (this one came from elsewhere, a tarball
                # say): remove it rather than truncate and write whatever it points to
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            if not _own_kind(fd):
                # nor a FIFO, a device or a hard link to some other file: its data is not
                # ours to truncate; the name is removed and a lock file of our own made
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self.busy(read_holder(self.path)) from None
            # the file we locked may have been unlinked by a releasing holder meanwhile
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        if os.fstat(fd).st_size:  # a new file needs no truncate (which costs ext4 a flush)
            os.ftruncate(fd, 0)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # a full disk: the flock is what locks; the pid only names the holder
            pass
        self.fd = fd
        return self

    def busy(self, pid: int | None) -> Exception:
        return SessionLocked(str(target_of_lock(self.path)), pid)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding it, so nobody inherits a stale file
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class SessionLock(FileLock):
    """The write lock of one session file. With ``home`` (the session is in the session
    directory of that Taurus home), making and removing the lock file keeps the note of
    the newest session (``store.newest``) standing."""

    def __init__(self, target: Path, home: Path | None = None) -> None:
        super().__init__(lock_path(Path(target)))
        self.target = Path(target)
        self.home = home

    def acquire(self) -> Self:
        with noting(self.home, self.target.parent, [self.path.name]):
            return super().acquire()

    def release(self) -> None:
        if self.fd is None:
            return
        with noting(self.home, self.target.parent, [self.path.name]):
            super().release()


class HomeLock(FileLock):
    """A lock file of its own in a Taurus home (``ops.lock``, ``schedule.lock``).

    The home is made (0700) when missing; a second holder is refused with the error
    ``refuse`` makes from a description of the first one ("process 1234").
    """

    def __init__(self, home: Path, name: str, refuse: Callable[[str], TaurusError]) -> None:
        super().__init__(Path(home) / name)
        self.refuse = refuse

    def acquire(self) -> Self:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return super().acquire()

    def busy(self, pid: int | None) -> Exception:
        return self.refuse(f"process {pid}" if pid else "another process")


OPS_LOCK = "ops.lock"


def _maintenance_running(holder: str) -> TaurusError:
    return OpsLocked(
        f"another maintenance job (cleanup, backup, sync or doctor) is running: {holder}"
    )


class OpsLock(HomeLock):
    """The one lock that cleanup, backup, sync and the doctor take, so two jobs never overlap."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, OPS_LOCK, _maintenance_running)
