"""Checking a backup: every member safe, every checksum and size as the manifest says.

``verify_archive`` reads the whole archive once (streaming), then runs small named
checks of the manifest against what was read: the roots, the files, the names, the
hard links. A file checkpoint must also be what its name says (its sha256), and be
``<folder>/<sha256>`` under the checkpoints root; a hard link is allowed only from one
checkpoint to an earlier one of the same name, as the manifest lists it. Restore
writes nothing from an archive that fails any of them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.backup.layout import (
    CHECKPOINTS,
    KINDS,
    MANIFEST_FORMAT,
    MANIFEST_MAX,
    MANIFEST_NAME,
    BackupError,
    checkpoint_problem,
    member_problem,
    norm,
    reason,
)
from taurus_ops.ops.context import JobResult
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext

__all__ = ["MANIFEST_MAX", "VerifyReport", "VerifyRequest", "iter_files", "run", "verify_archive"]

Sum = tuple[int, str]  # (size, sha256)


@dataclass
class VerifyReport(JobResult):
    path: Path
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    files: int = 0
    bytes: int = 0
    source: str = ""  # where the archive came from, when not ``path`` itself (a remote)

    @property
    def shown(self) -> str:
        return self.source or str(self.path)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.shown,
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "bytes": self.bytes,
        }


@dataclass
class _Read:
    """What one pass over the archive found."""

    seen: dict[str, Sum] = field(default_factory=dict)  # regular files
    links: dict[str, str] = field(default_factory=dict)  # name -> target
    hard_links: dict[str, str] = field(default_factory=dict)  # name -> the member it links to
    dirs: set[str] = field(default_factory=set)
    manifest: tuple[str, bytes, Sum] | None = None  # the last manifest so far


def verify_archive(path: Path) -> VerifyReport:
    """Read the whole archive: every member safe, every checksum and size as the manifest says."""
    report = VerifyReport(Path(path))
    read = _read_archive(Path(path), report)
    if read is None:
        return report
    manifest = _parse_manifest(read, report)
    if manifest is None:
        return report
    report.manifest = manifest
    roots = _check_roots(manifest["roots"], report)
    blobs = [member for member, kind in roots if kind == CHECKPOINTS]
    listed = _check_files(manifest["files"], read, [m for m, _ in roots], blobs, report)
    _check_links(manifest.get("links", []), read.links, listed, report)
    _check_hard_links(read.hard_links, blobs, report)
    report.ok = not report.problems
    return report


# -- one pass over the archive ----------------------------------------------------------------
def _read_archive(path: Path, report: VerifyReport) -> _Read | None:
    """Every member's checksum; None (with the problem noted) when the archive is unreadable."""
    read = _Read()
    try:
        # gzip.GzipFile (not tarfile's own stream) checks the CRC and length at the end,
        # so an archive cut short is reported as such wherever the cut falls
        with (
            open(path, "rb") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r|", encoding="utf-8", errors="surrogateescape") as tar,
        ):
            for info in tar:
                _take(tar, info, read, report)
            while gz.read(1 << 20):  # tar's end padding; then the gzip trailer is checked
                pass
    except FileNotFoundError:
        report.problems.append(f"no such file: {path}")
        return None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        report.problems.append(f"unreadable archive: {reason(exc)}")
        return None
    return read


def _take(tar: tarfile.TarFile, info: tarfile.TarInfo, read: _Read, report: VerifyReport) -> None:
    name = norm(info.name) if info.name else ""
    problem = member_problem(info)
    if problem:
        report.problems.append(problem)
        return
    if name in read.seen or name in read.links:
        report.problems.append(f"{name!r}: appears twice")
        return
    if info.isdir():
        read.dirs.add(name)
        return
    if info.issym():
        read.links[name] = info.linkname
        return
    if info.islnk():
        target = norm(info.linkname)
        if target not in read.seen or target in read.hard_links:
            report.problems.append(
                f"{name!r}: hard link to {target!r}, not a file stored before it"
            )
            return
        read.seen[name] = read.seen[target]
        read.hard_links[name] = target
        return
    keep = PurePosixPath(name).name == MANIFEST_NAME and info.size <= MANIFEST_MAX
    body, summed = _hash_member(tar, info, keep)
    if not keep:
        read.seen[name] = summed
        return
    # the manifest is written last: an earlier file of that name (a backup once
    # extracted into the sessions) is an ordinary file
    if read.manifest is not None:
        earlier, _, earlier_sum = read.manifest
        if earlier == name or earlier in read.seen:
            report.problems.append(f"{earlier!r}: appears twice")
        read.seen[earlier] = earlier_sum
    read.manifest = (name, body, summed)


