"""The remote layer's large objects (backups): streamed uploads, downloads and deletes on
both backends, and sealed (encrypted) objects that any damage makes unreadable."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from taurus_ops.remote.base import Conflict, RemoteConfigError
from taurus_ops.remote.codec import BadObject, new_key_file
from taurus_ops.remote.sealed import TAG, header_line, open_file, seal_file


def test_a_file_uploads_downloads_and_deletes(backend, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(3 << 20) + b"tail"  # a few chunks, not a multiple of one
    source.write_bytes(data)
    backend.put_new_file("desk/one.tar.gz", source, {})
    with pytest.raises(Conflict):  # a create never replaces
        backend.put_new_file("desk/one.tar.gz", source, {})
    sink = io.BytesIO()
    info = backend.get_file("desk/one.tar.gz", sink)
    assert info is not None and info.size == len(data) and sink.getvalue() == data
    assert [i.key for i in backend.list("desk/")] == ["desk/one.tar.gz"]
    assert backend.get_file("desk/none.tar.gz", io.BytesIO()) is None
    backend.delete("desk/one.tar.gz")
    backend.delete("desk/one.tar.gz")  # gone already: nothing happens
    assert list(backend.list("desk/")) == []
    assert backend.get_file("desk/one.tar.gz", io.BytesIO()) is None


def test_a_local_write_error_while_downloading_is_the_local_one(backend, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 1000)
    backend.put_new_file("desk/x.tar.gz", source, {})

    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        backend.get_file("desk/x.tar.gz", Full())


# -- sealed objects ---------------------------------------------------------------------------------
SEGMENT = 16  # tiny segments, so every boundary case is a few bytes away


@pytest.fixture
def key(tmp_path: Path):
    return new_key_file(tmp_path / "remote.key")


def seal(tmp_path: Path, key, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    sink = io.BytesIO()
    seal_file(plain, sink, key, SEGMENT)
    return sink.getvalue()


def unseal(tmp_path: Path, key, sealed: bytes) -> bytes:  # type: ignore[no-untyped-def]
    path = tmp_path / "sealed"
    path.write_bytes(sealed)
    sink = io.BytesIO()
    open_file(path, sink, key, "the object")
    return sink.getvalue()


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 100])
def test_sealed_round_trip(size: int, tmp_path: Path, key) -> None:
    data = os.urandom(size)
    sealed = seal(tmp_path, key, data)
    assert data == unseal(tmp_path, key, sealed)
    if size >= 8:
        assert data not in sealed


def test_every_cut_and_every_flipped_byte_is_refused(tmp_path: Path, key) -> None:
    """Cut short at any byte (between segments too), or any byte altered: never garbage."""
    data = os.urandom(5 * SEGMENT + 3)
    sealed = seal(tmp_path, key, data)
    start = len(header_line(key, SEGMENT))
    for cut in range(start, len(sealed)):
        with pytest.raises(BadObject):
            unseal(tmp_path, key, sealed[:cut])
    for at in range(start, len(sealed)):
        flipped = bytearray(sealed)
        flipped[at] ^= 0x01
        with pytest.raises(BadObject):
            unseal(tmp_path, key, bytes(flipped))
    segments = [sealed[start + 7 + i : start + 7 + i + SEGMENT + TAG] for i in (0, SEGMENT + TAG)]
    swapped = (
        sealed[: start + 7] + segments[1] + segments[0] + sealed[start + 7 + 2 * (SEGMENT + TAG) :]
    )
    with pytest.raises(BadObject):
        unseal(tmp_path, key, swapped)
    with pytest.raises(BadObject):
        unseal(tmp_path, key, sealed + sealed[-(SEGMENT + TAG) :])  # a segment added


def test_a_sealed_object_needs_its_own_key(tmp_path: Path, key) -> None:
    sealed = seal(tmp_path, key, b"the transcript")
    with pytest.raises(RemoteConfigError, match=r"set remote\.encryptionKeyFile"):
        unseal(tmp_path, None, sealed)
    other = new_key_file(tmp_path / "other.key")
    with pytest.raises(RemoteConfigError, match="wrong key"):
        unseal(tmp_path, other, sealed)
    with pytest.raises(BadObject, match="not a sealed"):
        unseal(tmp_path, key, b"\x1f\x8b plain gzip")
