"""Atomic, durable writes and private directories.

A save writes a hidden temporary file in the target's directory, fsyncs it, renames
it over the target and fsyncs the directory: a crash at any moment leaves either
the old file or the new one, never a mix.

Every file Taurus makes is created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``)
under a random temporary name and then renamed (or linked) into place, so a symlink
or file planted at any name Taurus uses (a cloned repository, an unpacked tarball)
is never opened, truncated or written through: a rename replaces the link itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
TMP_MARK = ".tmp-"
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TRIES = 16  # random names taken by something else before giving up (never in practice)


def _token() -> str:
    """Eight random hex digits: a temporary name no other writer picks."""
    return os.urandom(4).hex()


def ensure_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 directories."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # exact, whatever the umask
    return path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(target: Path) -> Path:
    """A hidden temporary sibling of ``target`` with a random part: ``.NAME.tmp-1a2b3c4d``."""
    return target.with_name(f".{target.name}{TMP_MARK}{_token()}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def create_file(path: Path, mode: int = FILE_MODE) -> int:
    """Open a new file at ``path`` for writing: created now, by us, not through any link.

    Raises FileExistsError if anything (a file, a symlink, dangling or not) is there.
    """
    return os.open(path, CREATE_FLAGS, mode)


def create_temp(target: Path, mode: int = FILE_MODE) -> tuple[Path, int]:
    """A new hidden temporary file beside ``target``: (its path, an fd open for writing)."""
    for _ in range(_TRIES):
        tmp = temp_name(Path(target))
        try:
            return tmp, create_file(tmp, mode)
        except FileExistsError:
            continue  # someone else's file at a random name: take another
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


Content = bytes | Callable[[int], object]  # the bytes, or what writes them to a file descriptor


def _write_temp(target: Path, data: Content, mode: int | None, durable: bool) -> Path:
    """``data`` in a new fsynced temporary file beside ``target`` (mode exactly ``mode``;
    ``None``: 0666 less the umask). A callable ``data`` writes the content itself to the
    descriptor it is given (a large document, piece by piece)."""
    tmp, fd = create_temp(target, 0o666 if mode is None else mode)
    try:
        try:
            if isinstance(data, bytes):
                write_all(fd, data)
            else:
                data(fd)
            if mode is not None:
                os.fchmod(fd, mode)  # the umask may have narrowed it further; make it exact
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.filename is None:  # a write error (a full disk) names the file it was for
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


LINK_TMP_SUFFIX = ".tmp-link"  # the fixed name older versions used; still skipped


def point_link(link: Path, target: Path, durable: bool = True) -> None:
    """Make ``link`` a symlink to ``target`` (stored relative to the link's folder), atomically.

    A hidden link with a random name (``.NAME.tmp-link-1a2b3c4d``) is made first and
    renamed over ``link``, so the name always leads somewhere: to the old target or the
    new one. ``durable`` fsyncs the folder; a caller re-pointing many names passes False
    and fsyncs it once.
    """
    link = Path(link)
    # relative between the real folders: a link is read from the folder it really sits in, so
    # a home reached through a symlink still gets the plain ``ln -s FILE NAME.json`` form
    relative = os.path.relpath(os.path.realpath(target), os.path.realpath(link.parent))
    for _ in range(_TRIES):
        tmp = link.with_name(f".{link.name}{LINK_TMP_SUFFIX}-{_token()}")
        try:
            os.symlink(relative, tmp)  # never follows, never replaces: EEXIST if taken
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(link))
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(link.parent)


def atomic_write(
    target: Path, data: Content, mode: int | None = FILE_MODE, durable: bool = True
) -> None:
    """Replace ``target`` with ``data`` (bytes, or a writer of them) atomically; the file
    gets ``mode``.

    Whatever ``target`` was (a file, or a symlink planted there) is replaced, never
    written through. ``mode=None`` gives the file the usual ``0666`` less the umask
    (a project file, not a private one).
    """
    target = Path(target)
    tmp = _write_temp(target, data, mode, durable)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)


def publish(tmp: Path, target: Path) -> None:
    """Give the finished file ``tmp`` the name ``target``, never replacing anything there.

    A hard link fails if the name is taken; on a file system without hard links (FAT
    on a USB stick) the file is renamed after checking the name is still free.
    Raises FileExistsError when ``target`` exists (``tmp`` is then left to the caller).
    """
    try:
        os.link(tmp, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS or os.path.lexists(target):
            raise
        os.rename(tmp, target)
    else:
        os.unlink(tmp)


def atomic_create(target: Path, data: bytes, mode: int = FILE_MODE, durable: bool = True) -> None:
    """Write a new file ``target`` atomically; FileExistsError if the name is taken.

    Unlike ``atomic_write`` nothing at ``target`` is ever replaced: not a file, not a
    symlink, not a name that appeared between a caller's check and the write.
    """
    target = Path(target)
    tmp = _write_temp(target, data, mode, durable)
    try:
        publish(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


def open_append(path: Path, mode: int = FILE_MODE) -> int:
    """An fd appending to ``path``, a file Taurus keeps adding lines to (a log).

    Opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a FIFO put in its place cannot hang a
    job): a symlink, a FIFO, a device or a hard link to some other file at the name is
    removed and a new file of ``mode`` made, so nothing is ever appended to whatever
    such a name leads to.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    for _ in range(_TRIES):
        try:
            fd = os.open(path, flags, mode)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):  # ENXIO: a FIFO nobody reads
                raise
            _remove(path)
            continue
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(fd)
            _remove(path)
            continue
        os.set_blocking(fd, True)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        return fd
    raise OSError(errno.ELOOP, "keeps being replaced by a link or a special file", str(path))


def is_foreign(path: Path | str) -> bool:
    """True if something Taurus never makes is at ``path``: a symlink, a FIFO, a device, or
    a file with a second name (a hard link to some other file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(st.st_mode) or st.st_nlink > 1


def remove_foreign(path: Path | str) -> None:
    """Remove what ``is_foreign`` finds at ``path`` (a database Taurus opens by name would
    otherwise be read and written through it)."""
    if is_foreign(path):
        _remove(Path(path))


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def create_exclusive(
    target: Path, data: bytes, mode: int = FILE_MODE, durable: bool = True
) -> bool:
    """``atomic_create`` that answers instead of raising: True if this call created
    ``target``, False if a file (or link) of that name was already there, left as it is."""
    try:
        atomic_create(target, data, mode, durable)
    except FileExistsError:
        return False
    return True
