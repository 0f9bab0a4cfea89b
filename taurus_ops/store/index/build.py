"""Bringing the index up to date with the session files.

A folder is looked at in one of four ways:

- the quick look: its own stamp (device, inode, mtime and ctime of the directory) is
  the one recorded at the last look, the last full look was less than
  ``TRUST_SECONDS`` ago, and neither was racy. Creating, removing or renaming a file
  changes a directory's stamp, and every Taurus save is a rename, so nothing but a
  file's bytes changed in place by another program can have happened since; those are
  seen within ``TRUST_SECONDS``. (A stat of every file costs about half a second at
  100,000 sessions, more than a whole ``stats`` may take.)
- the look through the journal: the folder's stamp moved less than ``TRUST_SECONDS``
  after a full look, and the changes journal (``store.changes``) since the last look
  leads stamp by stamp from the stamp then to the stamp now: every change was Taurus's,
  and only the names it gives are stat'ed and compared with their rows. A chat's turn
  then costs the index a read of a few lines of journal and of one session, with no
  listing (``store.changes`` says what such a run of stamps can hide).
- the look between: the same, but the journal does not lead to the stamp now (another
  program changed the folder, or two Taurus processes at once). The folder's listing
  (each name with its inode, no stat) is compared with the one kept at the last look,
  as a whole: the names that are new, gone or on another inode are stat'ed and compared
  with their rows, and so are the names the journal gives (a save can put a file back
  on the inode it had at the last look), so only a file another program changed in
  place, or replaced by one that reuses its inode, is missed, and is seen by the full
  look that comes when the trusted time is over. Without the journal since the last
  look there is no look between. Neither look is recorded as a full one: the trusted
  time still ends when the last full look's does.
- the full look: every session file's (size, mtime_ns, inode), compared with what the
  rows hold (a digest of it first, so an unchanged folder costs one stat pass; then
  the folder's stored stamps, kept beside the rows by the last full look, or else the
  rows themselves). What changed is read again, what is new is added, what is gone is
  dropped.

The folder's name links (``NAME.json`` symlinks) are noted on the same pass, so a
trusted folder answers ``names`` without a directory listing either.

Files are read by ``facts.read_facts``, in worker processes when there are many.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import sqlite3
import stat
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.store import changes
from taurus_ops.store.index import words
from taurus_ops.store.index.schema import USAGE_KINDS, disk_path, folder_key, stamp, stored_path
from taurus_ops.store.index.text import (
    text_from_body,
    use_dictionary,
    words_in,
)
from taurus_ops.store.newest import directory_stamp
from taurus_ops.store.parallel import Workers

if TYPE_CHECKING:
    from taurus_ops.store.index.rows import Batch

TRUST_SECONDS = 60.0  # a folder's own stamp stands for its files this long after a full look
RACY_SECONDS = 2.0  # a directory changed this close to a look may change again unseen
VOCAB_FROM = 256  # sessions read in one look from which the vocabulary is read back whole
READER_NICENESS = 10  # a reading worker's nice value, above the writing process's
BETWEEN_MAX = 2000  # names a look between stats at most (more: a full look is as cheap)

_INT64 = 1 << 63
Stamps = dict[str, tuple[int, int, int]]  # path -> (size, mtime_ns, inode)
Known = dict[str, tuple[int, int, int, int]]  # path -> (key, size, mtime_ns, inode) of the rows
Links = list[tuple[str, str]]  # (name, what the link says) of each ``*.json`` symlink
Entries = dict[str, int]  # name -> inode of every entry of a folder, as its listing gives them


@dataclass
class RefreshReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    rebuilt: bool = False
    damaged: str | None = None  # why the old index was thrown away
    skipped: bool = False  # more to read than the caller allowed: nothing done
    looked: int = 0  # folders looked into (a look between or a full look)

    @property
    def touched(self) -> int:
        return self.added + self.changed + self.removed


@dataclass
class FolderWork:
    """One folder's look: what is on disk and what must be read or dropped."""

    folder: Path
    archived: bool
    key: str
    directory: list[int] | None  # the folder's stamp, taken before its files were
    looked_ns: int  # when the last full look began (this one, or the one trusted still)
    found: Stamps  # every session file's stamp; of a look between, those it stat'ed
    links: Links
    listed_ns: int = 0  # when this look began
    prior: int = 0  # the number of the folder's state when looked at (each save adds one)
    between: bool = False  # a look short of a full one (see the module docstring)
    journal: Path | None = None  # the Taurus home whose changes journal tells of this folder
    mark: changes.Mark | None = None  # where the journal ended, read just before ``directory``
    entries: Entries | None = None  # the listing, kept for the next look between
    unlisted: list[str] = field(default_factory=list)  # names changed since it (see _unlisted)
    known: Known = field(default_factory=dict)
    to_read: list[str] = field(default_factory=list)
    to_drop: list[tuple[int, str]] = field(default_factory=list)


