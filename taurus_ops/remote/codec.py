"""How a session travels: one object holding the file's bytes and what goes with them.

    TAURUS-SYNC/1 {"file": "2025-01-18_abc123.json", "sha256": "...", "device": "laptop",
                   "archived": false, "names": ["password-reset"], "mtime": 1737196712.4}\\n
    <the session file's bytes, exactly>

The header line carries the session's file name, its sha256, the device that wrote
it, whether it is archived, its names (the ``NAME.json`` links) and the file's
modification time. With end-to-end encryption the object is instead

    TAURUS-SYNC/1 {"encrypted": "AES-256-GCM", "keyId": "3f9a..."}\\n
    <12-byte nonce><AES-GCM ciphertext of the plain object above>

with the clear header as associated data, so the storage provider sees neither the
transcript nor its names, and any change to an object (or the wrong key) is
detected instead of yielding garbage.

A file checkpoint a session names travels as its own object, named by its sha256
(``keyed``: an HMAC of it with encryption) and holding the file's bytes exactly, or

    TAURUS-BLOB/1 {"encrypted": "AES-256-GCM", "keyId": "3f9a..."}\n
    <12-byte nonce><AES-GCM ciphertext of the bytes>

with the magic and the header as associated data. Either way its bytes are checked
against the sha256 the session names before they are kept (``open_blob``). The key is 32 random bytes kept in
``remote.encryptionKeyFile`` (0600, base64); its id is a hash that tells keys
apart without revealing them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.remote.base import RemoteConfigError, RemoteError

MAGIC = b"TAURUS-SYNC/1 "
BLOB_MAGIC = b"TAURUS-BLOB/1 "
CIPHER = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_HEADER = 64 * 1024
_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}(?:_[A-Za-z0-9_-]{1,64})?\.json$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BadObject(RemoteError):
    """An object that is not a Taurus session object, or cannot be opened with this key."""


@dataclass(frozen=True)
class Meta:
    """What travels with a session's bytes."""

    file: str
    sha256: str
    device: str
    archived: bool = False
    names: tuple[str, ...] = ()
    mtime: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        """The session's synced state: bytes, file name, archived, names (not the mtime)."""
        return state_digest(self.file, self.sha256, self.archived, self.names)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "sha256": self.sha256,
            "device": self.device,
            "archived": self.archived,
            "names": list(self.names),
        }
        if self.mtime is not None:
            out["mtime"] = self.mtime
        out.update(self.extra)
        return out


def state_digest(file: str, sha256: str, archived: bool, names: tuple[str, ...] | list[str]) -> str:
    # file names and names are [A-Za-z0-9_.-]: "\0" and "," cannot occur in them
    text = f"{file}\0{sha256}\0{int(bool(archived))}\0{','.join(sorted(names))}"
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keys -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    secret: bytes
    path: Path

    @property
    def id(self) -> str:
        return key_id(self.secret)


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"taurus-remote-key-id\0" + secret).hexdigest()[:16]


