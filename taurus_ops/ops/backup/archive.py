"""Writing the ``.tar.gz``: one version of each file, hashed from the bytes archived.

Each file is opened once and read from that open file, which is hashed and archived
from the same bytes: a chat saving meanwhile replaces the file by rename, so the
backup holds one whole version, never a mix. The manifest is the last member. Gzip
runs on a second thread (zlib releases the GIL), as ``tar -czf`` overlaps tar and gzip.

A file checkpoint is checked against its name as it is read (a damaged one is left
out with a note, for the doctor, rather than failing every backup). One that is
hard-linked into several sessions' folders (a fork's, its parent's) is stored once:
the later names are tar hard links to the first, as ``tar`` itself stores them, so a
fork does not double the archive; the manifest lists each name with its sha256 and
``linkTo``, the member it links to.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import posixpath
import queue
import stat
import tarfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from taurus_ops.ops.backup.gather import Item
from taurus_ops.ops.backup.layout import COMPRESS_LEVEL, MANIFEST_NAME, Manifest
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import FILE_MODE, create_file


class _ThreadedGzip(io.RawIOBase):
    """A write-only gzip stream compressed on a second thread.

    zlib releases the GIL, so compressing one megabyte overlaps with reading,
    hashing and framing the next, much as ``tar -czf`` overlaps tar and gzip. An
    error in the compressor (a full disk) is raised by the next write or by finish().
    """

    CHUNK = 1 << 20

    def __init__(self, raw: IO[bytes], level: int, label: str = "") -> None:
        super().__init__()
        self.gz = gzip.GzipFile(
            filename=label, fileobj=raw, mode="wb", compresslevel=level, mtime=0
        )
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.buffer = bytearray()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="backup-gzip", daemon=True)
        self.thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.error is not None:
            raise self.error
        self.buffer += data
        if len(self.buffer) >= self.CHUNK:
            self.queue.put(bytes(self.buffer))
            self.buffer.clear()
        return len(data)

    def _work(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            if self.error is None:
                try:
                    self.gz.write(chunk)
                except BaseException as exc:  # handed to the writing thread
                    self.error = exc

    def finish(self) -> None:
        if self.buffer:
            self.queue.put(bytes(self.buffer))
            self.buffer.clear()
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.gz.close()

    def kill(self) -> None:
        self.error = self.error or OSError("stopped")
        self.queue.put(None)
        self.thread.join()


class _Member(tarfile.TarInfo):
    """A member whose name (or link target) is not valid UTF-8 gets a GNU header.

    A pax header could only carry such bytes with ``hdrcharset=BINARY``, which GNU tar
    before 1.35 warns about; the GNU header holds the exact bytes, and both tar and
    Python extract them as the name they were."""

    def tobuf(
        self,
        format: Literal[0, 1, 2] | None = tarfile.DEFAULT_FORMAT,
        encoding: str | None = tarfile.ENCODING,
        errors: str = "surrogateescape",
    ) -> bytes:
        if fmt.name_bytes(self.name) is not None or fmt.name_bytes(self.linkname) is not None:
            format = tarfile.GNU_FORMAT
        return super().tobuf(format, encoding, errors)


def _tarinfo(
    member: str, kind: str, size: int = 0, mtime: float = 0, st: os.stat_result | None = None
) -> tarfile.TarInfo:
    info = _Member(member)
    info.mtime = int(mtime)
    if st is not None:
        info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o700
    else:
        info.type = tarfile.REGTYPE
        info.mode = FILE_MODE
        info.size = size
    return info


def read_once(path: Path) -> tuple[bytes, os.stat_result]:
    """The whole file as one version: opened once (never through a symlink), read to the end."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), st


def _gzip_file(raw: IO[bytes], label: str = "") -> gzip.GzipFile:
    return gzip.GzipFile(
        filename=label, fileobj=raw, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0
    )