def _hash_member(tar: tarfile.TarFile, info: tarfile.TarInfo, keep: bool) -> tuple[bytes, Sum]:
    """The member's (size, sha256), read in chunks; its bytes too when ``keep``."""
    handle = tar.extractfile(info)
    assert handle is not None
    digest = hashlib.sha256()
    size = 0
    body = bytearray()
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        if keep:
            body.extend(chunk)
    return bytes(body), (size, digest.hexdigest())


# -- the checks ---------------------------------------------------------------------------------
def _parse_manifest(read: _Read, report: VerifyReport) -> dict[str, Any] | None:
    if read.manifest is None:
        report.problems.append("no manifest (not a taurus-ops backup)")
        return None
    try:
        manifest = fmt.loads(read.manifest[1])
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a taurus-ops manifest")
        lists = (manifest["files"], manifest["roots"], manifest.get("links", []))
        if not all(isinstance(item, list) for item in lists):
            raise ValueError("files, roots and links must be lists")
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"manifest unreadable: {reason(exc)}")
        return None
    return manifest


def _check_roots(roots: list[Any], report: VerifyReport) -> list[tuple[str, str]]:
    """Each root a known kind with a safe member path; returns (member, kind) of each."""
    members = []
    for root in roots:
        try:
            if not isinstance(root, dict) or root.get("kind") not in KINDS:
                raise ValueError("unknown kind")
            root["member"] = fmt.name_from(root, "member")  # a name not UTF-8: its bytes
            if not root["member"]:
                raise ValueError("no member")
        except (KeyError, ValueError):
            report.problems.append(f"manifest: unknown root {root!r}")
            continue
        member = norm(root["member"])
        bad = member_problem(tarfile.TarInfo(member))
        if bad:
            report.problems.append(f"manifest root {bad}")
        members.append((member, str(root["kind"])))
    return members


def _file_entry(entry: Any) -> tuple[str, int, str]:
    """(name, size, sha256) of a manifest file entry; raises on a malformed one."""
    entry["path"] = fmt.name_from(entry, "path")  # a name not UTF-8: its exact bytes
    name = norm(entry["path"])
    size, digest = int(entry["size"]), str(entry["sha256"])
    float(entry.get("mtime", 0))  # restore compares it with the file on disk
    return name, size, digest


def _under(name: str, roots: list[str]) -> str | None:
    """The root ``name`` is in (the longest), or None."""
    inside = [r for r in roots if name == r or name.startswith(r + "/")]
    return max(inside, key=len) if inside else None


def _check_files(
    entries: list[Any], read: _Read, roots: list[str], blobs: list[str], report: VerifyReport
) -> set[str]:
    """Each listed file present with its size and checksum, inside a root; none unlisted.
    A checkpoint (under a root in ``blobs``) holds what its name says, and is a hard link
    exactly where the manifest says so."""
    listed: set[str] = set()
    seen = read.seen
    for entry in entries:
        try:
            name, size, digest = _file_entry(entry)
            link_to = norm(fmt.name_from(entry, "linkTo")) if "linkTo" in entry else None
        except (KeyError, TypeError, ValueError, AttributeError):
            report.problems.append(f"manifest: bad file entry {entry!r}")
            continue
        listed.add(name)
        root = _under(name, roots)
        if root is None:
            report.problems.append(f"{name!r}: outside every folder the manifest lists")
        if read.hard_links.get(name) != link_to:
            stored = read.hard_links.get(name)
            what = f"a hard link to {stored!r}" if stored else "a file"
            said = f"a hard link to {link_to!r}" if link_to else "a file"
            report.problems.append(f"{name}: stored as {what}, the manifest says {said}")
            continue
        got = seen.get(name)
        if root is not None and root in blobs and got is not None:
            bad = _blob_problem(name, root, got, link_to, seen)
            if bad is not None:
                if bad:
                    report.problems.append(bad)
                continue
        if got is None:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif got[0] != size:
            report.problems.append(f"{name}: size {got[0]}, the manifest says {size}")
        elif got[1] != digest:
            report.problems.append(f"{name}: checksum mismatch")
        else:
            report.files += 1
            report.bytes += size
    for name in sorted(set(seen) - listed):
        report.problems.append(f"{name}: in the archive but not in the manifest")
    return listed


