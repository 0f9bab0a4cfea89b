"""Offsite backups (backup.destination) through a real S3 server on 127.0.0.1 and a folder:
upload, list, rotation, restore on another machine, plain tar, SIGKILL mid-upload,
refused credentials and missing buckets, encryption, and no credential ever on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from helpers.machines import ACCESS_KEY, SECRET_KEY, Machine, RemoteSpec, make_remote
from helpers.proxy import FaultyProxy

from taurus_ops.store import format as fmt


class Backups(Machine):
    """A machine whose backups go to the remote as backup.destination (no remote.url)."""

    def __init__(self, root: Path, device: str, remote: RemoteSpec, **config: str) -> None:
        self.config = {"keep": "7", **config}
        super().__init__(root, device, remote)

    def write_config(self, **extra: str) -> None:
        self.config.update(extra)
        remote = [f"  device: {self.device}"]
        if self.endpoint:
            remote.append(f"  endpointUrl: {self.endpoint}")
        if "key" in self.config:
            remote.append(f"  encryptionKeyFile: {self.config['key']}")
        url = self.config.get("destination", self.remote.url)
        text = f"backup:\n  destination: {url}\n  keep: {self.config['keep']}\n"
        (self.home / "config.yaml").write_text(text + "remote:\n" + "\n".join(remote) + "\n")

    @property
    def backups(self) -> Path:
        return self.home / "backups"

    def local(self) -> list[Path]:
        return sorted(self.backups.glob("taurus-sessions-backup-*.tar.gz"))

    def listed(self) -> list[dict]:
        out = self.ops("backup", "list", "--json")
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    def remote_listed(self) -> list[dict]:
        return [b for b in self.listed() if b["where"] == "remote"]


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path: Path) -> RemoteSpec:
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_remote(request.param, tmp_path, server)


def seeded(machine: Machine, n: int = 3) -> dict[str, bytes]:
    for i in range(n):
        machine.add(f"offs{i:04d}")
    os.symlink("2025-01-18_offs0000.json", machine.sessions / "login-bug.json")
    return machine.files()


def create(machine: Machine, *args: str) -> dict:
    out = machine.ops("backup", "create", "--json", *args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def backup_objects(remote: RemoteSpec) -> dict[str, bytes]:
    return {k: v for k, v in remote.raw_objects().items() if "taurus-sessions-backup-" in k}


def one_line_error(result, code: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_create_uploads_the_verified_archive_and_list_shows_where(remote, tmp_path) -> None:
    desk = Backups(tmp_path, "desk", remote)
    seeded(desk)
    out = desk.ops("backup", "create")
    assert out.exit_code == 0, out.output
    (archive,) = desk.local()
    url = f"{remote.url}/desk/{archive.name}"
    assert f"Uploaded to {url}" in out.output
    stem = archive.name[: -len(".tar.gz")]
    objects = backup_objects(remote)
    assert set(objects) == {f"desk/{archive.name}", f"desk/{stem}.manifest.json"}
    assert objects[f"desk/{archive.name}"] == archive.read_bytes()  # the very archive
    record = json.loads(objects[f"desk/{stem}.manifest.json"])
    assert record["format"] == "taurus-backup-remote" and record["device"] == "desk"
    assert record["objectSha256"] == record["archiveSha256"] and record["encrypted"] is None
    listed = desk.listed()
    assert [(b["where"], b["path"]) for b in listed] == [("local", str(archive)), ("remote", url)]
    table = desk.ops("backup", "list").output
    assert "remote (desk)" in table and url in table and "WHERE" in table
    verified = desk.ops("backup", "verify", url)
    assert verified.exit_code == 0 and "checksums match" in verified.output, verified.output
    log = (desk.home / "logs" / "taurus-ops.log").read_text()
    assert f"backup: uploaded {url}" in log


def test_rotation_removes_old_remote_copies_of_this_machine_only(remote, tmp_path) -> None:
    desk = Backups(tmp_path, "desk", remote, keep="2")
    laptop = Backups(tmp_path, "laptop", remote, keep="2")
    seeded(desk)
    seeded(laptop)
    theirs = create(laptop)["offsite"]["uploaded"]
    made = [create(desk)["offsite"]["uploaded"] for _ in range(3)]
    assert len(set(made)) == 3  # same second: distinct names all the same
    desk_remote = [b["path"] for b in desk.remote_listed() if b["device"] == "desk"]
    assert desk_remote == [made[2], made[1]]  # the newest two, newest first
    assert theirs in [b["path"] for b in desk.remote_listed()]  # another machine's stays
    assert len(desk.local()) == 2
    # lowering backup.keep: `backup rotate` applies it here and there
    desk.write_config(keep="1")
    dry = desk.ops("backup", "rotate", "--dry-run")
    assert dry.exit_code == 0 and f"Would remove old remote backup {made[1]}" in dry.output
    assert len([b for b in desk.remote_listed() if b["device"] == "desk"]) == 2
    done = desk.ops("backup", "rotate", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["removedRemote"] == [made[1]]
    assert [b["path"] for b in desk.remote_listed()] == [made[2], theirs]
    kept = [url[len(remote.url) + 1 : -len(".tar.gz")] for url in (made[2], theirs)]
    assert set(backup_objects(remote)) == {
        f"{stem}{end}" for stem in kept for end in (".tar.gz", ".manifest.json")
    }  # the rest gone, archive and manifest


def test_restore_from_the_remote_on_a_new_machine(remote, tmp_path) -> None:
    desk = Backups(tmp_path, "desk", remote)
    before = seeded(desk)
    url = create(desk)["offsite"]["uploaded"]
    laptop = Backups(tmp_path, "laptop", remote)  # a new disk: nothing here yet
    assert [b["path"] for b in laptop.remote_listed()] == [url]
    dry = laptop.ops("backup", "restore", url, "--dry-run")
    assert dry.exit_code == 0 and "Would restore 4" in dry.output, dry.output
    assert not laptop.sessions.exists()
    out = laptop.ops("backup", "restore", url)
    assert out.exit_code == 0, out.output
    assert laptop.files() == before
    assert os.readlink(laptop.sessions / "login-bug.json") == "2025-01-18_offs0000.json"
    for path in laptop.sessions.glob("*_offs*.json"):
        assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in laptop.home.iterdir() if p.name.startswith(".backup-")]  # temp gone


def test_a_downloaded_remote_backup_restores_with_plain_tar(remote, tmp_path) -> None:
    desk = Backups(tmp_path, "desk", remote)
    before = seeded(desk)
    url = create(desk)["offsite"]["uploaded"]
    key = url[len(remote.url) + 1 :]
    downloaded = tmp_path / "downloaded.tar.gz"
    downloaded.write_bytes(remote.raw_objects()[key])  # fetched around Taurus
    target = tmp_path / "new-home"
    target.mkdir()
    done = subprocess.run(["tar", "-xzf", str(downloaded), "-C", str(target)], capture_output=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    for name, data in before.items():
        assert (target / ".taurus" / name).read_bytes() == data


def test_sigkill_during_the_upload_leaves_nothing_listed(s3_server, tmp_path) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    proxy = FaultyProxy(s3_server.port).set("trickle", chunk=65536, delay=0.05)
    try:
        desk = Backups(tmp_path, "desk", remote)
        desk.endpoint = proxy.endpoint
        desk.write_config()
        big = desk.add("bigsess1")
        data = fmt.loads(big.read_bytes())
        data["messages"].append({"role": "user", "content": os.urandom(5_500_000).hex()})
        # about 6 MB once compressed: more than the socket buffers hold (4 MB at most here),
        # so a killed client's upload really is cut short, not finished by the kernel
        big.write_bytes(fmt.dumps(data))
        proc = desk.popen("backup", "create")
        _wait_for(lambda: proxy.counters.big_started >= 1)  # the archive's upload has begun
        time.sleep(0.3)
        assert proxy.counters.puts_done < proxy.counters.puts_started
        proc.send_signal(signal.SIGKILL)  # a part of the archive is on its way
        proc.wait(timeout=10)
        time.sleep(1.0)  # the proxy notices the client gone and drops the upstream request
        assert proxy.counters.puts_done < proxy.counters.puts_started
        proxy.set("pass")
        assert backup_objects(remote) == {}
        assert desk.remote_listed() == []
        assert len(desk.local()) == 1  # the local backup was kept before the upload began
        again = desk.ops("backup", "create")
        assert again.exit_code == 0, again.output
        assert len(desk.remote_listed()) == 1
        assert desk.ops("backup", "verify", desk.remote_listed()[0]["path"]).exit_code == 0
    finally:
        proxy.close()


def test_a_cut_off_upload_is_not_a_backup_and_rotation_clears_it(tmp_path) -> None:
    """Killed between the archive and its manifest: the archive alone is never listed,
    and once a day old, the next backup's rotation removes it."""
    remote = make_remote("file", tmp_path)
    desk = Backups(tmp_path, "desk", remote)
    seeded(desk)
    create(desk)
    (archive,) = desk.local()
    folder = tmp_path / "shared-folder" / "desk"
    old_half = folder / "taurus-sessions-backup-20200101-030000.tar.gz"
    new_half = folder / archive.name.replace(".tar.gz", "-7.tar.gz")
    for half in (old_half, new_half):
        half.write_bytes(archive.read_bytes())
    (folder / ".taurus-sessions-backup-x.tar.gz.tmp-1a2b3c").write_bytes(b"half")
    out = desk.ops("backup", "list")
    assert out.exit_code == 0
    assert "2 incomplete uploads" in out.stderr
    assert len(desk.remote_listed()) == 1
    refused = desk.ops("backup", "restore", f"{remote.url}/desk/{old_half.name}")
    one_line_error(refused, 1, "no manifest beside it")
    create(desk)
    assert not old_half.exists() and new_half.exists()
    assert len(desk.remote_listed()) == 2


