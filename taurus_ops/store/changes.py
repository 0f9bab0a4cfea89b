"""The changes journal: one line for each change Taurus makes to the session directory,
so the index can bring itself up to date after a save without listing the folder
(about 50 ms at 100,000 sessions, the whole of a refresh's cost otherwise).

``~/.taurus/changes.log`` (0600) holds a JSON line per change: the folder, the names it
made, replaced or removed, and the folder's stamp (``newest.directory_stamp``) just
before and just after. Creating, removing or renaming a file moves the stamp, so a run
of lines whose stamps follow on, each line's ``from`` the one before's ``to``, from the
stamp the index last saw to the folder's stamp now, names everything that happened in
between; a change by any other program, or a line lost, leaves a gap in the run, and
the index looks at the folder instead (``index.build.look_journal``). The only changes
such a run can hide are another program's made while a Taurus save is under way, or in
the same tick of the file-system clock as a stamp Taurus read (on a file system that
keeps whole seconds the journal is not trusted at all); those are seen by the full look
that comes when the index's trusted time is over, as a file changed in place is.

Lines are appended (``O_APPEND``: one ``write`` each); when the file passes
``JOURNAL_MAX`` bytes the next change starts a new one (a new inode), and the index,
which keeps the file's device, inode and the offset it read up to, looks at the folder
once. Nothing in the journal is needed: deleting it costs the next refresh one look.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from taurus_ops.store.atomic import atomic_write, open_append

JOURNAL_FILE = "changes.log"
JOURNAL_MAX = 1 << 18  # bytes after which the next change starts a new journal
READ_MAX = 1 << 20  # bytes of journal a look reads at most (more: it looks at the folder)

Stamp = list[int]
Mark = list[int]  # (device, inode, offset) of the journal: where a reader has read up to
NONE: Mark = [0, 0, 0]  # the mark of no journal: whatever one holds later came after it
Change = tuple[Stamp | None, Stamp | None, list[str]]  # (stamp before, after, names)


def record(
    home: Path, folder: Path, before: Stamp | None, after: Stamp | None, names: list[str]
) -> None:
    """Add one change to ``folder`` (best effort: a journal that cannot be written only
    costs the index a look)."""
    path = home / JOURNAL_FILE
    line = json.dumps({"dir": os.fspath(folder), "from": before, "to": after, "names": names})
    data = (line + "\n").encode("utf-8", "surrogateescape")
    with contextlib.suppress(OSError):
        fd = open_append(path)
        try:
            if os.fstat(fd).st_size < JOURNAL_MAX:
                os.write(fd, data)
                return
        finally:
            os.close(fd)
        atomic_write(path, data, durable=False)  # a new file: readers of the old one look


def mark(home: Path) -> Mark:
    """Where the journal ends now; read it before the folder's stamp it goes with."""
    try:
        st = os.stat(home / JOURNAL_FILE)
    except OSError:
        return list(NONE)
    return [st.st_dev, st.st_ino, st.st_size]


def since(home: Path, start: object, folder: Path) -> tuple[list[Change], Mark] | None:
    """The changes to ``folder`` recorded after ``start`` (a ``mark``), and where they end;
    None when the journal is not the one marked, or cannot be read."""
    if not (isinstance(start, list) and len(start) == 3 and all(type(n) is int for n in start)):
        return None
    try:
        fd = os.open(
            home / JOURNAL_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
        with open(fd, "rb") as handle:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            if start != NONE and start[:2] != [st.st_dev, st.st_ino]:
                return None
            offset = start[2]
            if not 0 <= offset <= st.st_size or st.st_size - offset > READ_MAX:
                return None
            handle.seek(offset)
            data = handle.read(st.st_size - offset)
    except FileNotFoundError:
        return ([], list(NONE)) if start == NONE else None
    except OSError:
        return None
    whole = data.rfind(b"\n") + 1  # a line still being written is left for the next look
    out: list[Change] = []
    where = os.fspath(folder)
    for line in data[:whole].splitlines():
        try:
            entry = json.loads(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            return None
        if not isinstance(entry, dict):
            return None
        if entry.get("dir") != where:
            continue
        names = entry.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        out.append((_stamp(entry.get("from")), _stamp(entry.get("to")), names))
    return out, [st.st_dev, st.st_ino, offset + whole]


def _stamp(value: object) -> Stamp | None:
    if isinstance(value, list) and all(type(n) is int for n in value):
        return value
    return None