# -- looking at a folder ------------------------------------------------------------------------
def scan(folder: Path) -> tuple[Stamps, Links, Entries]:
    """path -> (size, mtime_ns, inode) of the session files directly in ``folder`` (see
    ``schema.stamp``, inlined: this loop is the cost of a full look), its ``*.json``
    symlinks (name links) with their targets, and every entry's inode as listed."""
    out: Stamps = {}
    links: Links = []
    entries: Entries = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                entries[name] = entry.inode()
                if not name.endswith(".json"):
                    continue
                if entry.is_symlink():
                    with contextlib.suppress(OSError):
                        links.append((name, os.readlink(entry.path)))
                    continue
                if name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue  # a temporary file or a folder (refs.is_session_file)
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                mtime, inode = st.st_mtime_ns, st.st_ino
                if not -_INT64 <= mtime < _INT64:
                    mtime = _INT64 - 1 if mtime > 0 else -_INT64
                out[entry.path] = (
                    st.st_size,
                    mtime,
                    inode - (1 << 64) if inode >= _INT64 else inode,
                )
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out, links, entries


def _listing(folder: Path) -> Entries:
    """Every entry's inode as listed, nothing more (the cost of a look between)."""
    try:
        with os.scandir(folder) as it:
            return {entry.name: entry.inode() for entry in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _links(folder: Path) -> Links:
    out: Links = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as it:
        for entry in it:
            if entry.name.endswith(".json") and entry.is_symlink():
                with contextlib.suppress(OSError):
                    out.append((entry.name, os.readlink(entry.path)))
    return out


def digest(found: Stamps) -> str:
    import hashlib  # only for a full look (loading it costs a trusted one more than the look)

    return hashlib.blake2b(marshal.dumps(found), digest_size=16).hexdigest()


def folder_state(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"folder:{key}",)).fetchone()
    if not row:
        return None
    try:
        state = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _number(state: dict[str, Any] | None) -> int:
    number = state.get("n") if state else None
    return number if isinstance(number, int) else 0


def _save_state(conn: sqlite3.Connection, work: FolderWork, found_digest: str | None) -> None:
    value = {
        "dir": work.directory,
        "looked": work.looked_ns,
        "listed": work.listed_ns,
        "digest": found_digest,
        "links": work.links,
        "n": work.prior + 1,
        "journal": work.mark,
        "unlisted": work.unlisted,
    }
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
        (f"folder:{work.key}", json.dumps(value)),
    )


def stored_entries(conn: sqlite3.Connection, key: str) -> Entries | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"entries:{key}",)).fetchone()
    if row is None:
        return None
    try:
        entries = marshal.loads(row[0])
    except (TypeError, ValueError, EOFError):
        return None
    return entries if isinstance(entries, dict) else None


def _save_entries(conn: sqlite3.Connection, key: str, entries: Entries | None) -> None:
    if entries is not None:
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (f"entries:{key}", marshal.dumps(entries)),
        )


def _times(state: dict[str, Any] | None, now_ns: int) -> tuple[int, int] | None:
    """(last full look, last look of any kind) when the full one is recent enough to
    trust; None otherwise."""
    if not state:
        return None
    looked = state.get("looked")
    if not isinstance(looked, int) or not 0 <= now_ns - looked < TRUST_SECONDS * 1e9:
        return None
    listed = state.get("listed", looked)
    return looked, listed if isinstance(listed, int) and listed >= looked else looked


def _settled(state: dict[str, Any], listed: int) -> bool:
    """True if the folder had not changed just before the last look (a change after it
    may carry the same time, unseen)."""
    recorded = state.get("dir")
    return recorded is None or recorded[2] < listed - RACY_SECONDS * 1e9


def trusted(state: dict[str, Any] | None, folder: Path, now_ns: int) -> bool:
    """True when the quick look says nothing can have changed (see the module docstring)."""
    times = _times(state, now_ns)
    if times is None or state is None:
        return False
    recorded = state.get("dir")
    if recorded is None:  # there was no folder: there is none yet
        return directory_stamp(folder) is None
    if not _settled(state, times[1]):
        return False
    return directory_stamp(folder) == recorded