@dataclass
class _Members:
    """Adds items to an open tar stream, filling in the manifest as it goes."""

    tar: tarfile.TarFile
    manifest: Manifest
    notes: list[str] | None
    count: int = 0
    total: int = 0
    stored: set[str] = field(default_factory=set)  # members of the files written so far
    # checkpoints with more than one link: (st_dev, st_ino) -> the first one's manifest entry
    inodes: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        if item.kind == "dir":
            self.add_dir(item)
        elif item.kind == "link":
            self.add_link(item)
        else:
            self.add_file(item)

    def note(self, text: str) -> None:
        if self.notes is not None:
            self.notes.append(text)

    def add_dir(self, item: Item) -> None:
        try:
            st = os.stat(item.path)
        except FileNotFoundError:
            return
        self.tar.addfile(_tarinfo(item.member, "dir", mtime=st.st_mtime, st=st))

    def add_link(self, item: Item) -> None:
        goal = posixpath.normpath(posixpath.join(posixpath.dirname(item.member), item.link))
        if goal not in self.stored:  # its session was left out or is gone
            self.note(f"skipped link {item.path} (its session is not in this backup)")
            return
        info = _Member(item.member)
        info.type = tarfile.SYMTYPE
        info.linkname = item.link
        info.mode = 0o777
        info.uname = info.gname = ""
        with contextlib.suppress(OSError):
            info.mtime = int(os.lstat(item.path).st_mtime)
        self.tar.addfile(info)
        self.manifest.links.append(
            {**fmt.name_fields("path", item.member), **fmt.name_fields("target", item.link)}
        )

    def add_file(self, item: Item) -> None:
        if item.checkpoint and self.add_hard_link(item):
            return
        try:
            data, st = read_once(item.path)
        except FileNotFoundError:
            return  # removed (archived, deleted) while backing up
        except PermissionError as exc:
            self.note(f"skipped {item.path} ({exc.strerror})")
            return
        digest = hashlib.sha256(data).hexdigest()
        if item.checkpoint and digest != item.path.name:
            self.note(
                f"skipped checkpoint {item.path} (its content does not match its name; "
                "taurus-ops doctor looks after it)"
            )
            return
        self.tar.addfile(
            _tarinfo(item.member, "file", len(data), st.st_mtime, st), io.BytesIO(data)
        )
        entry = {
            **fmt.name_fields("path", item.member),
            "size": len(data),
            "sha256": digest,
            "mtime": int(st.st_mtime),
        }
        self.manifest.files.append(entry)
        if item.checkpoint and st.st_nlink > 1:
            self.inodes.setdefault((st.st_dev, st.st_ino), entry)
        self.total += len(data)
        self.count += 1
        self.stored.add(item.member)

    def add_hard_link(self, item: Item) -> bool:
        """Store a checkpoint whose file is already in the archive as a hard link to it."""
        try:
            st = os.lstat(item.path)
        except FileNotFoundError:
            return True  # pruned while backing up
        first = self.inodes.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if first is None or first["sha256"] != item.path.name:
            return False
        target = fmt.name_from(first, "path")
        info = _tarinfo(item.member, "file", 0, st.st_mtime, st)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        self.tar.addfile(info)
        self.manifest.files.append(
            {
                **fmt.name_fields("path", item.member),
                "size": first["size"],
                "sha256": first["sha256"],
                "mtime": int(st.st_mtime),
                **fmt.name_fields("linkTo", target),
            }
        )
        self.total += first["size"]
        self.count += 1
        self.stored.add(item.member)
        return True

    def add_manifest(self, name: str) -> None:
        body = fmt.dumps(self.manifest.as_json())
        self.tar.addfile(
            _tarinfo(name, "file", len(body), datetime.now(UTC).timestamp()), io.BytesIO(body)
        )


def write_archive(
    target: Path,
    items: list[Item],
    manifest: Manifest,
    manifest_name: str = MANIFEST_NAME,
    threaded: bool = True,
    notes: list[str] | None = None,
    label: str = "",
    fd: int | None = None,
) -> tuple[int, int]:
    """Write the archive to ``target`` (which must not be visible yet); (files, bytes).

    ``fd``: ``target`` already created (exclusively) and open for writing.

    A file that cannot be read (another user's, say) is left out with a note, as tar
    does, rather than failing the whole backup."""
    if fd is None:
        fd = create_file(target, FILE_MODE)  # exclusive, never through a planted link
    with os.fdopen(fd, "wb") as raw:
        threaded_sink = _ThreadedGzip(raw, COMPRESS_LEVEL, label) if threaded else None
        sink: IO[bytes] = threaded_sink if threaded_sink is not None else _gzip_file(raw, label)  # type: ignore[assignment]
        try:
            with tarfile.open(
                fileobj=sink,
                mode="w|",
                format=tarfile.PAX_FORMAT,
                encoding="utf-8",
                errors="surrogateescape",
            ) as tar:
                members = _Members(tar, manifest, notes)
                for item in items:
                    members.add(item)
                members.add_manifest(manifest_name)
            if threaded_sink is not None:
                threaded_sink.finish()
            else:
                sink.close()
        except BaseException:
            if threaded_sink is not None:
                threaded_sink.kill()
            raise
        raw.flush()
        os.fsync(raw.fileno())
    return members.count, members.total
