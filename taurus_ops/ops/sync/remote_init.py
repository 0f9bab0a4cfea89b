"""``taurus-ops remote init``: check the remote, make the encryption key, write the marker.

``run(ctx, InitRequest(...))`` is the job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.config.paths import taurus_home
from taurus_ops.remote import Connection, RemoteConfigError, configured_url, open_backend
from taurus_ops.remote.codec import load_key, new_key_file
from taurus_ops.remote.url import device_of

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext


@dataclass(frozen=True)
class InitRequest:
    encrypt: bool = False  # make (or reuse) a key and mark the remote as encrypted
    key_file: Path | None = None  # where the key is (default: remote.encryptionKeyFile)


@dataclass
class InitResult:
    url: str
    marker: dict[str, Any]  # the remote's marker as it now is
    lines: list[str] = field(default_factory=list)  # what was done, for people

    def as_json(self) -> dict[str, Any]:
        return {"remote": self.url, "marker": self.marker, "lines": self.lines}


def run(ctx: JobContext, request: InitRequest) -> InitResult:
    """Set up the configured remote: check it works, then write its marker (and the key)."""
    config, encrypt, key_file = ctx.config, request.encrypt, request.key_file
    settings = config.settings.remote
    where = configured_url(config)
    configured = Path(settings.encryption_key_file) if settings.encryption_key_file else None
    lines: list[str] = []
    backend = open_backend(where, settings)
    try:
        backend.check()  # before any key is made: a remote that cannot work changes nothing
        found = Connection(backend, where, device_of(config.settings), None).marker()
        key = None
        if encrypt:
            path = key_file or configured or taurus_home() / "remote.key"
            _refuse_mismatch(where.url, found, path)
            if path.exists():
                key = load_key(path)
                lines.append(f"Using the existing key {path} (key id {key.id})")
            else:
                key = new_key_file(path)
                lines.append(f"Wrote a new key to {path} (0600, key id {key.id})")
            if configured is None or Path(configured) != path:
                lines.append(
                    f"Add to ~/.taurus/config.yaml under remote:  encryptionKeyFile: {path}"
                )
            lines.append(
                "Copy the key file to your other machines; without it no session can be read."
            )
        elif configured is not None:
            key = load_key(configured)
        conn = Connection(backend, where, device_of(config.settings), key)
        marker = conn.ensure_marker()
    finally:
        backend.close()
    state = (
        f"encrypted (key id {marker.get('keyId')})" if marker.get("encrypted") else "not encrypted"
    )
    lines.insert(0, f"Remote {where.url} is ready: {state}.")
    return InitResult(where.url, marker, lines)


def _refuse_mismatch(url: str, marker: dict[str, Any] | None, path: Path) -> None:
    """An existing remote keeps what it is: plain stays plain, and one key stays one key."""
    if marker is None:
        return
    if not marker.get("encrypted"):
        raise RemoteConfigError(
            f"remote {url} already holds plain objects; encrypt a new remote (another prefix)"
        )
    if not path.exists():
        raise RemoteConfigError(
            f"remote {url} is already encrypted (key id {marker.get('keyId')}); copy its key "
            f"file from a machine that syncs with it to {path} instead of making a new one"
        )