def _blob_problem(
    name: str, root: str, got: Sum, link_to: str | None, seen: dict[str, Sum]
) -> str | None:
    """What is wrong with a checkpoint member: a problem, ``""`` when it is one already
    reported (a hard link to a damaged checkpoint), or None (the manifest checks follow)."""
    bad = checkpoint_problem(name, root)
    if bad is not None:
        return bad
    sha = PurePosixPath(name).name
    if got[1] == sha:
        return None
    if link_to is not None and PurePosixPath(link_to).name == sha:
        return ""  # its file, stored under the other name, is reported there
    return f"{name}: checkpoint damaged: its content does not match its name (sha256)"


def _check_hard_links(hard_links: dict[str, str], blobs: list[str], report: VerifyReport) -> None:
    """Each hard link one checkpoint to another of the same name (a fork's, its parent's)."""
    for name, target in hard_links.items():
        ends = [_under(n, blobs) for n in (name, target)]
        same = PurePosixPath(name).name == PurePosixPath(target).name
        if None in ends or not same:
            report.problems.append(
                f"{name!r}: hard link to {target!r} (only a checkpoint may be a hard link, "
                "to the same checkpoint of another session)"
            )


def _check_links(
    entries: list[Any], links: dict[str, str], listed: set[str], report: VerifyReport
) -> None:
    """Each symlink a session name the manifest lists, leading to a file in this backup."""
    listed_links = {}
    for entry in entries:
        try:
            entry["path"] = fmt.name_from(entry, "path")
            entry["target"] = fmt.name_from(entry, "target")
        except (KeyError, ValueError, TypeError, AttributeError):
            report.problems.append(f"manifest: bad link entry {entry!r}")
            continue
        listed_links[norm(entry["path"])] = entry["target"]
    for name, target in links.items():
        if listed_links.get(name) != target:
            report.problems.append(f"{name!r}: symbolic link not listed as a session name")
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
        if target.startswith("/") or resolved not in listed or not name.endswith(".json"):
            report.problems.append(f"{name!r}: link to {target!r}, not a file in this backup")
    for name in sorted(set(listed_links) - set(links)):
        report.problems.append(f"{name}: name listed in the manifest but missing")


def iter_files(path: Path) -> Iterator[tuple[str, tarfile.TarInfo, bytes]]:
    """(normalised name, info, bytes) of each regular member, streaming."""
    with tarfile.open(path, mode="r|gz", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            if not info.isreg() or member_problem(info):
                continue
            handle = tar.extractfile(info)
            assert handle is not None
            yield norm(info.name), info, handle.read()


# -- the job ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyRequest:
    ref: str  # a backup file, or a remote backup's URL


def run(ctx: JobContext, request: VerifyRequest) -> VerifyReport:
    """Read the backup whole and check it; the report's ``ok`` says whether it passed.

    A remote backup (its URL, as `backup list` shows it) is first downloaded to a
    private temporary file and checked against its manifest's sha256s."""
    from taurus_ops.ops.backup.offsite import Mismatch, fetched, is_remote_ref

    if is_remote_ref(request.ref):
        try:
            with fetched(request.ref, ctx.config, ctx.home) as (path, _):
                report = verify_archive(path)
        except Mismatch as exc:
            report = VerifyReport(Path(request.ref), problems=[str(exc)])
        report.source = request.ref
        return report
    path = Path(request.ref)
    if not path.is_file():
        raise BackupError(f"no such backup file: {path}")
    return verify_archive(path)
