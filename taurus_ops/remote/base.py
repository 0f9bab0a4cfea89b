"""The one small interface both remotes (S3, a folder) offer to sync and share.

Keys are relative to the remote's prefix (``sessions/abc123.json``). Every write is
conditional: ``put_new`` only creates (S3 ``If-None-Match: *``, a folder's exclusive
create) and ``put_replace`` only replaces the version it names (S3 ``If-Match`` on the
ETag, a folder's compare-and-rename under an exclusive lock file). Either raises
``Conflict`` when the condition fails, so two machines writing at once never
overwrite each other's work; and an object is either wholly there or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from taurus_ops.errors import TaurusError


class RemoteError(TaurusError):
    """The remote failed or refused (unreachable, no bucket, credentials refused ...)."""

    exit_code = 1


class RemoteConfigError(RemoteError):
    """The remote settings cannot work (a missing profile, a key file that is not a key)."""

    exit_code = 2


class Conflict(Exception):
    """A conditional write found the object not as expected (created or changed meanwhile)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the prefix
    etag: str  # an opaque version: S3's ETag, a folder file's identity
    size: int


@dataclass(frozen=True)
class Fetched:
    key: str
    etag: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


class Remote(Protocol):
    """A place for objects: an S3 bucket prefix or a folder."""

    url: str  # what the user configured, for messages

    def list(self, prefix: str = "", after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (and, given ``after``, sorts after
        it: S3's ``StartAfter``), in one listing walk."""
        ...

    def get(self, key: str) -> Fetched | None:
        """The object's bytes and version, or None if there is none."""
        ...

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str]) -> str:
        """Create ``key``; raises Conflict if it exists. Returns the new version."""
        ...

    def put_replace(self, key: str, data: bytes, etag: str, metadata: Mapping[str, str]) -> str:
        """Replace ``key`` if it is still version ``etag``; else Conflict. Returns the new one."""
        ...

    def check(self) -> None:
        """Raise RemoteError (one line) if the remote cannot be used at all."""
        ...

    # large objects (backups), streamed from and to files; only backups are ever deleted
    def put_new_file(self, key: str, source: Path, metadata: Mapping[str, str]) -> str:
        """``put_new`` with the bytes of the file ``source``, read as it is sent."""
        ...

    def get_file(self, key: str, sink: BinaryIO) -> ObjectInfo | None:
        """Write the object's bytes to ``sink``; its info, or None if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is not there)."""
        ...

    def close(self) -> None: ...
