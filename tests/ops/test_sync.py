"""taurus-ops sync between two homes (two machines) through a real S3 server and a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.machines import ACCESS_KEY, SECRET_KEY, Machine, make_remote

from taurus_ops.remote.codec import decode
from taurus_ops.store import format as fmt
from taurus_ops.store.lock import SessionLock


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path: Path):
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_remote(request.param, tmp_path, server)


@pytest.fixture
def pair(remote, tmp_path: Path) -> tuple[Machine, Machine]:
    return Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)


def sync(machine: Machine, *args: str) -> dict:
    out = machine.ops("sync", "--json", *args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def seed(machine: Machine) -> None:
    """Sessions, a name, an archived session with a name, and everything that must stay home."""
    for sid in ("alpha001", "bravo002", "charl003", "delta004"):
        machine.add(sid)
    os.symlink("2025-01-18_alpha001.json", machine.sessions / "password-reset.json")
    assert machine.ops("archive", "delta004").exit_code == 0
    os.symlink("../archive/2025-01-18_delta004.json", machine.sessions / "old-work.json")
    home = machine.home
    (home / "quarantine" / "2025-01-18").mkdir(parents=True)
    (home / "quarantine" / "2025-01-18" / "2025-01-18_broken.json").write_text("{ cut off")
    (home / "index.sqlite").write_bytes(b"SQLite format 3\0 not really")
    (home / "logs").mkdir(exist_ok=True)
    (home / "logs" / "taurus-ops.log").write_text("a log line\n")
    (home / "templates").mkdir()
    (home / "templates" / "mine.json").write_text('{"sessionId": "new", "messages": []}')
    (machine.sessions / ".2025-01-18_alpha001.json.lock").write_text("123\n")
    (machine.sessions / ".2025-01-18_bravo002.json.tmp-abcd").write_text("half")
    (machine.sessions / "notes.txt").write_text("not a session")


def test_push_then_pull_is_byte_identical_with_names_and_archive(pair, remote) -> None:
    desk, laptop = pair
    seed(desk)
    pushed = sync(desk)
    assert sorted(pushed["results"]["uploaded"]) == ["alpha001", "bravo002", "charl003", "delta004"]
    keys = set(remote.raw_objects())
    assert keys == {
        "taurus-remote.json",
        "devices/desk.json",
        "journal/desk.json",
        *(f"sessions/{s}.json" for s in ("alpha001", "bravo002", "charl003", "delta004")),
    }, "only sessions (and the remote's own records) are ever uploaded"
    pulled = sync(laptop)
    assert sorted(pulled["results"]["downloaded"]) == sorted(pushed["results"]["uploaded"])
    assert laptop.files() == desk.files()
    assert (
        laptop.names()
        == desk.names()
        == {
            "password-reset.json": "sessions/2025-01-18_alpha001.json",
            "old-work.json": "archive/2025-01-18_delta004.json",
        }
    )
    for path in [*laptop.sessions.iterdir(), *laptop.archive.iterdir()]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o777 == 0o600
    for path in (laptop.sessions, laptop.archive):
        assert path.stat().st_mode & 0o777 == 0o700
    assert not (laptop.home / "quarantine").exists() and not (laptop.home / "templates").exists()
    # the file's modification time travels too (ls -lt, find -mtime)
    for name in ("2025-01-18_alpha001.json", "2025-01-18_charl003.json"):
        ours = (desk.sessions / name).stat().st_mtime
        assert abs((laptop.sessions / name).stat().st_mtime - ours) < 0.01
    # and nothing moves the second time, either side
    for machine in (desk, laptop):
        again = sync(machine)
        assert again["actions"] == [] and again["results"]["uploaded"] == []
        assert again["unchanged"] == 4


def test_changes_archive_and_renames_travel(pair) -> None:
    desk, laptop = pair
    seed(desk)
    sync(desk)
    sync(laptop)
    desk.append(desk.sessions / "2025-01-18_bravo002.json", "one more thing")
    assert desk.ops("archive", "alpha001").exit_code == 0
    assert desk.ops("name", "charl003", "login-bug").exit_code == 0
    assert desk.ops("unarchive", "delta004").exit_code == 0
    plan = json.loads(desk.ops("sync", "--dry-run", "--json").stdout)
    assert sorted(a["id"] for a in plan["actions"]) == [
        "alpha001",
        "bravo002",
        "charl003",
        "delta004",
    ]
    assert desk.files() == desk.files()  # the dry run changed nothing
    sync(desk)
    result = sync(laptop)
    assert sorted(result["results"]["downloaded"]) == [
        "alpha001",
        "bravo002",
        "charl003",
        "delta004",
    ]
    assert laptop.files() == desk.files()
    assert laptop.names() == desk.names()
    assert laptop.names()["password-reset.json"] == "archive/2025-01-18_alpha001.json"


def test_both_sides_change_one_session_both_versions_are_kept(pair) -> None:
    desk, laptop = pair
    desk.add("shared01")
    sync(desk)
    sync(laptop)
    desk.append(desk.sessions / "2025-01-18_shared01.json", "desk: use bcrypt")
    laptop.append(laptop.sessions / "2025-01-18_shared01.json", "laptop: use argon2")
    sync(desk)
    mine = (laptop.sessions / "2025-01-18_shared01.json").read_bytes()
    result = sync(laptop)
    (conflict,) = result["results"]["conflicts"]
    assert conflict["id"] == "shared01" and conflict["device"] == "desk"
    assert (laptop.sessions / "2025-01-18_shared01.json").read_bytes() == mine  # local stays
    copy = fmt.loads((laptop.sessions / conflict["file"]).read_bytes())
    assert copy["parentSession"] == "shared01"
    assert copy["sessionId"] == conflict["copy"]
    assert copy["title"].endswith("(from desk)")
    assert copy["messages"][-1]["content"] == "desk: use bcrypt"
    out = laptop.ops("sync")
    assert out.exit_code == 0 and "conflict" not in out.stdout  # settled: nothing more
    sync(desk)
    assert desk.files() == laptop.files()
    for machine in (desk, laptop):
        assert {"desk: use bcrypt", "laptop: use argon2"} <= machine.texts()
    # the conflict is said in plain words too
    laptop.append(laptop.sessions / "2025-01-18_shared01.json", "laptop again")
    desk.append(desk.sessions / "2025-01-18_shared01.json", "desk again")
    sync(laptop)
    text = desk.ops("sync")
    assert text.exit_code == 0
    assert "conflict: shared01 changed here and on laptop" in text.stdout


def test_a_session_open_in_a_chat_is_not_replaced(pair) -> None:
    desk, laptop = pair
    desk.add("openchat")
    sync(desk)
    sync(laptop)
    desk.append(desk.sessions / "2025-01-18_openchat.json", "more from the desk")
    sync(desk)
    path = laptop.sessions / "2025-01-18_openchat.json"
    before = path.read_bytes()
    with SessionLock(path):
        result = sync(laptop)
        assert path.read_bytes() == before
        assert [s["id"] for s in result["skipped"]] == ["openchat"]
        assert "open in a chat" in result["skipped"][0]["why"]
    result = sync(laptop)
    assert result["results"]["downloaded"] == ["openchat"]
    assert "more from the desk" in laptop.texts()


def test_a_session_deleted_here_is_not_brought_back(pair, remote) -> None:
    desk, _ = pair
    desk.add("gone0001")
    desk.add("kept0001")
    sync(desk)
    (desk.sessions / "2025-01-18_gone0001.json").unlink()
    result = sync(desk)
    assert result["results"]["downloaded"] == []
    assert "deleted here" in result["skipped"][0]["why"]
    assert "sessions/gone0001.json" in remote.raw_objects()  # never deleted on the remote


def test_push_and_pull_only_go_one_way(pair) -> None:
    desk, laptop = pair
    desk.add("fromdesk")
    laptop.add("fromlapt")
    assert sync(laptop, "--pull")["results"]["uploaded"] == []
    assert sync(desk, "--push")["results"]["uploaded"] == ["fromdesk"]
    result = sync(laptop, "--pull")
    assert result["results"]["downloaded"] == ["fromdesk"] and result["otherDirection"] == 1
    result = sync(desk, "--pull")
    assert result["results"]["downloaded"] == []
    out = desk.ops("sync", "--push", "--pull")
    assert out.exit_code == 2 and out.output.count("\n") == 1


def test_remote_status_says_what_is_where(pair) -> None:
    desk, laptop = pair
    desk.add("onlydesk")
    desk.add("bothchng")
    sync(desk)
    sync(laptop)
    laptop.add("onlylapt")
    desk.append(desk.sessions / "2025-01-18_bothchng.json", "desk")
    laptop.append(laptop.sessions / "2025-01-18_bothchng.json", "laptop")
    sync(desk)
    before = laptop.files()
    out = laptop.ops("remote", "status", "--json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["localOnly"] == ["onlylapt"]
    assert info["inConflict"] == ["bothchng"]
    assert info["inStep"] == 1
    assert {d["device"] for d in info["devices"]} == {"desk", "laptop"}
    assert all(d["lastSync"] for d in info["devices"])
    assert laptop.files() == before  # status changes nothing
    text = laptop.ops("remote", "status")
    assert "in conflict:" in text.stdout and "desk" in text.stdout


def test_credentials_are_never_written_anywhere(pair, remote) -> None:
    desk, laptop = pair
    seed(desk)
    sync(desk)
    sync(laptop)
    assert desk.ops("share", "alpha001").exit_code == 0
    assert laptop.ops("remote", "status").exit_code == 0
    shown = desk.ops("config", "show")
    assert shown.exit_code == 0 and "remote.url" in shown.stdout
    assert SECRET_KEY not in shown.output and ACCESS_KEY not in shown.output
    places = [desk.user, laptop.user] + ([remote.folder] if remote.folder else [])
    for place in places:
        for path in place.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert SECRET_KEY.encode() not in data, path
                assert ACCESS_KEY.encode() not in data, path
    for key, data in remote.raw_objects().items():
        assert SECRET_KEY.encode() not in data and ACCESS_KEY.encode() not in data, key


def test_every_remote_object_is_whole_and_names_its_device(pair, remote) -> None:
    desk, _ = pair
    seed(desk)
    sync(desk)
    for key, data in remote.raw_objects().items():
        if key.startswith("sessions/"):
            meta, body = decode(data, None, key)
            assert meta.device == "desk"
            assert (desk.sessions / meta.file).exists() or (desk.archive / meta.file).exists()
            assert fmt.loads(body)["sessionId"] == key[len("sessions/") : -5]


def test_sync_waits_for_no_one_and_needs_a_remote(pair, ops) -> None:
    from taurus_ops.store.lock import OpsLock

    desk, _ = pair
    desk.add("locked01")
    with OpsLock(desk.home):
        out = desk.ops("sync")
        assert out.exit_code == 1 and out.stderr.count("\n") == 1
        assert "another maintenance job (cleanup, backup, sync or doctor)" in out.stderr
    assert desk.ops("sync").exit_code == 0
    bare = ops("sync")  # the default home of the tests: no remote configured
    assert bare.exit_code == 2 and "no remote is configured: set remote.url" in bare.output
    assert bare.output.count("\n") == 1


def requests_made(server, action) -> dict[str, int]:  # type: ignore[no-untyped-def]
    before = server.counts()
    action()
    after = server.counts()
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def test_a_sync_with_nothing_changed_is_one_small_listing(s3_server, tmp_path: Path) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    for n in range(30):
        desk.add(f"quiet{n:03d}", turns=1)
    sync(desk)
    sync(laptop)
    for machine in (desk, laptop):  # the journal says nobody wrote: the sessions are not listed
        assert requests_made(s3_server, lambda m=machine: sync(m)) == {"LIST": 1}
    desk.append(desk.sessions / "2025-01-18_quiet007.json", "a change on the desk")
    made = requests_made(s3_server, lambda: sync(desk))
    # journal "writing", the session, journal "done", and when the desk last synced
    assert made == {"LIST": 1, "PUT": 4}
    made = requests_made(s3_server, lambda: sync(laptop))  # the desk wrote: a full listing
    assert made["LIST"] >= 2 and made["GET"] == 2  # the desk's journal record, the session
    assert "a change on the desk" in laptop.texts()
    assert requests_made(s3_server, lambda: sync(laptop)) == {"LIST": 1}


def test_a_device_cut_off_mid_write_makes_everyone_list_until_it_finishes(
    s3_server, tmp_path: Path
) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    desk.add("halfway1")
    sync(desk)
    sync(laptop)
    client, prefix = s3_server.client(), remote.url.split("/", 3)[3]
    key = f"{prefix}/journal/desk.json"
    client.put_object(Bucket=remote.bucket, Key=key, Body=b'{"device": "desk", "state": "writing"}')
    client.put_object(  # what the desk wrote before it died, as another machine sees it
        Bucket=remote.bucket,
        Key=f"{prefix}/sessions/halfway2.json",
        Body=encode_session(desk, "halfway2"),
    )
    for _ in range(2):
        made = requests_made(s3_server, lambda: sync(laptop))
        assert made["LIST"] >= 2  # listed in full while the desk's record says "writing"
    assert "sessions/2025-01-18_halfway2.json" in laptop.files()
    sync(desk)  # the desk's next sync finishes its record
    sync(laptop)
    assert requests_made(s3_server, lambda: sync(laptop)) == {"LIST": 1}


def encode_session(machine: Machine, sid: str) -> bytes:
    from taurus_ops.remote.codec import Meta, encode, sha256_of

    path = machine.add(sid)
    body = path.read_bytes()
    path.unlink()
    return encode(Meta(file=path.name, sha256=sha256_of(body), device=machine.device), body)


def test_an_object_removed_by_hand_comes_back_at_the_daily_full_listing(
    s3_server, tmp_path: Path
) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    desk = Machine(tmp_path, "desk", remote)
    desk.add("byhand01")
    sync(desk)
    client, prefix = s3_server.client(), remote.url.split("/", 3)[3]
    client.delete_object(Bucket=remote.bucket, Key=f"{prefix}/sessions/byhand01.json")
    assert sync(desk)["actions"] == []  # trusted from the journal
    (state_file,) = (desk.home / "sync").iterdir()
    state = json.loads(state_file.read_text())
    state["listedAt"] = "2020-01-01T00:00:00.000Z"
    state_file.write_text(json.dumps(state))
    result = sync(desk)
    assert result["results"]["uploaded"] == ["byhand01"]
    assert "gone from the remote" in result["actions"][0]["reason"]
