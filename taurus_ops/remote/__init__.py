"""Remote storage for sync and share: an S3-compatible bucket or a shared folder.

``connect(config)`` opens the configured remote (``remote.url``) with this machine's
device name and, when ``remote.encryptionKeyFile`` is set, its key. The layout under
the remote's prefix:

    taurus-remote.json        what this remote is (format, encrypted, key id)
    sessions/<id>.json        one object per synced session (see codec.py)
    checkpoints/<sha256>      a file checkpoint a synced session names, once for every
                              session (content-addressed; an HMAC of it when encrypted)
    journal/<device>.json     "writing" or "done": whether a device is writing sessions
    devices/<device>.json     when each device last synced, and what moved
    shared/<id>.json          sessions handed to the team (`taurus-ops share`)

Nothing else from the Taurus home is ever written there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taurus_ops.remote.base import (
    Conflict,
    Fetched,
    ObjectInfo,
    Remote,
    RemoteConfigError,
    RemoteError,
)
from taurus_ops.remote.codec import Key, load_key
from taurus_ops.remote.url import RemoteUrl, device_of, parse_remote_url

MARKER = "taurus-remote.json"
SESSIONS = "sessions/"
DEVICES = "devices/"
SHARED = "shared/"
CHECKPOINTS = "checkpoints/"
# sorts after every checkpoints/ key and before every other kind: a listing of sessions
# (and devices, and the marker) that starts after it never walks the checkpoint blobs
AFTER_CHECKPOINTS = "checkpoints0"

__all__ = [
    "AFTER_CHECKPOINTS",
    "CHECKPOINTS",
    "DEVICES",
    "MARKER",
    "SESSIONS",
    "SHARED",
    "Conflict",
    "Connection",
    "Fetched",
    "ObjectInfo",
    "Remote",
    "RemoteConfigError",
    "RemoteError",
    "connect",
    "open_backend",
]


class NotConfigured(RemoteConfigError):
    """No ``remote.url`` is set."""


@dataclass
class Connection:
    """An open remote with what this machine brings to it."""

    remote: Any  # a Remote
    where: RemoteUrl
    device: str
    key: Key | None

    @property
    def url(self) -> str:
        return self.where.url

    def close(self) -> None:
        self.remote.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the marker ---------------------------------------------------------------------
    def marker(self) -> dict[str, Any] | None:
        found = self.remote.get(MARKER)
        if found is None:
            return None
        try:
            data = json.loads(found.data)
        except ValueError:
            raise RemoteError(f"remote {self.url}: {MARKER} is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != 1:
            raise RemoteError(f"remote {self.url}: {MARKER} is not a Taurus remote (format 1)")
        return data

    def check_marker(self, data: dict[str, Any] | None) -> None:
        """Refuse to mix plain and encrypted objects, or two keys, in one remote."""
        if data is None:
            return
        theirs = data.get("keyId") if data.get("encrypted") else None
        mine = self.key.id if self.key is not None else None
        if theirs == mine:
            return
        if theirs is None:
            raise RemoteConfigError(
                f"remote {self.url} is not encrypted, but remote.encryptionKeyFile is set; "
                "unset it, or use a new remote for encrypted sessions"
            )
        if mine is None:
            raise RemoteConfigError(
                f"remote {self.url} is encrypted (key id {theirs}); set remote.encryptionKeyFile "
                "to a copy of its key"
            )
        raise RemoteConfigError(
            f"remote {self.url} is encrypted with key id {theirs}, but the key in "
            f"{self.key.path if self.key else '?'} has id {mine}: wrong key"
        )

    def ensure_marker(self) -> dict[str, Any]:
        """The remote's marker, written first if there is none (a conditional create)."""
        found = self.marker()
        if found is None:
            data: dict[str, Any] = {"format": 1, "encrypted": self.key is not None}
            if self.key is not None:
                data["keyId"] = self.key.id
                data["cipher"] = "AES-256-GCM"
            try:
                self.remote.put_new(MARKER, json.dumps(data, indent=2).encode() + b"\n", {})
            except Conflict:  # another machine made it meanwhile: read theirs
                found = self.marker()
            else:
                found = data
        assert found is not None
        self.check_marker(found)
        return found


def open_backend(where: RemoteUrl, settings: Any) -> Any:
    """The backend for ``where``: S3 (boto3, imported here) or a folder."""
    if where.scheme == "file":
        from taurus_ops.remote.folder import FolderRemote

        return FolderRemote(where)
    from taurus_ops.remote.s3 import S3Remote

    return S3Remote(where, settings.endpoint_url, settings.region, settings.profile)


def configured_url(config: Any) -> RemoteUrl:
    """The configured remote.url, parsed; NotConfigured (exit 2) when there is none."""
    url = config.settings.remote.url
    if not url:
        raise NotConfigured(
            "no remote is configured: set remote.url (s3://BUCKET/PREFIX or file:///PATH) "
            "in ~/.taurus/config.yaml"
        )
    return parse_remote_url(url)


def connect(config: Any) -> Connection:
    """Open the configured remote; RemoteConfigError (exit 2) when none is configured."""
    settings = config.settings.remote
    where = configured_url(config)
    key_file = settings.encryption_key_file
    key = load_key(Path(key_file)) if key_file else None
    return Connection(open_backend(where, settings), where, device_of(config.settings), key)
