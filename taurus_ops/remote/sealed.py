"""Large objects encrypted on this machine, in segments, streamed from file to file.

    TAURUS-SEALED/1 {"cipher":"AES-256-GCM","keyId":"3f9a...","segment":1048576}\\n
    <7-byte random nonce prefix>
    <segment 0: AES-GCM of the first 1 MiB, with its 16-byte tag> ... <the last segment>

Each segment is sealed with the nonce ``prefix + counter (4 bytes) + last (1 byte)``
and the header line as associated data (the STREAM construction): a segment altered,
dropped, moved or added, an object cut short at any point (even between segments),
or the wrong key, each makes opening fail with one clear line instead of yielding
garbage. Memory stays at one segment whatever the size. The key is the one sync uses
(``remote.encryptionKeyFile``, see codec.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from taurus_ops.remote.base import RemoteConfigError
from taurus_ops.remote.codec import CIPHER, BadObject, Key

MAGIC = b"TAURUS-SEALED/1 "
SEGMENT = 1 << 20
TAG = 16
PREFIX = 7
MAX_HEADER = 4096
MAX_SEGMENT = 64 << 20


def header_line(key: Key, segment: int = SEGMENT) -> bytes:
    text = json.dumps(
        {"cipher": CIPHER, "keyId": key.id, "segment": segment}, separators=(",", ":")
    )
    return MAGIC + text.encode() + b"\n"


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def seal_file(source: Path, sink: BinaryIO, key: Key, segment: int = SEGMENT) -> None:
    """Write ``source``'s bytes, sealed with ``key``, to ``sink``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(key.secret)
    line = header_line(key, segment)
    prefix = os.urandom(PREFIX)
    sink.write(line + prefix)
    with open(source, "rb") as plain:
        chunk = plain.read(segment)
        counter = 0
        while True:
            following = plain.read(segment)
            last = not following
            sink.write(aead.encrypt(_nonce(prefix, counter, last), chunk, line))
            if last:
                return
            chunk, counter = following, counter + 1


def read_header(head: bytes, where: str) -> dict[str, Any] | None:
    """The header of a sealed object from its first bytes; None if it is not sealed."""
    if not head.startswith(MAGIC):
        return None
    end = head.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise BadObject(f"{where}: the sealed object's header is cut off")
    try:
        header = json.loads(head[len(MAGIC) : end])
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise BadObject(f"{where}: the sealed object's header is not a JSON object")
    return header


def check_key(header: dict[str, Any], key: Key | None, where: str) -> Key:
    """The key that opens an object with this header; RemoteConfigError (one line) if
    there is none here or it is another one."""
    if header.get("cipher") != CIPHER:
        raise BadObject(f"{where}: encrypted with {header.get('cipher')!r}, unknown here")
    theirs = header.get("keyId")
    if key is None:
        raise RemoteConfigError(
            f"{where} is encrypted (key id {theirs}); set remote.encryptionKeyFile to that key"
        )
    if theirs != key.id:
        raise RemoteConfigError(
            f"{where} is encrypted with key id {theirs}, and the key in {key.path} has id "
            f"{key.id}: wrong key"
        )
    return key


def open_file(source: Path, sink: BinaryIO, key: Key | None, where: str) -> None:
    """Write the plain bytes of the sealed object in ``source`` to ``sink``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with open(source, "rb") as sealed:
        line = sealed.readline(MAX_HEADER)
        header = read_header(line, where)
        if header is None:
            raise BadObject(f"{where} is not a sealed Taurus object")
        aead = AESGCM(check_key(header, key, where).secret)
        segment = header.get("segment")
        if not isinstance(segment, int) or not 0 < segment <= MAX_SEGMENT:
            raise BadObject(f"{where}: the sealed object's segment size is not valid")
        prefix = sealed.read(PREFIX)
        block = sealed.read(segment + TAG)
        counter = 0
        while True:
            following = sealed.read(segment + TAG)
            last = not following
            try:
                sink.write(aead.decrypt(_nonce(prefix, counter, last), block, line))
            except (InvalidTag, ValueError):
                raise BadObject(
                    f"{where} cannot be decrypted with the key in {key.path if key else '?'}: "
                    "it was altered or cut short"
                ) from None
            if last:
                return
            block, counter = following, counter + 1