def new_key_file(path: Path) -> Key:
    """Write a new random key to ``path`` (0600); refuses to replace an existing file."""
    secret = os.urandom(KEY_BYTES)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise RemoteConfigError(
            f"{path} already exists; a key is never overwritten (move it away first)"
        ) from None
    try:
        os.write(fd, base64.b64encode(secret) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return Key(secret, path)


def load_key(path: Path) -> Key:
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        raise RemoteConfigError(
            f"remote.encryptionKeyFile: no key file {path} "
            "(create one with `taurus-ops remote init --encrypt`, or copy it from the first machine)"
        ) from None
    except OSError as exc:
        raise RemoteConfigError(
            f"remote.encryptionKeyFile: cannot read {path}: {exc.strerror}"
        ) from None
    try:
        secret = base64.b64decode(text, validate=True)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise RemoteConfigError(
            f"remote.encryptionKeyFile: {path} does not hold a Taurus key (32 bytes, base64)"
        )
    return Key(secret, path)


# -- objects --------------------------------------------------------------------------------
def encode(meta: Meta, body: bytes, key: Key | None = None) -> bytes:
    plain = MAGIC + _header(meta.as_json()) + b"\n" + body
    if key is None:
        return plain
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = _header({"encrypted": CIPHER, "keyId": key.id})
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + header + b"\n" + nonce + AESGCM(key.secret).encrypt(nonce, plain, header)


def decode(data: bytes, key: Key | None, where: str) -> tuple[Meta, bytes]:
    """The meta and the session bytes of an object; BadObject (one line) if it is not one."""
    header, rest = _split(data, where)
    if "encrypted" in header:
        if header.get("encrypted") != CIPHER:
            raise BadObject(f"{where}: encrypted with {header.get('encrypted')!r}, unknown here")
        if key is None:
            raise BadObject(
                f"{where} is encrypted (key id {header.get('keyId')}); set "
                "remote.encryptionKeyFile to that key"
            )
        if header.get("keyId") != key.id:
            raise BadObject(
                f"{where} is encrypted with key id {header.get('keyId')}, and the key in "
                f"{key.path} has id {key.id}: wrong key"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        raw_header = data[len(MAGIC) : data.index(b"\n")]
        nonce, sealed = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            plain = AESGCM(key.secret).decrypt(nonce, sealed, raw_header)
        except (InvalidTag, ValueError):
            raise BadObject(
                f"{where} cannot be decrypted with the key in {key.path}: "
                "it was altered, or written with another key"
            ) from None
        header, rest = _split(plain, where)
        if "encrypted" in header:
            raise BadObject(f"{where}: an encrypted object inside an encrypted object")
    meta = _meta(header, where)
    if sha256_of(rest) != meta.sha256:
        raise BadObject(f"{where}: the session's bytes do not match their sha256 (damaged)")
    return meta, rest


def seal_blob(data: bytes, key: Key | None) -> bytes:
    """A checkpoint's bytes as the remote holds them: as they are, or encrypted."""
    if key is None:
        return data
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = BLOB_MAGIC + _header({"encrypted": CIPHER, "keyId": key.id})
    nonce = os.urandom(NONCE_BYTES)
    return header + b"\n" + nonce + AESGCM(key.secret).encrypt(nonce, data, header)


def open_blob(data: bytes, key: Key | None, sha256: str, where: str) -> bytes:
    """A checkpoint's bytes from its object, checked against ``sha256``; BadObject (one
    line) when they are damaged, or cannot be opened with this key."""
    if key is not None:
        end = data.find(b"\n", 0, MAX_HEADER) if data.startswith(BLOB_MAGIC) else -1
        if end < 0:
            raise BadObject(f"{where} is not an encrypted checkpoint")
        try:
            header = json.loads(data[len(BLOB_MAGIC) : end])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("encrypted") != CIPHER:
            raise BadObject(f"{where}: the checkpoint's header is not one Taurus writes")
        if header.get("keyId") != key.id:
            raise BadObject(
                f"{where} is encrypted with key id {header.get('keyId')}, and the key in "
                f"{key.path} has id {key.id}: wrong key"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce, sealed = data[end + 1 : end + 1 + NONCE_BYTES], data[end + 1 + NONCE_BYTES :]
        try:
            data = AESGCM(key.secret).decrypt(nonce, sealed, data[:end])
        except (InvalidTag, ValueError):
            raise BadObject(
                f"{where} cannot be decrypted with the key in {key.path}: it was altered"
            ) from None
    if sha256_of(data) != sha256:
        raise BadObject(f"{where}: the checkpoint's bytes do not match their sha256 (damaged)")
    return data


def _header(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()


def _split(data: bytes, where: str) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(MAGIC):
        raise BadObject(f"{where} is not a Taurus session object")
    end = data.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise BadObject(f"{where}: the object's header is cut off")
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError:
        raise BadObject(f"{where}: the object's header is not JSON") from None
    if not isinstance(header, dict):
        raise BadObject(f"{where}: the object's header is not a JSON object")
    return header, data[end + 1 :]


def _meta(header: dict[str, Any], where: str) -> Meta:
    file = header.get("file")
    sha = header.get("sha256")
    device = header.get("device")
    names = header.get("names", [])
    mtime = header.get("mtime")
    if not isinstance(file, str) or not _FILE.match(file):
        raise BadObject(f"{where}: the file name {file!r} is not a session file name")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise BadObject(f"{where}: no valid sha256 in the header")
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise BadObject(f"{where}: the names in the header are not valid names")
    if mtime is not None and not isinstance(mtime, int | float):
        mtime = None
    known = {"file", "sha256", "device", "archived", "names", "mtime"}
    return Meta(
        file=file,
        sha256=sha,
        device=str(device) if isinstance(device, str) else "?",
        archived=header.get("archived") is True,
        names=tuple(sorted(set(names))),
        mtime=float(mtime) if mtime is not None else None,
        extra={k: v for k, v in header.items() if k not in known},
    )


def keyed(value: str, key: Key | None) -> str:
    """A hash safe to show the storage provider: ``value`` itself, or an HMAC of it."""
    if key is None:
        return value
    return hmac.new(key.secret, value.encode(), hashlib.sha256).hexdigest()