def test_a_missing_bucket_is_one_line_and_the_local_backup_is_kept(
    s3_server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    remote = make_remote("s3", tmp_path, s3_server)
    desk = Backups(tmp_path, "desk", remote, destination="s3://no-such-bucket-here/x")
    before = seeded(desk)
    out = desk.ops("backup", "create")
    one_line_error(out, 1, "Error: remote s3://no-such-bucket-here/x", "does not exist")
    (archive,) = desk.local()
    assert f"the local backup {archive} is kept" in out.stderr
    assert desk.run("backup", "verify", str(archive)).returncode == 0
    assert desk.files() == before
    listed = desk.ops("backup", "list")
    one_line_error(listed, 1, "s3://no-such-bucket-here/x", "does not exist")
    assert str(archive) in listed.stdout  # the local ones are still shown


def test_a_dropped_connection_mid_upload_is_one_line_and_nothing_is_listed(
    s3_server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    remote = make_remote("s3", tmp_path, s3_server)
    proxy = FaultyProxy(s3_server.port).set("cut", count=-1)
    try:
        desk = Backups(tmp_path, "desk", remote)
        desk.endpoint = proxy.endpoint
        desk.write_config()
        seeded(desk)
        out = desk.ops("backup", "create")
        one_line_error(out, 1, f"Error: remote {remote.url}", "connection was dropped", "is kept")
        assert proxy.counters.cut >= 2  # retried once, then given up
        proxy.set("pass")
        assert backup_objects(remote) == {} and len(desk.local()) == 1
        assert create(desk)["offsite"]["error"] is None
    finally:
        proxy.close()


def test_refused_credentials_are_one_line_and_the_local_backup_is_kept(tmp_path) -> None:
    from helpers.s3_server import S3Server

    server = S3Server(check_keys=True)
    try:
        remote = make_remote("file", tmp_path)
        remote.kind, remote.url, remote.endpoint = "s3", "s3://some-bucket/p", server.endpoint
        desk = Backups(tmp_path, "desk", remote)
        before = seeded(desk)
        out = desk.ops("backup", "create")
        one_line_error(out, 1, "s3://some-bucket/p", "credentials refused", "is kept")
        assert len(desk.local()) == 1 and desk.files() == before
    finally:
        server.close()


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"destination": "s3://Not_A_Bucket/x"}, "backup.destination"),
        ({"destination": "ftp://host/x"}, "backup.destination"),
        ({"key": "/nonexistent/remote.key"}, "remote.encryptionKeyFile"),
    ],
)
def test_bad_settings_exit_2_before_anything_is_written(
    setting: dict[str, str], words: str, tmp_path
) -> None:
    remote = make_remote("file", tmp_path)
    desk = Backups(tmp_path, "desk", remote, **setting)
    seeded(desk)
    out = desk.ops("backup", "create")
    one_line_error(out, 2, words)
    assert not desk.backups.exists()