def look(
    conn: sqlite3.Connection, folder: Path, archived: bool, journal: Path | None = None
) -> FolderWork:
    """A look at one folder (through the journal of the Taurus home ``journal``, the look
    between, or the full one: see the module docstring); ``to_read`` and ``to_drop`` say
    what disagrees."""
    key = folder_key(folder)
    mark = _mark(journal)
    work = FolderWork(folder, archived, key, directory_stamp(folder), time.time_ns(), {}, [])
    work.listed_ns, work.journal, work.mark = work.looked_ns, journal, mark
    state = folder_state(conn, key)
    work.prior = _number(state)
    times = _times(state, work.looked_ns)
    if times is not None and state is not None and look_short(conn, work, state):
        work.looked_ns = times[0]
        if not work.to_read and not work.to_drop:
            _note_look(conn, work, state.get("digest"))
        return work
    work.found, work.links, work.entries = scan(folder)
    found_digest = digest(work.found)
    if (state.get("digest") if state else None) != found_digest:
        work.known = known(conn, key)
        work.to_read, work.to_drop = diff(work.known, work.found)
    if not work.to_read and not work.to_drop:
        _note_look(conn, work, found_digest)
    return work


def _mark(journal: Path | None) -> changes.Mark | None:
    """Where the journal of the Taurus home ``journal`` ends, taken before a folder stamp."""
    return changes.mark(journal) if journal is not None else None


def look_short(conn: sqlite3.Connection, work: FolderWork, state: dict[str, Any]) -> bool:
    """A look through the journal, else a look between; False when neither can stand for
    a full look (among other things, when the journal since the last look is not there
    to name what Taurus changed: a save that puts a file back on the inode it had at the
    last look leaves the listing as it was)."""
    if work.journal is None:
        return False
    found = changes.since(work.journal, state.get("journal"), work.folder)
    if found is None:
        return False
    entries, mark = found
    return look_journal(conn, work, state, entries, mark) or look_between(
        conn, work, state, {name for _, _, names in entries for name in names}
    )


def look_journal(
    conn: sqlite3.Connection,
    work: FolderWork,
    state: dict[str, Any],
    entries: list[changes.Change],
    mark: changes.Mark,
) -> bool:
    """The look through the journal (``store.changes``): when the changes recorded since
    the last look (``entries``, up to ``mark``) lead, stamp by stamp, from the folder's
    stamp then to its stamp now, only the names they made, replaced or removed are
    stat'ed and compared with their rows, with no listing. False (``work`` untouched)
    when they do not."""
    at = state.get("dir")
    if not _fine(at):
        return False
    names: set[str] = set()
    for before, after, changed in entries:
        if before != at or not _fine(after):
            return False
        at = after
        names.update(changed)
    now = directory_stamp(work.folder)
    unlisted = _unlisted(state) | names
    if now != at or len(unlisted) > BETWEEN_MAX:
        return False
    links = [(str(name), str(target)) for name, target in state.get("links", [])]
    _look_at(conn, work, names, links)
    work.directory, work.mark, work.entries = now, mark, None  # the kept listing stays
    work.unlisted = sorted(unlisted)
    return True


def _unlisted(state: dict[str, Any]) -> set[str]:
    """The names looks through the journal found changed since the listing was kept: a
    look between stats them whatever the listing says (one may be on the inode it had
    then again)."""
    names = state.get("unlisted")
    if not isinstance(names, list):
        return set()
    return {name for name in names if isinstance(name, str)}


def _fine(stamp: object) -> bool:
    """True for a folder stamp of a file system that keeps times finer than a second, by
    its ctime, which only the kernel sets (on one that keeps whole seconds, a change a
    second later may leave the same stamp)."""
    return isinstance(stamp, list) and len(stamp) == 4 and stamp[3] % 1_000_000_000 != 0


def look_between(
    conn: sqlite3.Connection, work: FolderWork, state: dict[str, Any], named: set[str]
) -> bool:
    """The look between (see the module docstring), filling ``work``; ``named`` are the
    names the journal says Taurus changed, looked at whatever the listing says. False
    when it cannot stand for a full look (no listing kept, or too much changed)."""
    kept = stored_entries(conn, work.key)
    if kept is None:
        return False
    entries = _listing(work.folder)
    links = [(str(name), str(target)) for name, target in state.get("links", [])]
    unlisted = _unlisted(state) | named
    work.unlisted = []
    if entries == kept and not unlisted:
        work.between, work.entries, work.links = True, entries, links
        return True
    fresh = {name for name, _ in entries.items() - kept.items()}  # new, or on another inode
    fresh |= unlisted
    gone = kept.keys() - entries.keys()
    if len(fresh) + len(gone) > BETWEEN_MAX:
        return False
    _look_at(conn, work, fresh | gone, links)
    work.entries = entries
    return True


