"""Moving a session between the session directory and the archive, safely.

Within one file system the move is a single rename. Across file systems the file is
copied to a hidden temporary name, fsynced, compared with the original, renamed
into place, and only then is the original removed. Name symlinks that led to the
old place are re-pointed at the new one, never left dangling.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from taurus_ops.errors import TaurusError
from taurus_ops.store.atomic import ensure_dir, fsync_dir, point_link, temp_name


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


def move_file(source: Path, dest_dir: Path) -> Path:
    """Move ``source`` into ``dest_dir`` (same name); refuses to overwrite. Returns the new path."""
    ensure_dir(dest_dir)
    dest = dest_dir / source.name
    if dest.exists() or dest.is_symlink():
        raise MoveError(f"{dest} already exists; not overwriting it")
    try:
        os.link(source, dest)  # atomic, and fails instead of overwriting
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        _copy_verified(source, dest)
    else:
        fsync_dir(dest_dir)
    os.unlink(source)
    fsync_dir(source.parent)
    return dest


def _copy_verified(source: Path, dest: Path) -> None:
    tmp = temp_name(dest)
    try:
        shutil.copy2(source, tmp)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if not _same_bytes(source, tmp):
            raise MoveError(f"copy of {source} to {dest.parent} did not verify; original kept")
        os.link(tmp, dest)
        os.unlink(tmp)
        fsync_dir(dest.parent)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def repoint_names(session_dir: Path, old: Path, new: Path) -> list[Path]:
    """Re-point every name symlink in ``session_dir`` that led to ``old`` so it leads to ``new``."""
    changed = []
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
    out = []
    try:
        entries = list(os.scandir(session_dir))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.is_symlink() and os.path.realpath(entry.path) == real:
            out.append(Path(entry.path))
    return out