def test_encrypted_backups(remote, tmp_path) -> None:
    from taurus_ops.remote.codec import new_key_file

    key = new_key_file(tmp_path / "desk.key")
    desk = Backups(tmp_path, "desk", remote, key=str(key.path))
    before = seeded(desk)
    url = create(desk)["offsite"]["uploaded"]
    objects = backup_objects(remote)
    (sealed,) = (v for k, v in objects.items() if k.endswith(".tar.gz"))
    (record,) = (json.loads(v) for k, v in objects.items() if k.endswith(".manifest.json"))
    assert sealed.startswith(b"TAURUS-SEALED/1 ")
    assert b"offs0000" not in sealed and b"Task" not in sealed  # no transcript, no file name
    assert record["encrypted"] == "AES-256-GCM" and record["keyId"] == key.id
    assert record["objectSha256"] != record["archiveSha256"]
    assert desk.remote_listed()[0]["encrypted"] is True
    # another machine: without the key, with another key, then with a copy of it
    laptop = Backups(tmp_path, "laptop", remote)
    one_line_error(laptop.ops("backup", "restore", url), 2, "is encrypted", "encryptionKeyFile")
    other = new_key_file(tmp_path / "other.key")
    laptop.write_config(key=str(other.path))
    one_line_error(laptop.ops("backup", "verify", url), 2, "wrong key")
    copy = tmp_path / "laptop.key"
    copy.write_bytes(key.path.read_bytes())
    laptop.write_config(key=str(copy))
    assert laptop.ops("backup", "verify", url).exit_code == 0
    out = laptop.ops("backup", "restore", url)
    assert out.exit_code == 0, out.output
    assert laptop.files() == before


