"""Where the chat's file tools may reach, decided in one place on what a path really is.

Every path a file tool (read, write, edit, grep, glob) is given or meets goes through
:class:`Confinement`. A path is resolved the way the kernel resolves it (every
symlink, ``..``, ``/proc/self/root``, ``/proc/self/cwd`` and the like, through
``os.path.realpath``) and refused when it lands outside the allowed roots: the
working directory and any extra folders the chat was given. Paths stay as the OS
gives them (``surrogateescape`` for names that are not UTF-8).

A file is then opened without following a final symlink, never blocking on a FIFO
or a device, and checked once more by the name the kernel gives the open
descriptor, so a link swapped in after the check still does not lead outside.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

OUTSIDE_HINT = "set chat.allowOutsideCwd: true to allow it"


class PathRefused(Exception):
    """A path a tool may not use; the message goes back to the model."""


def _real(path: str) -> str:
    return os.path.realpath(path)


def fd_path(fd: int) -> str | None:
    """The path the kernel gives an open descriptor (None where /proc is not mounted)."""
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return name.removesuffix(" (deleted)")


@dataclass(frozen=True)
class Confinement:
    """The allowed roots (real paths, the working directory first)."""

    roots: tuple[str, ...]
    unconfined: bool = False  # chat.allowOutsideCwd: every path is allowed

    @classmethod
    def around(
        cls, cwd: Path | str, extra: Iterable[Path | str] = (), unconfined: bool = False
    ) -> Confinement:
        roots = [_real(os.fspath(cwd))]
        roots += [_real(os.path.expanduser(os.fspath(p))) for p in extra]
        return cls(tuple(dict.fromkeys(roots)), unconfined)

    @property
    def cwd(self) -> Path:
        return Path(self.roots[0])

    def allows(self, real: Path | str) -> bool:
        """True if the resolved path ``real`` is one of the roots or inside one."""
        if self.unconfined:
            return True
        text = os.fspath(real)
        return any(text == root or text.startswith(root.rstrip("/") + "/") for root in self.roots)

    def real(self, raw: Path | str) -> Path:
        """What ``raw`` really names: ``~`` expanded, relative to the working directory,
        every symlink and ``..`` resolved."""
        text = os.fspath(raw)
        if "\0" in text:
            raise PathRefused("a path cannot hold a NUL character")
        text = os.path.expanduser(text)
        if not os.path.isabs(text):
            text = os.path.join(self.roots[0], text)
        return Path(_real(text))

    def resolve(self, raw: Path | str) -> Path:
        """The real path of ``raw``; PathRefused if it lies outside the roots."""
        real = self.real(raw)
        if not self.allows(real):
            raise PathRefused(self.outside_message(raw))
        return real

    def check(self, path: Path | str) -> Path | None:
        """The real path of a path met while walking a folder, or None if it leads outside."""
        real = Path(_real(os.fspath(path)))
        return real if self.allows(real) else None

    def outside_message(self, raw: Path | str) -> str:
        where = "the working directory" if len(self.roots) == 1 else "the allowed folders"
        return f"{os.fspath(raw)} is outside {where} {self.roots[0]}; refused ({OUTSIDE_HINT})"

    def open_file(self, real: Path, shown: str | None = None) -> int:
        """Open the allowed regular file ``real`` for reading; returns the descriptor.

        No final symlink is followed (``real`` is already resolved, so one there was
        swapped in), a FIFO or device never blocks the chat, and the opened file is
        checked again by the kernel's name for it.
        """
        shown = shown if shown is not None else os.fspath(real)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link loop, or a link swapped in since the check
                raise PathRefused(f"{shown} is a symlink that cannot be followed") from None
            raise
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathRefused(f"{shown} is a directory (use glob to list it)")
            if not stat.S_ISREG(info.st_mode):
                raise PathRefused(f"{shown} is not a regular file")
            opened = fd_path(fd)
            if opened is not None and opened.startswith("/") and not self.allows(opened):
                raise PathRefused(self.outside_message(shown))
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, real: Path, shown: str | None = None, limit: int | None = None) -> bytes:
        """The bytes of an allowed regular file (at most ``limit`` + 1 of them if given)."""
        fd = self.open_file(real, shown)
        with os.fdopen(fd, "rb") as handle:
            return handle.read() if limit is None else handle.read(limit + 1)
