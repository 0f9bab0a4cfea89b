"""Carrying out a repair plan: the quarantine first, then the change.

Each session file is repaired under its own session lock (a chat that opens it
meanwhile is refused, and a chat that holds it makes the doctor skip it), and only
if it still holds the exact bytes the scan read. Its original bytes are written to
``<home>/quarantine/<YYYY-MM-DD>/`` (0700 folders, 0600 files, a ``MANIFEST.jsonl``
line each) and fsynced before the file is replaced or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from taurus_ops.errors import SessionLocked, TaurusError
from taurus_ops.ops.doctor import plan as P
from taurus_ops.ops.doctor.checks import RECOVERED_FROM, Problem, Scan
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import (
    atomic_create,
    atomic_write,
    ensure_dir,
    fsync_dir,
    open_append,
    point_link,
)
from taurus_ops.store.lock import FileLock, SessionLock
from taurus_ops.store.move import names_leading_to, repoint_names

QUARANTINE_DIR = "quarantine"
MANIFEST = "MANIFEST.jsonl"
_SLOT_TRIES = 100  # names taken between looking and writing before giving up


class Changed(TaurusError):
    """A file changed between the scan and the repair."""


class Quarantine:
    """``<home>/quarantine/<YYYY-MM-DD>/``: originals kept byte for byte, with a log."""

    def __init__(self, home: Path, day: str | None = None) -> None:
        self.root = Path(home) / QUARANTINE_DIR
        self.folder = self.root / (day or datetime.now().strftime("%Y-%m-%d"))
        self.used = False
        self._index: dict[tuple[str, str], Path] | None = None  # (original, sha256) -> copy

    def _slot(self, original: Path) -> Path:
        if self.folder.is_symlink():  # Taurus makes each day's folder itself: never a link
            raise TaurusError(f"{self.folder} is a symbolic link; not writing the quarantine there")
        ensure_dir(self.folder)
        base = original.name.lstrip(".") or "unnamed"
        candidate = self.folder / base
        n = 1
        while candidate.exists() or candidate.is_symlink():
            candidate = self.folder / f"{base}.{n}"
            n += 1
        return candidate

    def keep_bytes(self, original: Path, raw: bytes, reason: str) -> Path:
        sha256 = hashlib.sha256(raw).hexdigest()
        earlier = self._kept(original, sha256)
        if earlier is not None:  # a run cut off after keeping it: one copy is enough
            self.used = True
            return earlier
        for _ in range(_SLOT_TRIES):
            dest = self._slot(original)
            try:
                atomic_create(dest, raw)  # 0600, fsynced, never over what holds the slot
            except FileExistsError:
                continue  # taken since _slot looked: the next one
            break
        else:
            raise TaurusError(f"no free name in {self.folder} for {original.name}")
        self._log(original, dest, reason, sha256=sha256, size=len(raw))
        if self._index is not None:
            self._index[(str(original), sha256)] = dest
        return dest

    def _kept(self, original: Path, sha256: str) -> Path | None:
        """Where today's quarantine already holds these bytes of ``original``, if it does."""
        if self._index is None:
            self._index = {}
            try:
                lines = (self.folder / MANIFEST).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                    key = (str(entry.get("original")), entry["sha256"])
                    self._index[key] = Path(str(entry.get("quarantined")))
        kept = self._index.get((str(original), sha256))
        try:
            if kept is not None and hashlib.sha256(kept.read_bytes()).hexdigest() == sha256:
                return kept
        except OSError:
            pass
        return None

    def keep_link(self, link: Path, target: str | None, reason: str) -> Path:
        for _ in range(_SLOT_TRIES):
            dest = self._slot(link)
            try:
                os.symlink(target or "", dest)  # never replaces: EEXIST if the slot is taken
            except FileExistsError:
                continue
            break
        else:
            raise TaurusError(f"no free name in {self.folder} for {link.name}")
        fsync_dir(dest.parent)
        self._log(link, dest, reason, linkTarget=target)
        return dest

    def _log(self, original: Path, dest: Path, reason: str, **extra: object) -> None:
        self.used = True
        entry = fmt.clean(  # valid UTF-8 JSON; a name that is not UTF-8 keeps its bytes too
            {
                "time": fmt.now_iso(),
                **fmt.name_fields("original", str(original)),
                **fmt.name_fields("quarantined", str(dest)),
                "reason": reason,
                **extra,
            }
        )
        fd = open_append(self.folder / MANIFEST)  # never through a link planted there
        try:
            os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_expected(path: Path, expect: str | None) -> bytes:
    raw = path.read_bytes()
    if expect is not None and hashlib.sha256(raw).hexdigest() != expect:
        raise Changed(f"{path} changed since the scan; run the doctor again")
    return raw


