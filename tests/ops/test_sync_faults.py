"""Sync under stress: racing machines, SIGKILL, server errors, dropped connections, bad settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.machines import Machine, make_remote
from helpers.proxy import FaultyProxy

from taurus_ops.remote.codec import decode
from taurus_ops.store import format as fmt


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path: Path):
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_remote(request.param, tmp_path, server)


def whole_objects(remote) -> dict[str, bytes]:
    """Every session object decodes and matches its sha256: no half object is visible."""
    found = {}
    for key, data in remote.raw_objects().items():
        if key.startswith("sessions/"):
            meta, body = decode(data, None, key)
            found[meta.file] = body
    return found


def local_tree(machine: Machine) -> dict[str, bytes]:
    return {**machine.files(), **{f"name:{k}": v.encode() for k, v in machine.names().items()}}


def _syncer(machine: Machine):  # type: ignore[no-untyped-def]
    """One machine's sync as a function a thread can run (its settings read once, here)."""
    from taurus_ops.config import load_config
    from taurus_ops.ops.sync import run_sync
    from taurus_ops.store import SessionStore

    saved = dict(os.environ)
    os.environ.update(machine.env())
    try:
        config = load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)

    def sync_now() -> None:
        _, result = run_sync(config, SessionStore.from_config(config))
        assert result.stopped is None and not result.failed, (result.stopped, result.failed)

    return sync_now


