"""The newest session, noted at each save, so ``chat --resume`` finds it without a stat
of every file (about 0.3 s at 100,000 sessions).

The note (``~/.taurus/newest-session.json``, 0600) holds the name of the session saved
last, its ``updated``, and the session directory's stamp (device, inode, mtime and
ctime) just after that save. Every save by Taurus is a rename, and creating, removing
or renaming a file moves the directory's stamp, so while the stamp is the noted one no
other session can have become the newest (only a file's bytes changed in place by
another program could, as for the index's quick look). A save notes itself only when
the stamp just before it was the noted one; after a change by anything else the note
is dropped, and ``SessionStore.latest`` looks at every file, then notes what it found.

Two saves of different sessions in one tick of the file-system clock may leave the
older one noted (the stamp cannot tell them apart); the note is a hint for which
session to resume, never a record of anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from taurus_ops.store import changes
from taurus_ops.store.atomic import atomic_write

NOTE_FILE = "newest-session.json"


def directory_stamp(folder: Path | str) -> list[int] | None:
    """(device, inode, mtime_ns, ctime_ns) of a directory; None when there is none."""
    try:
        st = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _read(home: Path) -> dict[str, Any] | None:
    try:
        note = json.loads((home / NOTE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or not isinstance(note.get("name"), str):
        return None
    return note


def noted(home: Path, folder: Path) -> Path | None:
    """The newest session as noted, while the folder is as it was then; else None."""
    note = _read(home)
    if note is None or note.get("dir") != directory_stamp(folder):
        return None
    path = folder / note["name"]
    if os.sep in note["name"] or not note["name"].endswith(".json"):
        return None
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    return path


def note(home: Path, folder: Path, name: str, updated: float, stamp: list[int] | None) -> None:
    """Note ``name`` as the newest session of ``folder``, whose stamp is ``stamp``."""
    if stamp is None:
        return
    data = json.dumps({"name": name, "updated": updated, "dir": stamp}).encode()
    with contextlib.suppress(OSError):
        atomic_write(home / NOTE_FILE, data, durable=False)


def forget(home: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(home / NOTE_FILE)


@contextlib.contextmanager
def noting(
    home: Path | None,
    folder: Path,
    names: list[str],
    saved: Callable[[], tuple[str, float]] | None = None,
) -> Iterator[None]:
    """Around one change to ``folder`` by Taurus, which makes, replaces or removes the
    entries ``names``: the change goes in the journal (``store.changes``), and the note
    is kept when nothing else changed the folder in between. The change is a save
    (``saved`` gives the session's file name and ``updated`` once it is written; a save
    that fails drops the note, since what it left is not known) or, without ``saved``,
    one that makes no session newer (a session's lock file made or removed: the note
    stands, with the folder's new stamp). Without a ``home`` there is neither."""
    if home is None:
        yield
        return
    start = directory_stamp(folder)
    before = _read(home)
    if before is not None and before.get("dir") != start:
        before = None  # the folder changed since the note: nobody knows the newest
    try:
        yield
    except BaseException:
        if saved is not None:
            forget(home)
        else:
            _keep(home, folder, before, None, directory_stamp(folder))
        raise
    end = directory_stamp(folder)
    changes.record(home, folder, start, end, names)
    _keep(home, folder, before, saved, end)


def _keep(
    home: Path,
    folder: Path,
    before: dict[str, Any] | None,
    saved: Callable[[], tuple[str, float]] | None,
    stamp: list[int] | None,
) -> None:
    """The note after a change ``noting`` saw the note ``before`` of (None: none stood),
    which left the folder's stamp ``stamp``."""
    if before is None:
        forget(home)
        return
    name, updated = before["name"], _number(before.get("updated"))
    if saved is not None:
        mine, when = saved()
        if mine == name or when >= updated:
            name, updated = mine, when
    note(home, folder, name, updated, stamp)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("-inf")
