"""Which files, folders and names a backup holds, in a stable order.

Lock and temporary files are left out, and so are the quarantine, the backup folder's
own backups (a backup inside a backed-up folder would otherwise hold all the earlier
ones) and any root nested in another (stored once, as its own root). Names (the
tutorial's ``NAME.json`` symlinks in the session directory) are kept as links with a
relative target, and only when their session is in the same backup. The file
checkpoints held are the folders of the sessions in the backup (by the id in each
file's name), each blob named by its sha256; nothing else in the checkpoint store.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.ops.backup.layout import BACKUP_RE, CHECKPOINTS, Root
from taurus_ops.store.atomic import LINK_TMP_SUFFIX, is_temp_name
from taurus_ops.store.checkpoints import SHA_RE, CheckpointStore
from taurus_ops.store.lock import is_lock_name
from taurus_ops.store.refs import id_from_file_name

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config


@dataclass
class Item:
    path: Path
    member: str
    kind: str  # file | dir | link
    link: str = ""  # for a link: its target as stored (relative)
    checkpoint: bool = False  # a file checkpoint (a blob named by its sha256)


def skip_name(name: str) -> bool:
    return is_lock_name(name) or is_temp_name(name) or name.endswith(LINK_TMP_SUFFIX)


def gather(config: Config, roots: list[Root], notes: list[str]) -> list[Item]:
    """Every file, folder and name link to archive, in a stable order."""
    gatherer = _Gatherer(config, roots, notes)
    for root in roots:
        gatherer.add_root(root)
    gatherer.add_names()
    return gatherer.items


@dataclass
class _Gatherer:
    config: Config
    roots: list[Root]
    notes: list[str]
    items: list[Item] = field(default_factory=list)
    sessions_in_backup: dict[str, str] = field(default_factory=dict)  # real path -> member
    name_links: list[tuple[Path, str]] = field(default_factory=list)
    session_ids: set[str] = field(default_factory=set)  # of the session files gathered

    def __post_init__(self) -> None:
        self.backup_dir = os.path.realpath(self.config.settings.backup.directory)
        self.excluded = {os.path.realpath(Path(self.config.home) / "quarantine"), self.backup_dir}

    def unreadable(self, exc: OSError) -> None:  # a folder os.walk cannot list
        self.notes.append(f"skipped {exc.filename} ({exc.strerror or exc})")

    def add_root(self, root: Root) -> None:
        base = Path(root.path)
        if root.kind == CHECKPOINTS:
            self.add_checkpoints(root)
            return
        if not root.is_dir:
            self.items.append(Item(base, root.member, "file"))
            return
        # a root nested in this one (an archive inside the session folder) is its own
        # root: walking it here too would store every file twice
        others = {os.path.realpath(r.path) for r in self.roots if r is not root}
        self.items.append(Item(base, root.member, "dir"))
        for folder, dirs, files in os.walk(base, onerror=self.unreadable):
            dirs[:] = sorted(
                d
                for d in dirs
                if os.path.realpath(os.path.join(folder, d)) not in self.excluded | others
                and not os.path.islink(os.path.join(folder, d))
            )
            rel_folder = Path(folder).relative_to(base)
            for d in dirs:
                member = f"{root.member}/{(rel_folder / d).as_posix()}"
                self.items.append(Item(Path(folder) / d, member, "dir"))
            self.add_files(root, Path(folder), rel_folder, sorted(files), others)

    def add_files(
        self, root: Root, folder: Path, rel_folder: Path, names: list[str], others: set[str]
    ) -> None:
        real_base = os.path.realpath(root.path)
        # backups kept in a folder that is backed up (backup.directory inside the
        # archive) are not stored again: each would hold all the earlier ones
        in_backup_dir = os.path.normpath(os.path.join(real_base, rel_folder)) == self.backup_dir
        other_names = {os.path.basename(r) for r in others}
        for name in names:
            if skip_name(name) or (in_backup_dir and BACKUP_RE.match(name)):
                continue
            path = folder / name
            if name in other_names and os.path.realpath(path) in others:
                continue
            member = f"{root.member}/{(rel_folder / name).as_posix()}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                at_top = folder == Path(root.path)
                if root.kind == "sessions" and at_top and name.endswith(".json"):
                    self.name_links.append((path, member))
                else:
                    self.notes.append(f"skipped link {path} (not a session name)")
            elif stat.S_ISREG(st.st_mode):
                self.items.append(Item(path, member, "file"))
                if root.kind in ("sessions", "archive"):
                    real = os.path.normpath(os.path.join(real_base, rel_folder, name))
                    self.sessions_in_backup[real] = member
                    if name.endswith(".json"):
                        self.session_ids.add(id_from_file_name(name))
            else:
                self.notes.append(f"skipped {path} (not a regular file)")

    def add_checkpoints(self, root: Root) -> None:
        """The checkpoint folder of each session gathered (the root comes last), and the
        blobs in it; a link or anything not named by a sha256 is left out."""
        store = CheckpointStore(Path(root.path))
        self.items.append(Item(Path(root.path), root.member, "dir"))
        for sid in sorted(self.session_ids):
            folder = store.folder(sid)
            try:
                st = os.lstat(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                self.notes.append(f"skipped {folder} (not a folder)")
                continue
            try:
                names = sorted(n for n in os.listdir(folder) if SHA_RE.match(n))
            except OSError as exc:
                self.unreadable(exc)
                continue
            member = f"{root.member}/{folder.name}"
            self.items.append(Item(folder, member, "dir"))
            for name in names:
                path = folder / name
                try:
                    blob = os.lstat(path)
                except FileNotFoundError:
                    continue  # pruned meanwhile
                if stat.S_ISREG(blob.st_mode):
                    self.items.append(Item(path, f"{member}/{name}", "file", checkpoint=True))
                else:
                    self.notes.append(f"skipped {path} (not a regular file)")

    def add_names(self) -> None:
        # a name is stored with a relative target (however it was made: `ln -s` with an
        # absolute path, into project-a/, into the archive), so plain tar restores it
        # anywhere; a name whose session is not in this backup is left out
        for path, member in self.name_links:
            target = self.sessions_in_backup.get(os.path.realpath(path))
            if target is None:
                self.notes.append(f"skipped link {path} (its session is not in this backup)")
                continue
            relative = posixpath.relpath(target, posixpath.dirname(member))
            self.items.append(Item(path, member, "link", relative))