def test_racing_syncs_lose_nothing(remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", desk.env()["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", desk.env()["AWS_SECRET_ACCESS_KEY"])
    for sid in ("common01", "common02"):
        desk.add(sid)
    syncs = {m.device: _syncer(m) for m in (desk, laptop)}
    syncs["desk"]()
    syncs["laptop"]()
    written: set[str] = set()
    for round_no in range(4):
        for machine in (desk, laptop):
            text = f"{machine.device} round {round_no}"
            machine.append(machine.sessions / "2025-01-18_common01.json", text)
            written.add(text)
            if round_no % 2:
                machine.append(machine.sessions / "2025-01-18_common02.json", text + " (2)")
                written.add(text + " (2)")
            new = machine.add(f"{machine.device[:4]}{round_no:04d}", first=f"new {text}")
            written.add(fmt.loads(new.read_bytes())["messages"][0]["content"])
        errors: list[BaseException] = []

        def run(name: str, errors: list[BaseException] = errors) -> None:
            try:
                syncs[name]()
            except BaseException as exc:  # reported below
                errors.append(exc)

        racers = [threading.Thread(target=run, args=(name,)) for name in syncs]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
        assert not errors, errors
        whole_objects(remote)
    for name in ("desk", "laptop", "desk"):  # one after the other, everything settles
        syncs[name]()
    done = laptop.run("sync", "--json")  # and the command agrees: nothing left to do
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["actions"] == []
    assert desk.files() == laptop.files()
    assert desk.names() == laptop.names()
    for machine in (desk, laptop):
        assert written <= machine.texts(), written - machine.texts()
    assert set(whole_objects(remote)) == {name.split("/", 1)[1] for name in desk.files()}


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigkill_during_a_sync_then_the_next_sync_completes(remote, tmp_path: Path) -> None:
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    for n in range(40):
        desk.add(f"many{n:04d}", turns=1)
    proc = desk.popen("sync")
    _wait_for(lambda: sum(k.startswith("sessions/") for k in remote.raw_objects()) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    whole_objects(remote)
    done = desk.run("sync")
    assert done.returncode == 0, done.stderr
    assert "conflict" not in done.stdout  # its own uploads are recognised, not conflicts
    assert len(whole_objects(remote)) == 40
    assert laptop.run("sync").returncode == 0
    assert laptop.files() == desk.files()
    again = json.loads(desk.run("sync", "--json").stdout)
    assert again["actions"] == [] and again["unchanged"] == 40


def test_sigkill_during_an_upload_leaves_no_partial_object(s3_server, tmp_path: Path) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    proxy = FaultyProxy(s3_server.port).set("trickle", chunk=65536, delay=0.01)
    try:
        desk = Machine(tmp_path, "desk", remote, endpoint=proxy.endpoint)
        big = desk.add("bigsess1")
        data = fmt.loads(big.read_bytes())
        data["messages"].append({"role": "user", "content": "x" * 8_000_000})  # 8 MB in flight
        big.write_bytes(fmt.dumps(data))
        proc = desk.popen("sync")
        _wait_for(lambda: proxy.counters.big_started >= 1)  # the session's upload has begun
        time.sleep(0.3)
        assert proxy.counters.cut == 0 and proxy.counters.puts_done < proxy.counters.puts_started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_for(lambda: proxy.counters.cut >= 1)
        time.sleep(0.3)
        assert "sessions/bigsess1.json" not in remote.raw_objects()
        proxy.set("pass")
        done = desk.run("sync")
        assert done.returncode == 0, done.stderr
        assert whole_objects(remote)["2025-01-18_bigsess1.json"] == big.read_bytes()
    finally:
        proxy.close()


@pytest.fixture
def faulty(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # one retry: botocore's backoff is seconds
    remote = make_remote("s3", tmp_path, s3_server)
    proxy = FaultyProxy(s3_server.port)
    desk = Machine(tmp_path, "desk", remote, endpoint=proxy.endpoint)
    for n in range(4):
        desk.add(f"fault{n:03d}")
    assert desk.ops("remote", "init").exit_code == 0  # the faults then hit session uploads
    yield desk, proxy, remote
    proxy.close()


@pytest.mark.parametrize("mode", ["cut", "error"])
def test_a_few_dropped_uploads_or_server_errors_are_retried(faulty, mode: str) -> None:
    desk, proxy, remote = faulty
    # the journal's "writing" passes; then two of the four uploads, at once: each retried
    proxy.set(mode, count=2, status=503, after=1)
    out = desk.ops("sync")
    assert out.exit_code == 0, out.output
    assert proxy.counters.cut + proxy.counters.errors == 2
    assert len(whole_objects(remote)) == 4


@pytest.mark.parametrize(
    ("mode", "words"),
    [("cut", "the connection was dropped"), ("error", "the server answered 500")],
)
def test_a_remote_that_keeps_failing_is_one_line_and_nothing_local_changes(
    faulty, mode: str, words: str
) -> None:
    desk, proxy, remote = faulty
    before = local_tree(desk)
    proxy.set(mode, count=-1, status=500)
    out = desk.ops("sync")
    assert out.exit_code == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"Error: remote {remote.url}") and words in out.stderr
    assert "Traceback" not in out.output
    assert local_tree(desk) == before
    assert whole_objects(remote) == {}
    proxy.set("pass")
    assert desk.ops("sync").exit_code == 0
    assert len(whole_objects(remote)) == 4


def one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_missing_bucket_an_unreachable_endpoint_and_no_credentials(
    s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    remote = make_remote("s3", tmp_path, s3_server)
    desk = Machine(tmp_path, "desk", remote)
    desk.add("untouch1")
    before = local_tree(desk)
    remote.url = "s3://no-such-bucket-here/x"
    desk.write_config()
    one_line_error(desk.ops("sync"), 1, "s3://no-such-bucket-here/x", "does not exist")
    remote.url = f"s3://{remote.bucket}/x"
    desk.endpoint = "http://127.0.0.1:9"  # discard port: nothing listens
    desk.write_config()
    one_line_error(desk.ops("sync"), 1, "cannot reach the endpoint http://127.0.0.1:9")
    desk.endpoint = s3_server.endpoint
    desk.write_config()
    env = desk.env()
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    proc = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "sync"],
        env={k: v for k, v in {**os.environ, **env}.items() if not k.startswith("AWS_ACCESS")}
        | {"AWS_MAX_ATTEMPTS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no AWS credentials found" in proc.stderr
    desk.write_config(profile="nobody")
    one_line_error(desk.ops("sync"), 2, "remote.profile", "nobody")
    assert local_tree(desk) == before


def test_refused_credentials(tmp_path: Path) -> None:
    from helpers.s3_server import S3Server

    server = S3Server(check_keys=True)
    try:
        remote = make_remote("file", tmp_path)
        remote.kind, remote.url, remote.endpoint = "s3", "s3://some-bucket/p", server.endpoint
        desk = Machine(tmp_path, "desk", remote)
        desk.add("untouch2")
        before = local_tree(desk)
        one_line_error(desk.ops("sync"), 1, "s3://some-bucket/p", "credentials refused")
        assert local_tree(desk) == before
    finally:
        server.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://host/x", "is not s3://BUCKET/PREFIX or file:///PATH"),
        ("s3://", "names no bucket"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://bucket-ok/a/../b", "not allowed"),
        ("file://server/share", "names a host"),
        ("file:///", "root folder"),
        ("s3://AKIAEXAMPLE:wJalrSECRET@bucket-ok/x", "put no credentials in the URL"),
    ],
)
def test_a_bad_remote_url_is_one_line_naming_file_and_key(
    value: str, words: str, tmp_path: Path
) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    (desk.home / "config.yaml").write_text(f'remote:\n  url: "{value}"\n')
    for args in (["sync"], ["list"], ["config", "validate"]):
        out = desk.ops(*args)
        one_line_error(out, 2, str(desk.home / "config.yaml"), "remote.url", words)
        assert "SECRET" not in out.output


def test_bad_endpoint_and_device_settings(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    for key, value, words in (
        ("endpointUrl", "http://me:pw@127.0.0.1:9000", "no credentials in the endpoint"),
        ("endpointUrl", "minio.local", "not an http"),
        ("device", "my laptop", "not a device name"),
    ):
        (desk.home / "config.yaml").write_text(
            f'remote:\n  url: "{remote.url}"\n  {key}: "{value}"\n'
        )
        one_line_error(desk.ops("sync"), 2, f"remote.{key}", words)


def test_a_folder_remote_that_is_not_there(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    desk.add("untouch3")
    remote.folder.rmdir()
    one_line_error(desk.ops("sync"), 1, remote.url, "does not exist (is it mounted?)")
