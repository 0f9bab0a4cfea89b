"""Resolving what a user types into one session file, without ever leaving the store.

A reference may be an exact id (``abc123``), a unique id prefix (``abc``), a file
name (``2025-01-18_abc123.json``), a name symlink (``password-reset`` for
``password-reset.json -> 2025-01-18_abc123.json``) or a path inside the session or
archive directory. Ids and names must match ``[A-Za-z0-9_-]{1,64}``; a path that
leads outside those directories is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from taurus_ops.errors import AmbiguousReference, InvalidReference, SessionNotFound
from taurus_ops.store import format as fmt


@dataclass(frozen=True)
class SessionRef:
    path: Path  # the real session file
    session_id: str
    archived: bool
    via: str  # id, prefix, file, name or path


def id_from_file_name(name: str) -> str:
    """The session id a file name gives: ``abc123`` for ``2025-01-18_abc123.json``.

    An id is text: a byte of a name that is not valid UTF-8 reads as U+FFFD (no id or
    name a user types can hold one, and the session file must stay valid UTF-8).
    """
    parts = fmt.split_file_name(name)
    return fmt.clean_text(parts[1] if parts else name[:-5] if name.endswith(".json") else name)


def is_session_file(entry: os.DirEntry[str]) -> bool:
    """A regular, visible ``*.json`` file (name symlinks and temp files are not sessions)."""
    name = entry.name
    return (
        name.endswith(".json") and not name.startswith(".") and entry.is_file(follow_symlinks=False)
    )


def scan(directory: Path, containing: str | None = None) -> list[Path]:
    """The session files directly in ``directory``; with ``containing``, only those whose
    name holds it (a cheap test on the name first: looking an id up among 100,000 files
    makes a path of the few that can match, not of every one)."""
    try:
        with os.scandir(directory) as it:
            if containing is not None:
                return [Path(e.path) for e in it if containing in e.name and is_session_file(e)]
            return [Path(e.path) for e in it if is_session_file(e)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def inside(path: Path, folder: Path) -> bool:
    try:
        real = Path(os.path.realpath(path))
        base = Path(os.path.realpath(folder))
    except OSError:
        return False
    return real == base or base in real.parents


def check_token(text: str, what: str = "session id or name") -> str:
    if not fmt.is_valid_token(text):
        raise InvalidReference(
            f"{text!r} is not a valid {what}: use 1-64 letters, digits, '-' or '_'"
        )
    return text


class Resolver:
    def __init__(self, session_dir: Path, archive_dir: Path | None) -> None:
        self.session_dir = session_dir
        self.archive_dir = archive_dir

    def _dirs(self, include_archive: bool) -> list[tuple[Path, bool]]:
        dirs = [(self.session_dir, False)]
        if include_archive and self.archive_dir is not None:
            dirs.append((self.archive_dir, True))
        return dirs

    def _where(self, real: Path) -> bool | None:
        """False if ``real`` is in the session dir, True if in the archive, None if neither."""
        if inside(real, self.session_dir):
            return False
        if self.archive_dir is not None and inside(real, self.archive_dir):
            return True
        return None

    def resolve(self, ref: str, include_archive: bool = True) -> SessionRef:
        ref = ref.strip()
        if not ref:
            raise InvalidReference("an empty session reference")
        if any(ord(ch) < 32 for ch in ref):
            raise InvalidReference(f"{ref!r} holds control characters; not a session reference")
        if "/" in ref or "\\" in ref or ref.startswith((".", "~")):
            return self._by_path(ref)
        if ref.endswith(".json"):
            check_token(ref[:-5], "session file name")
            return self._by_file_name(ref, include_archive)
        check_token(ref)
        exact: list[SessionRef] = []
        prefixed: list[SessionRef] = []
        for folder, archived in self._dirs(include_archive):
            for path in scan(folder, containing=ref):  # an id holding ``ref``: a name holding it
                sid = id_from_file_name(path.name)
                if sid == ref:
                    exact.append(SessionRef(path, sid, archived, "id"))
                elif sid.startswith(ref):
                    prefixed.append(SessionRef(path, sid, archived, "prefix"))
        if exact:
            active = [r for r in exact if not r.archived] or exact
            if len(active) > 1:
                names = ", ".join(sorted(r.path.name for r in active))
                raise AmbiguousReference(
                    f"id {ref!r} is used by several files: {names} (run taurus-ops doctor)"
                )
            return active[0]
        named = self._by_name(ref)
        if named is not None:
            return named
        if len(prefixed) == 1:
            return prefixed[0]
        if prefixed:
            ids = ", ".join(sorted({r.session_id for r in prefixed})[:10])
            raise AmbiguousReference(
                f"{ref!r} matches {len(prefixed)} sessions ({ids}); type more of the id"
            )
        raise SessionNotFound(
            f"no session matches {ref!r} in {self.session_dir} (see `taurus-ops list`)"
        )

    def _by_name(self, name: str) -> SessionRef | None:
        link = self.session_dir / f"{name}.json"
        if not link.is_symlink():
            return None
        if not link.exists():
            raise SessionNotFound(f"name {name!r} points to a missing file (run taurus-ops doctor)")
        real = Path(os.path.realpath(link))
        archived = self._where(real)
        if archived is None:
            raise InvalidReference(
                f"name {name!r} points outside the session directory; refusing it"
            )
        return SessionRef(real, id_from_file_name(real.name), archived, "name")

    def _by_file_name(self, name: str, include_archive: bool) -> SessionRef:
        for folder, archived in self._dirs(include_archive):
            candidate = folder / name
            if candidate.is_symlink():
                found = self._by_name(name[:-5]) if folder == self.session_dir else None
                if found is not None:
                    return found
                continue
            if candidate.is_file():
                return SessionRef(candidate, id_from_file_name(name), archived, "file")
        raise SessionNotFound(f"no session file {name} in {self.session_dir}")

    def _by_path(self, ref: str) -> SessionRef:
        path = Path(os.path.expanduser(ref))
        if not path.is_absolute():
            path = Path.cwd() / path
        real = Path(os.path.realpath(path))
        archived = self._where(real)
        if archived is None:
            raise InvalidReference(
                f"{ref!r} is outside the session directory {self.session_dir}; "
                "copy the file into it first"
            )
        if not real.is_file() or not real.name.endswith(".json"):
            raise SessionNotFound(f"no session file at {ref}")
        return SessionRef(real, id_from_file_name(real.name), archived, "path")
