"""The remote layer: conditional writes that exactly one writer wins, the object format, URLs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taurus_ops.remote.base import Conflict
from taurus_ops.remote.codec import BadObject, Meta, decode, encode, new_key_file, sha256_of
from taurus_ops.remote.url import parse_remote_url


def race(count: int, write) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Run ``write(n)`` on ``count`` threads at once; (versions of the winners, conflicts)."""
    start = threading.Barrier(count)
    won: list[str] = []
    lost: list[int] = []

    def one(n: int) -> None:
        start.wait()
        try:
            won.append(write(n))
        except Conflict:
            lost.append(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, len(lost)


def test_of_many_racing_creates_exactly_one_wins(backend) -> None:
    for attempt in range(3):
        key = f"sessions/race{attempt}.json"
        won, lost = race(8, lambda n, k=key: backend.put_new(k, f"writer {n}".encode(), {}))
        assert len(won) == 1 and lost == 7
        found = backend.get(key)
        assert found is not None and found.etag == won[0]
        assert found.data.startswith(b"writer ")


def test_of_many_racing_replaces_of_one_version_exactly_one_wins(backend) -> None:
    etag = backend.put_new("sessions/shared.json", b"v0", {})
    for round_no in range(3):
        # bodies differ from every earlier version: an S3 ETag is the body's MD5, so writing
        # the bytes the object already holds would leave its ETag (and If-Match) unchanged
        won, lost = race(
            8,
            lambda n, e=etag, r=round_no: backend.put_replace(
                "sessions/shared.json", b"round %d writer %d" % (r, n), e, {}
            ),
        )
        assert len(won) == 1 and lost == 7
        etag = won[0]
        assert backend.get("sessions/shared.json").etag == etag  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        backend.put_replace("sessions/absent.json", b"x", etag, {})
    assert backend.get("sessions/absent.json") is None
    assert [o.key for o in backend.list("sessions/")] == ["sessions/shared.json"]


def test_listing_sees_every_object_and_nothing_half_written(backend) -> None:
    for n in range(30):
        backend.put_new(f"sessions/s{n:03d}.json", b"x" * n, {"device": "d"})
    backend.put_new("devices/d.json", b"{}", {})
    listed = {o.key: o.size for o in backend.list("sessions/")}
    assert listed == {f"sessions/s{n:03d}.json": n for n in range(30)}
    assert {o.key for o in backend.list("")} >= {"devices/d.json", *listed}


def meta_for(body: bytes, **fields: object) -> Meta:
    return Meta(file="2025-01-18_abc123.json", sha256=sha256_of(body), device="desk", **fields)  # type: ignore[arg-type]


def test_the_object_format_round_trips_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    body = b'{"sessionId": "abc123"}\n'
    meta = meta_for(body, archived=True, names=("a-name",), mtime=1737196712.5)
    data = encode(meta, body)
    back, got = decode(data, None, "x")
    assert got == body and back == meta and back.mtime == 1737196712.5
    key = new_key_file(tmp_path / "k")
    sealed = encode(meta, body, key)
    assert body not in sealed and b"a-name" not in sealed and b"2025-01-18" not in sealed
    assert decode(sealed, key, "x") == (meta, body)
    for bad, words in (
        (b"not ours", "not a Taurus session object"),
        (data.replace(b"2025-01-18_abc123.json", b"../../etc/passwd.json"), "not a session file"),
        (data.replace(b'"a-name"', b'"../x"'), "not valid names"),
        (data[:-3], "do not match their sha256"),
        (sealed, "is encrypted"),
    ):
        with pytest.raises(BadObject, match=words):
            decode(bad, None, "x")
    with pytest.raises(BadObject, match="wrong key"):
        decode(sealed, new_key_file(tmp_path / "other"), "x")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(BadObject, match="cannot be decrypted"):
        decode(bytes(tampered), key, "x")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="never overwritten"):
        new_key_file(tmp_path / "k")


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("s3://team-bucket", "s3://team-bucket"),
        ("s3://team-bucket/alice/", "s3://team-bucket/alice"),
        ("s3://team.bucket-1//a//b", "s3://team.bucket-1/a/b"),
        ("file:///shared/sessions/", "file:///shared/sessions"),
        ("file://localhost/mnt/usb", "file:///mnt/usb"),
    ],
)
def test_remote_urls_are_normalised(text: str, url: str) -> None:
    assert parse_remote_url(text).url == url
