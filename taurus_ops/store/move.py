"""Moving sessions between the session directory and the archive, safely.

Within one file system each file is hard-linked into place (which never
overwrites), the destination folder is fsynced once, then the originals are
removed and their folders fsynced once: a crash in between leaves the same file
in both places, and moving it again finishes the move. Across file systems a file
is copied to a hidden temporary name, fsynced, compared with the original, linked
into place, and only then is the original removed. Name symlinks that led to the
old place are re-pointed at the new one, never left dangling.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taurus_ops.errors import TaurusError
from taurus_ops.store.atomic import create_temp, ensure_dir, fsync_dir, point_link, write_all


class MoveError(TaurusError):
    pass


def _same_bytes(a: Path, b: Path) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk_a = fa.read(1 << 20)
            chunk_b = fb.read(1 << 20)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


_CROSS_DEVICE = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK)


@dataclass
class Moved:
    """What became of one file: its new path, or why it stayed where it was."""

    source: Path
    dest: Path | None
    error: str | None = None


def move_files(sources: Sequence[Path], dest_dir: Path) -> list[Moved]:
    """Move each of ``sources`` into ``dest_dir`` under its own name; never overwrites."""
    ensure_dir(dest_dir)
    results: list[Moved] = []
    linked: list[Moved] = []
    for source in map(Path, sources):
        dest = dest_dir / source.name
        if os.path.normpath(dest) == os.path.normpath(source):
            results.append(Moved(source, None, f"{source} is already in {dest_dir}"))
            continue
        try:
            if dest.exists() or dest.is_symlink():
                if dest.is_symlink() or not (
                    os.path.samefile(source, dest) or _same_bytes(source, dest)
                ):
                    raise MoveError(f"{dest} already exists; not overwriting it")
                # the same file (or an identical copy) in both places: an interrupted move,
                # finished by removing the original (a copy's here, a link's below)
                if not os.path.samefile(source, dest):
                    os.unlink(source)
                    fsync_dir(source.parent)
                    results.append(Moved(source, dest))
                    continue
            else:
                os.link(source, dest)
        except MoveError as exc:
            results.append(Moved(source, None, str(exc)))
            continue
        except OSError as exc:
            if exc.errno not in _CROSS_DEVICE:
                results.append(Moved(source, None, exc.strerror or str(exc)))
                continue
            try:
                _copy_verified(source, dest)
                os.unlink(source)
                fsync_dir(source.parent)
            except (OSError, MoveError) as inner:
                results.append(Moved(source, None, getattr(inner, "strerror", None) or str(inner)))
            else:
                results.append(Moved(source, dest))
            continue
        moved = Moved(source, dest)
        linked.append(moved)
        results.append(moved)
    if linked:
        fsync_dir(dest_dir)
    touched: set[Path] = set()
    for moved in linked:
        try:
            os.unlink(moved.source)
        except OSError as exc:  # the file stays in both places; a later move finishes it
            moved.dest, moved.error = None, exc.strerror or str(exc)
        else:
            touched.add(moved.source.parent)
    for folder in touched:
        fsync_dir(folder)
    return results


def move_file(source: Path, dest_dir: Path) -> Path:
    """Move one file into ``dest_dir``; raises MoveError (or OSError) if it stays."""
    (moved,) = move_files([source], dest_dir)
    if moved.dest is None:
        raise MoveError(moved.error or f"{source} could not be moved")
    return moved.dest


def _copy_verified(source: Path, dest: Path) -> None:
    tmp, fd = create_temp(dest)  # exclusive: never through a link planted at the name
    try:
        try:
            src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                st = os.fstat(src)
                while chunk := os.read(src, 1 << 20):
                    write_all(fd, chunk)
            finally:
                os.close(src)
            os.fchmod(fd, 0o600)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(fd)
        finally:
            os.close(fd)
        if not _same_bytes(source, tmp):
            raise MoveError(f"copy of {source} to {dest.parent} did not verify; original kept")
        os.link(tmp, dest)
        os.unlink(tmp)
        fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def repoint_names(session_dir: Path, old: Path, new: Path) -> list[Path]:
    """Re-point every name symlink in ``session_dir`` that led to ``old`` so it leads to ``new``."""
    changed: list[Path] = []
    old_real = os.path.realpath(old)
    try:
        entries = list(os.scandir(session_dir))
    except FileNotFoundError:
        return changed
    for entry in entries:
        if not entry.is_symlink():
            continue
        link = Path(entry.path)
        target = os.readlink(link)
        resolved = os.path.normpath(os.path.join(session_dir, target))
        if resolved != os.path.normpath(old) and os.path.realpath(resolved) != old_real:
            continue
        point_link(link, new)
        changed.append(link)
    return changed


def names_leading_to(session_dir: Path, target: Path) -> list[Path]:
    real = os.path.realpath(target)
    out: list[Path] = []
    try:
        entries = list(os.scandir(session_dir))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.is_symlink() and os.path.realpath(entry.path) == real:
            out.append(Path(entry.path))
    return out
