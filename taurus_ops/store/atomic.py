"""Atomic, durable writes and private directories.

A save writes a hidden temporary file in the target's directory, fsyncs it, renames
it over the target and fsyncs the directory: a crash at any moment leaves either
the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
TMP_MARK = ".tmp-"


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
    """The hidden temporary sibling used while writing ``target``."""
    return target.with_name(f".{target.name}{TMP_MARK}{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


LINK_TMP_SUFFIX = ".tmp-link"


def point_link(link: Path, target: Path, durable: bool = True) -> None:
    """Make ``link`` a symlink to ``target`` (stored relative to the link's folder), atomically.

    A hidden ``.NAME.tmp-link`` is made first and renamed over ``link``, so the name
    always leads somewhere: to the old target or the new one. ``durable`` fsyncs the
    folder; a caller re-pointing many names passes False and fsyncs it once.
    """
    link = Path(link)
    tmp = link.with_name(f".{link.name}{LINK_TMP_SUFFIX}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # relative between the real folders: a link is read from the folder it really sits in, so
    # a home reached through a symlink still gets the plain ``ln -s FILE NAME.json`` form
    relative = os.path.relpath(os.path.realpath(target), os.path.realpath(link.parent))
    os.symlink(relative, tmp)
    os.replace(tmp, link)
    if durable:
        fsync_dir(link.parent)


def atomic_write(
    target: Path, data: bytes, mode: int | None = FILE_MODE, durable: bool = True
) -> None:
    """Replace ``target`` with ``data`` atomically; the file gets ``mode``.

    The temporary file is created exclusively under a random name and never through a
    symlink (``O_CREAT|O_EXCL|O_NOFOLLOW``): a link planted where it would be makes the
    write fail rather than write through it. ``mode=None`` gives a new file the usual
    ``0666`` less the umask (a project file, not a private one).
    """
    target = Path(target)
    tmp = temp_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)  # the umask may have narrowed it further; make it exact
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)


def create_exclusive(
    target: Path, data: bytes, mode: int = FILE_MODE, durable: bool = True
) -> bool:
    """Create ``target`` holding ``data``, never replacing a file of that name.

    The bytes go to an exclusively created temporary sibling (fsynced when
    ``durable``), which is then hard-linked to ``target``: the name appears whole or
    not at all, and a name that already exists is left exactly as it is. Returns
    True if this call created it, False if it already existed. On a file system
    without hard links the temporary file is renamed into place after checking the
    name is free.
    """
    target = Path(target)
    tmp = temp_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(target):
                return False
            os.rename(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if durable:
        fsync_dir(target.parent)
    return True