def test_a_remote_backup_damaged_or_altered_is_refused(tmp_path) -> None:
    remote = make_remote("file", tmp_path)
    desk = Backups(tmp_path, "desk", remote)
    seeded(desk)
    url = create(desk)["offsite"]["uploaded"]
    path = tmp_path / "shared-folder" / url.split("/shared-folder/", 1)[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = desk.ops("backup", "verify", url)
    assert out.exit_code == 1 and "does not match the sha256" in out.output, out.output
    gone = desk.sessions / "2025-01-18_offs0001.json"
    gone.unlink()
    refused = desk.ops("backup", "restore", url)
    assert refused.exit_code == 1 and "nothing restored" in refused.output
    assert not gone.exists()


def test_no_credential_is_written_anywhere_under_the_home(s3_server, tmp_path) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    desk = Backups(tmp_path, "desk", remote, keep="1")
    seeded(desk)
    url = create(desk)["offsite"]["uploaded"]
    create(desk)
    desk.ops("backup", "list")
    desk.ops("backup", "verify", url)
    (desk.sessions / "2025-01-18_offs0002.json").unlink()
    desk.ops("backup", "restore", desk.remote_listed()[0]["path"])
    bad = Backups(tmp_path, "desk2", remote, destination="s3://no-such-bucket-here/x")
    seeded(bad)
    bad.ops("backup", "create")
    assert (desk.home / "logs" / "taurus-ops.log").read_text().count("backup: uploaded") == 2
    for machine in (desk, bad):
        for path in machine.user.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if path.suffix == ".gz":
                    with tarfile.open(path) as tar:
                        data += b"".join(
                            tar.extractfile(m).read()  # type: ignore[union-attr]
                            for m in tar.getmembers()
                            if m.isreg()
                        )
                assert ACCESS_KEY.encode() not in data, path
                assert SECRET_KEY.encode() not in data, path


def test_the_scheduled_backup_uploads_too(remote, tmp_path, monkeypatch) -> None:
    from taurus_ops.ops import schedule

    desk = Backups(tmp_path, "desk", remote)
    seeded(desk)
    for name, value in desk.env().items():
        monkeypatch.setenv(name, value)
    assert schedule.run_job("backup", lock_wait=0) == "ok"
    assert len(desk.remote_listed()) == 1
    log = (desk.home / "logs" / "taurus-ops.log").read_text()
    assert "backup: scheduled run finished: wrote" in log and "; uploaded to " in log


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