def _look_at(conn: sqlite3.Connection, work: FolderWork, names: set[str], links: Links) -> None:
    """Stat ``names`` (entries of the folder made, replaced or removed since the last
    look) and compare the session files among them with their rows, filling ``work``."""
    relink = any(name in names for name, _ in links)
    found: Stamps = {}
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(work.folder, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            relink = True
        elif stat.S_ISREG(st.st_mode) and not name.startswith("."):
            found[path] = stamp(st)
    rows = rows_at(conn, [os.path.join(work.folder, n) for n in names if n.endswith(".json")])
    work.to_read, work.to_drop = [], []
    for path, sig in found.items():
        row = rows.get(path)
        if row is None or row[1:] != sig:
            work.to_read.append(path)
        if row is not None and row[1:] != sig:
            work.to_drop.append((row[0], path))
    work.to_drop += [(row[0], path) for path, row in rows.items() if path not in found]
    work.between, work.found = True, found
    work.links = _links(work.folder) if relink else links


def rows_at(conn: sqlite3.Connection, paths: list[str]) -> Known:
    """path -> (key, size, mtime_ns, inode) of the rows of those of ``paths`` that have one."""
    out: Known = {}
    for path in paths:
        row = conn.execute(
            "SELECT key, size, mtime_ns, inode FROM sessions WHERE path = ?", (stored_path(path),)
        ).fetchone()
        if row is not None:
            out[path] = tuple(row)
    return out


def _note_look(conn: sqlite3.Connection, work: FolderWork, found_digest: str | None) -> None:
    """Record a look that found the rows current, unless another process changed them
    since (best effort: a busy or read-only index is left as it is)."""
    conn.execute("PRAGMA busy_timeout = 50")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return
    finally:
        conn.execute("PRAGMA busy_timeout = 60000")
    try:
        if _number(folder_state(conn, work.key)) == work.prior:
            _save_state(conn, work, found_digest)
            if work.between or stored_entries(conn, work.key) != work.entries:
                _save_entries(conn, work.key, work.entries)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def known(conn: sqlite3.Connection, key: str, rows_only: bool = False) -> Known:
    """path -> (key, size, mtime_ns, inode) of every row of one folder: the stamps kept
    beside the rows, or (when there are none, or ``rows_only``) the rows themselves."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"stamps:{key}",)).fetchone()
    if row is not None and not rows_only:
        try:
            kept = marshal.loads(zlib.decompress(row[0]))
        except (TypeError, ValueError, EOFError, zlib.error):
            kept = None
        if isinstance(kept, dict):
            return kept
    out: Known = {}
    for row_key, path, size, mtime_ns, inode in conn.execute(
        "SELECT key, path, size, mtime_ns, inode FROM sessions WHERE folder = ?", (key,)
    ):
        out[disk_path(path)] = (row_key, size, mtime_ns, inode)
    return out


def _save_known(conn: sqlite3.Connection, key: str, kept: Known | None) -> None:
    """Keep the rows' stamps beside them; None: forget them (the rows are read instead)."""
    if kept is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (f"stamps:{key}",))
        return
    blob = zlib.compress(marshal.dumps(kept), 1)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"stamps:{key}", blob))


def diff(kept: Known, found: Stamps) -> tuple[list[str], list[tuple[int, str]]]:
    """(paths to read, (key, path) rows to drop) for one folder."""
    to_read = []
    to_drop = []
    for path, sig in found.items():
        row = kept.get(path)
        if row is None:
            to_read.append(path)
        elif row[1:] != sig:
            to_read.append(path)
            to_drop.append((row[0], path))
    for path, row in kept.items():
        if path not in found:
            to_drop.append((row[0], path))
    return to_read, to_drop


# -- reading and writing -------------------------------------------------------------------
class Readers(Workers):
    """Reads files for the index (in worker processes when there are many), their text
    compressed with the index's ``dictionary`` (see ``dictionary``)."""

    def __init__(self, count: int, dictionary: bytes | None = None) -> None:
        super().__init__(count, None, _reader_start, (dictionary,), hand_over=True)
        self.dictionary = use_dictionary(dictionary) if dictionary else 0

    def batches(self, files: list[tuple[int, str]], folder: str, archived: bool) -> Iterator[Batch]:
        """The rows of the files ``(key, path)``, a batch at a time, in no particular order."""
        from taurus_ops.store.index import rows  # reading files: only when there are some

        jobs = [
            (files[i : i + rows.BATCH], folder, archived, self.dictionary)
            for i in range(0, len(files), rows.BATCH)
        ]
        return self.map(rows.read_batch, jobs, chunk=1)  # a job is a batch of files


