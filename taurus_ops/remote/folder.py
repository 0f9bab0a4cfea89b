"""The folder remote: a plain shared folder (NFS, SMB, a mounted drive) at ``file:///PATH``.

An object is a file under the folder. Writing goes to a hidden temporary file, is
fsynced, and then takes the object's place by rename, so a reader (or a crash)
only ever sees the old object or the new one. The condition is checked under the
object's lock, a ``.NAME.lock`` file made with an exclusive create (a hard link of
a file holding the writer's host and pid, atomic on local file systems and NFS): creating succeeds only if the object does
not exist, replacing only if it is still the version the writer read. A version
(the "ETag") is the file's inode, size and modification time, which a rename always
changes. A lock left by a writer that died is taken over once that process is
gone (same host) or after ``STALE_AFTER`` seconds.

Objects are 0600 in folders of 0700, except under ``shared/``, the team area, where
they are 0644 in 0755 folders so teammates can read them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from taurus_ops.remote.base import Conflict, Fetched, ObjectInfo, RemoteError
from taurus_ops.remote.url import RemoteUrl
from taurus_ops.store.lock import process_alive

STALE_AFTER = 60.0  # seconds before another host's lock counts as abandoned
LOCK_WAIT = 30.0  # seconds a writer waits for an object's lock
TMP_MARK = ".tmp-"
SHARED = "shared/"


class FolderRemote:
    def __init__(self, where: RemoteUrl) -> None:
        self.url = where.url
        self.root = Path(where.path)

    # -- the interface ------------------------------------------------------------------
    def list(self, prefix: str = "", after: str | None = None) -> Iterator[ObjectInfo]:
        self._root_exists()
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        yield from self._walk(self._path(folder) if folder else self.root, prefix, after or "")

    def _walk(self, folder: Path, prefix: str, after: str = "") -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self.error(exc, "listing") from None
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue  # temporary files, locks
            if entry.is_dir(follow_symlinks=False):
                inside = os.path.relpath(entry.path, self.root) + "/"
                if not (inside < after and not after.startswith(inside)):
                    yield from self._walk(Path(entry.path), prefix, after)
                continue  # (a folder whose every key sorts before ``after`` is not walked)
            if not entry.is_file(follow_symlinks=False):
                continue
            key = os.path.relpath(entry.path, self.root)
            if not key.startswith(prefix) or key <= after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield ObjectInfo(key, _version(st), st.st_size)

    def get(self, key: str) -> Fetched | None:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
        except FileNotFoundError:
            self._root_exists()
            return None
        except OSError as exc:
            raise self.error(exc, f"reading {key}") from None
        return Fetched(key, _version(st), data, {})

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str]) -> str:
        return self._put(key, data, None)

    def put_replace(self, key: str, data: bytes, etag: str, metadata: Mapping[str, str]) -> str:
        return self._put(key, data, etag)

    def check(self) -> None:
        self._root_exists()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RemoteError(f"remote {self.url}: the folder is not writable by this user")

    def close(self) -> None:
        pass

    # -- large objects (backups) --------------------------------------------------------
    def put_new_file(self, key: str, source: Path, metadata: Mapping[str, str]) -> str:
        return self._put(key, source, None)

    def get_file(self, key: str, sink: BinaryIO) -> ObjectInfo | None:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._root_exists()
            return None
        except OSError as exc:
            raise self.error(exc, f"reading {key}") from None
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            while True:
                try:
                    chunk = handle.read(1 << 20)
                except OSError as exc:
                    raise self.error(exc, f"reading {key}") from None
                if not chunk:
                    break
                sink.write(chunk)  # a local write error is the local disk's, raised as it is
        return ObjectInfo(key, _version(st), st.st_size)

    def delete(self, key: str) -> None:
        self._root_exists()
        path = self._path(key)
        try:
            with (
                _ObjectLock(path.with_name(f".{path.name}.lock")),
                contextlib.suppress(FileNotFoundError),
            ):
                os.unlink(path)
                _fsync_dir(path.parent)
        except OSError as exc:
            raise self.error(exc, f"removing {key}") from None

    # -- inside -------------------------------------------------------------------------
    def _root_exists(self) -> None:
        if not self.root.is_dir():
            raise RemoteError(
                f"remote {self.url}: the folder {self.root} does not exist (is it mounted?)"
            )

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise RemoteError(f"remote {self.url}: refusing the key {key!r}")
        return self.root.joinpath(*parts)

    def _modes(self, key: str) -> tuple[int, int]:
        return (0o755, 0o644) if key.startswith(SHARED) else (0o700, 0o600)

    def _put(self, key: str, data: bytes | Path, expected: str | None) -> str:
        self._root_exists()
        path = self._path(key)
        dir_mode, file_mode = self._modes(key)
        try:
            _make_dirs(path.parent, self.root, dir_mode)
            tmp = path.with_name(f".{path.name}{TMP_MARK}{secrets.token_hex(6)}")
            _write_synced(tmp, data, file_mode)
        except OSError as exc:
            raise self.error(exc, f"writing {key}") from None
        try:
            with _ObjectLock(path.with_name(f".{path.name}.lock")):
                try:
                    current = _version(os.stat(path))
                except FileNotFoundError:
                    current = None
                if current != expected:
                    raise Conflict(key)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
                return _version(os.stat(path))
        except OSError as exc:
            raise self.error(exc, f"writing {key}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def error(self, exc: OSError, doing: str) -> RemoteError:
        if exc.errno == errno.ENOSPC:
            problem = "no space left on the device"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            problem = f"permission denied: {exc.filename or self.root}"
        elif exc.errno == errno.EROFS:
            problem = "the folder is on a read-only file system"
        else:
            problem = exc.strerror or str(exc)
        return RemoteError(f"remote {self.url}: {doing}: {problem}")


def _version(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def _make_dirs(folder: Path, root: Path, mode: int) -> None:
    missing = []
    probe = folder
    while probe != root and not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for item in reversed(missing):
        try:
            item.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(item, mode)


def _write_synced(path: Path, data: bytes | Path, mode: int) -> None:
    """A new file ``path`` holding ``data`` (bytes, or a file's, copied in chunks), fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        if isinstance(data, Path):
            with open(data, "rb") as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    _write_all(fd, chunk)
        else:
            _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:  # some network file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


class _ObjectLock:
    """An exclusive-create lock file holding ``host pid time``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def __enter__(self) -> _ObjectLock:
        deadline = time.monotonic() + LOCK_WAIT
        stamp = f"{socket.gethostname()} {os.getpid()} {time.time():.3f}\n".encode()
        # the stamp is written first and linked into place: a lock is never seen empty
        tmp = self.path.with_name(f"{self.path.name}{TMP_MARK}{secrets.token_hex(6)}")
        _write_synced(tmp, stamp, 0o600)
        try:
            while True:
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    if self._abandoned():
                        self._break()
                        continue
                    if time.monotonic() > deadline:
                        raise OSError(
                            errno.EBUSY, f"{self.path} is held by another writer"
                        ) from None
                    time.sleep(0.01)
                    continue
                self.held = True
                return self
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.held = False

    def _abandoned(self) -> bool:
        try:
            text = self.path.read_text(errors="replace").split()
            age = time.time() - os.stat(self.path).st_mtime
        except (OSError, ValueError):
            return False
        if len(text) >= 2 and text[0] == socket.gethostname() and text[1].isdigit():
            return not process_alive(int(text[1]))
        return age > STALE_AFTER

    def _break(self) -> None:
        """Remove an abandoned lock; a rename first, so only one of several breakers wins.

        If what was renamed is not the lock judged abandoned (another breaker was quicker
        and a new writer already holds a fresh lock), it is linked back in place.
        """
        try:
            judged = self.path.read_bytes()
        except FileNotFoundError:
            return
        aside = self.path.with_name(f"{self.path.name}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_bytes() != judged:
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
