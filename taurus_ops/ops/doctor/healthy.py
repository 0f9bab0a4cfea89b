"""The files the doctor last found healthy: ``<home>/doctor-state.json``.

A file found healthy is remembered by its identity (device, inode, size, mtime and ctime
in nanoseconds) with the little the scan keeps of it (what finds copies later), so a
later scan that finds it unchanged does not read it again; any change to any of these
checks it again, and ``doctor --full`` forgets them all. The state is a cache: a missing
or damaged one only means every file is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from taurus_ops.ops.doctor.checks import Scan

STATE_NAME = "doctor-state.json"  # the files last found healthy (a cache: safe to delete)
STATE_VERSION = 1
# a file changed this recently may change again within the same tick of a coarse file-system
# clock, keeping its mtime and ctime: it is checked, but not remembered, until it is older
SETTLE_SECONDS = 2.0
RECOVERED_FROM = "recoveredFrom"  # on a file the doctor wrote from another: {file, sha256, part}


Identity = tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    """What says a file is unchanged: device, inode, size, mtime and ctime (nanoseconds)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Healthy:
    """A session file found healthy: its identity then, and what finds copies later."""

    identity: Identity
    signature: tuple[str, str, int] | None = None  # (created, updated, message count)
    origin: tuple[str, int] | None = None  # RECOVERED_FROM's (sha256, part)
    digest: str | None = None  # the file's sha256, kept when it has an origin

    def as_json(self) -> list[Any]:
        return [list(self.identity), self.signature, self.origin, self.digest]

    @classmethod
    def from_json(cls, item: Any) -> Healthy:
        """Raises ValueError (or TypeError) for anything this version did not write."""
        ident, signature, origin, digest = item
        ident = tuple(ident)
        if len(ident) != 5 or not all(type(n) is int for n in ident):
            raise ValueError("bad identity")
        if signature is not None:
            created, updated, count = signature
            if type(created) is not str or type(updated) is not str or type(count) is not int:
                raise ValueError("bad signature")
            signature = (created, updated, count)
        if origin is not None:
            sha, part = origin
            if type(sha) is not str or type(part) is not int or type(digest) is not str:
                raise ValueError("bad origin")
            origin = (sha, part)
        return cls(ident, signature, origin, digest)


def read_healthy(home: Path) -> dict[str, Healthy]:
    """The files last found healthy, by path; empty when there is no usable state."""
    try:
        with open(Path(home) / STATE_NAME, "rb") as handle:
            data = orjson.loads(handle.read())
        if data.get("version") != STATE_VERSION:
            return {}
        return {path: Healthy.from_json(item) for path, item in data["files"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # missing, damaged or from another version: every file is read


def write_healthy(home: Path, healthy: dict[str, Healthy]) -> None:
    """Keep ``healthy`` for the next scan (only where the Taurus home exists)."""
    from taurus_ops.store.atomic import atomic_write

    if not Path(home).is_dir():
        return
    files = {path: item.as_json() for path, item in healthy.items()}
    try:
        data = orjson.dumps({"version": STATE_VERSION, "files": files})
        atomic_write(Path(home) / STATE_NAME, data, durable=False)
    except (OSError, TypeError, orjson.JSONEncodeError):
        pass  # a cache: without it the next scan reads every file again


def forget_healthy(home: Path) -> None:
    """Make the next scan check every file (``doctor --full``)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(home) / STATE_NAME)


def _fingerprint(data: dict[str, Any], raw: bytes, ident: Identity) -> Healthy:
    """What the scan keeps of a parsed document to find copies later."""
    origin = data.get(RECOVERED_FROM)
    found = None
    if type(origin) is dict and isinstance(origin.get("sha256"), str):
        part = origin.get("part")
        found = (origin["sha256"], part if type(part) is int else 0)
    messages = data.get("messages")
    created, updated = data.get("created"), data.get("updated")
    signature = None
    if type(messages) is list and messages and type(created) is str and type(updated) is str:
        signature = (created, updated, len(messages))
    return Healthy(ident, signature, found, hashlib.sha256(raw).hexdigest() if found else None)


def _note_fingerprint(scan: Scan, path: Path, print_: Healthy) -> None:
    """Remember what finds copies later: where a file came from, and a cheap fingerprint."""
    if print_.origin is not None:
        scan.recovered.setdefault(print_.origin, []).append(path)
        if print_.digest is not None:
            scan.digests[path] = print_.digest
    if print_.signature is not None:
        scan.signatures.setdefault(print_.signature, []).append(path)