def _reader_start(dictionary: bytes | None) -> None:
    """A worker's start: behind the one process writing the tables, which every worker
    feeds and which is the slower side, for a core (a tenth off a build at 10,000
    sessions); and the dictionary known."""
    with contextlib.suppress(OSError):
        os.nice(READER_NICENESS)
    if dictionary:
        use_dictionary(dictionary)


def apply(
    conn: sqlite3.Connection,
    work: FolderWork,
    report: RefreshReport,
    readers: Readers,
    tell: Callable[[int], None] | None = None,
) -> None:
    """Drop and read what one folder's look found, in one transaction."""
    from taurus_ops.store.index import rows

    conn.execute("BEGIN IMMEDIATE")
    try:
        state = folder_state(conn, work.key)
        if _number(state) != work.prior:  # another process refreshed meanwhile
            _look_again(conn, work, state)
        kept = None if work.between else dict(work.known)
        dropped = {p for _, p in work.to_drop}
        for key, path in work.to_drop:
            drop(conn, key, work.key)
            if kept is not None:
                del kept[path]
        first = conn.execute("SELECT coalesce(max(key), 0) + 1 FROM sessions").fetchone()[0]
        files = list(enumerate(work.to_read, start=first))
        keys = {path: key for key, path in files}
        final = dict(work.found)
        whole = len(files) >= VOCAB_FROM  # else each new session's words are added
        new_words: set[bytes] = set()
        totals: Counter[tuple[str, str]] = Counter()
        for batch in readers.batches(files, work.key, work.archived):
            rows.write(conn, batch)
            totals.update(batch.totals)
            if not whole:
                for _, text in batch.words:
                    new_words |= words_in(text)
            for path, sig in batch.stamps.items():
                final[path] = sig
                if kept is not None:
                    kept[path] = (keys[path], *sig)
            for path in batch.gone:
                del final[path]
            report.changed += sum(1 for p in batch.stamps if p in dropped)
            report.added += sum(1 for p in batch.stamps if p not in dropped)
            if tell is not None:
                tell(len(batch.stamps) + len(batch.gone))
        report.removed += len(dropped - set(work.to_read))
        rows.add_totals(conn, work.key, totals)
        if whole:
            words.vocab_again(conn)
        elif new_words:
            words.add_vocab(conn, new_words)
        # a look between knows the stamps of what it stat'ed only: the kept stamps and the
        # digest go, and the next full look compares with the rows themselves
        _save_known(conn, work.key, kept)
        _save_entries(conn, work.key, work.entries)
        _save_state(conn, work, None if work.between else digest(final))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _look_again(conn: sqlite3.Connection, work: FolderWork, state: dict[str, Any] | None) -> None:
    """The look again, under the write lock, after another process's refresh: a look
    between again, or the files found compared with the rows as they are now."""
    work.prior = _number(state)
    if work.between:
        if state is not None and look_short(conn, work, state):
            return
        work.between = False
        work.mark = _mark(work.journal)
        work.directory, work.listed_ns = directory_stamp(work.folder), time.time_ns()
        work.looked_ns = work.listed_ns
        work.found, work.links, work.entries = scan(work.folder)
    work.known = known(conn, work.key)
    work.to_read, work.to_drop = diff(work.known, work.found)


def drop(conn: sqlite3.Connection, key: int, folder: str) -> None:
    """Remove one session's rows, its share of the folder's totals and its word-table row."""
    from taurus_ops.store.index import rows

    taken: Counter[tuple[str, str]] = Counter()
    session = conn.execute(
        "SELECT error, messages, created, updated FROM sessions WHERE key = ?", (key,)
    ).fetchone()
    if session is not None:
        for total, n in rows.session_totals(*session).items():
            taken[total] -= n
    for kind, name, n in conn.execute("SELECT kind, name, n FROM counts WHERE key = ?", (key,)):
        taken[kind, name] -= n
    for model, *counts in conn.execute(
        "SELECT model, input, output, cache_read, cache_creation FROM usage WHERE key = ?", (key,)
    ):
        for kind, n in zip(USAGE_KINDS, counts, strict=True):
            taken[kind, model] -= n
    rows.add_totals(conn, folder, taken)
    row = conn.execute("SELECT body FROM texts WHERE key = ?", (key,)).fetchone()
    if row is not None:
        conn.execute(
            "INSERT INTO words(words, rowid, text) VALUES ('delete', ?, ?)",
            (key, text_from_body(row[0])),
        )
    for table in ("texts", "counts", "usage"):
        conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
    conn.execute("DELETE FROM sessions WHERE key = ?", (key,))