@contextlib.contextmanager
def _session_lock(path: Path) -> Iterator[SessionLock]:
    lock = SessionLock(path)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def _create_new(path: Path, data: bytes) -> None:
    """Write a new session file; never over an existing one.

    A file already there that an earlier run wrote from the same source (the same
    ``recoveredFrom``) is that very file: it is left as it is, so a repair run again
    after a crash writes nothing twice.
    """
    if path.exists() or path.is_symlink():
        if not path.is_symlink() and _origin_of(path.read_bytes()) == _origin_of(data) is not None:
            return
        raise TaurusError(f"{path} already exists; not overwriting it")
    ensure_dir(path.parent)
    try:
        atomic_create(path, data)  # never over a file (or link) of that name
    except FileExistsError:
        raise TaurusError(f"{path} already exists; not overwriting it") from None


def _origin_of(raw: bytes) -> object:
    try:
        data = fmt.loads(raw)
    except ValueError:
        return None
    return data.get(RECOVERED_FROM) if isinstance(data, dict) else None


def apply_plan(plan: P.Plan, scan: Scan, quarantine: Quarantine) -> None:
    """Carry out ``plan``; each problem's ``status`` and ``outcome`` say what happened."""
    changed_files = False
    for action in plan.ordered():
        try:
            note = _apply(action, scan, quarantine)
            changed_files = changed_files or action.kind not in (
                P.CHMOD,
                P.REMOVE_LOCK,
                P.INDEX,
                P.CHECKPOINT,
            )
        except SessionLocked as exc:
            _mark(
                action.problems, "skipped", f"opened by a chat meanwhile (pid {exc.pid}); run again"
            )
        except Changed as exc:
            _mark(action.problems, "skipped", str(exc))
        except FileNotFoundError as exc:
            _mark(action.problems, "skipped", f"gone since the scan: {exc.filename or exc}")
        except (OSError, TaurusError, ValueError) as exc:
            _mark(action.problems, "failed", str(exc).splitlines()[0] if str(exc) else repr(exc))
        else:
            _mark(action.problems, "fixed", note)
    if changed_files and scan.index is None:
        _refresh_index(scan)


def _mark(problems: list[Problem], status: str, outcome: str) -> None:
    for problem in problems:
        if problem.status in ("found",) or status != "fixed":
            problem.status = status
            problem.outcome = outcome


def _apply(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    """Carry out one action; returns what was done."""
    do = _ACTIONS.get(action.kind)
    if do is None:  # pragma: no cover
        raise ValueError(f"unknown action {action.kind}")
    return do(action, scan, quarantine)


def _chmod(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    assert action.mode is not None
    os.chmod(action.path, action.mode, follow_symlinks=False)
    return f"mode is now {action.mode:04o}"


def _remove_lock(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    # take it ourselves first: if a chat grabbed it meanwhile this refuses
    FileLock(action.path).acquire().release()
    return "removed"


def _rewrite(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    assert action.data is not None
    path = action.path
    with _session_lock(path):
        raw = _read_expected(path, action.expect)
        kept = quarantine.keep_bytes(path, raw, "damaged: " + action.summary)
        for new_path, data in action.extra_files:
            _create_new(new_path, data)
        atomic_write(path, action.data)
    extra = (
        "; wrote " + ", ".join(p.name for p, _ in action.extra_files) if action.extra_files else ""
    )
    return f"repaired; the original is in {kept}{extra}"


def _quarantine(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    path = action.path
    with _session_lock(path):
        raw = _read_expected(path, action.expect)
        kept = quarantine.keep_bytes(path, raw, action.summary)
        for new_path, data in action.extra_files:
            _create_new(new_path, data)
        names = names_leading_to(scan.session_dir, path)
        if action.target is not None:  # an older copy: its names follow the kept one
            repoint_names(scan.session_dir, path, action.target)
            names = []
        for link in names:
            quarantine.keep_link(link, os.readlink(link), f"a name of {path.name}")
            link.unlink()
        path.unlink()
        fsync_dir(path.parent)
    called = "name" if len(names) == 1 else "names"
    gone = f" (and its {called} {', '.join(n.name for n in names)})" if names else ""
    return f"moved to {kept}{gone}"


def _rename(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    assert action.data is not None and action.target is not None
    path = action.path
    with _session_lock(path):
        raw = _read_expected(path, action.expect)
        kept = quarantine.keep_bytes(path, raw, "duplicate id: " + action.summary)
        _create_new(action.target, action.data)
        for new_path, data in action.extra_files:
            _create_new(new_path, data)
        repoint_names(scan.session_dir, path, action.target)
        path.unlink()
        fsync_dir(path.parent)
    return f"now {action.target.name}; the original is in {kept}"


def _promote(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    assert action.data is not None and action.target is not None
    path, target = action.path, action.target
    with _session_lock(target):
        raw_temp = _read_expected(path, action.expect)
        kept_temp = quarantine.keep_bytes(path, raw_temp, "a temporary file made the session")
        note = ""
        if target.exists():
            kept = quarantine.keep_bytes(
                target, target.read_bytes(), "replaced by a newer temporary file"
            )
            note = f"; the old version is in {kept}"
        atomic_write(target, action.data)
        path.unlink()
        fsync_dir(path.parent)
    return f"{target.name} now holds the newer version (copy in {kept_temp}){note}"


def _temp(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    path = action.path
    raw = _read_expected(path, action.expect) if not path.is_symlink() else b""
    kept = quarantine.keep_bytes(path, raw, "a temporary file left by an interrupted save")
    path.unlink()
    return f"moved to {kept}"


def _link_repoint(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    assert action.target is not None
    quarantine.keep_link(action.path, action.link_target, "a dangling name, re-pointed")
    point_link(action.path, Path(action.target))
    return f"now points to {action.target}"


def _link_remove(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    path = action.path
    if not path.is_symlink():
        raise Changed(f"{path} is no longer a link")
    kept = quarantine.keep_link(path, action.link_target, action.summary)
    path.unlink()
    return f"removed (recorded in {kept})"


def _checkpoint(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    from taurus_ops.ops.doctor.checkpoint_repair import apply_checkpoint

    return apply_checkpoint(action, scan, quarantine)


def _index(action: P.Action, scan: Scan, quarantine: Quarantine) -> str:
    index = scan.index
    if index is None:
        return "nothing to do"
    rebuild = any(p.code == "index" for p in action.problems)
    try:
        (index.rebuild if rebuild else index.refresh)()
    finally:
        index.close()
    return "rebuilt" if rebuild else "refreshed"


_ACTIONS: dict[str, Callable[[P.Action, Scan, Quarantine], str]] = {
    P.CHMOD: _chmod,
    P.REMOVE_LOCK: _remove_lock,
    P.REWRITE: _rewrite,
    P.QUARANTINE: _quarantine,
    P.RENAME: _rename,
    P.PROMOTE: _promote,
    P.TEMP: _temp,
    P.LINK_REPOINT: _link_repoint,
    P.LINK_REMOVE: _link_remove,
    P.CHECKPOINT: _checkpoint,
    P.INDEX: _index,
}


def _refresh_index(scan: Scan) -> None:
    """Bring an existing index up to date after files changed (so a second run finds it current)."""
    try:
        from taurus_ops.store.index import Index
    except ImportError:
        return
    index = Index.for_dirs(scan.home, scan.session_dir, scan.archive_dir)
    if not index.path.exists():
        return
    try:
        index.refresh()
    except Exception:  # the index is a cache; the next search rebuilds it
        pass
    finally:
        index.close()
