"""The file checkpoints travel with the sessions that name them: pushed once, as immutable
objects, before the session; pulled into the checkpoint store, checked, and linked where a
fork's parent has them; a rewind on the other machine restores from them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.chat import make_app
from helpers.checkpoints import edited_document, edited_session
from helpers.fake_api import text, tool_use
from helpers.machines import Machine, RemoteSpec, make_remote
from helpers.sessions import write_session

from taurus_ops.remote import AFTER_CHECKPOINTS, CHECKPOINTS
from taurus_ops.store import SessionStore
from taurus_ops.store.checkpoints import CheckpointStore
from taurus_ops.store.fork import fork_session

EDITS = [("a.py", None, b"one\n"), ("a.py", b"one\n", b"two\n"), ("b.py", b"bee\n", b"bee 2\n")]
CONTENTS = {b"one\n", b"two\n", b"bee\n", b"bee 2\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path: Path) -> RemoteSpec:
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_remote(request.param, tmp_path, server)


@pytest.fixture
def pair(remote: RemoteSpec, tmp_path: Path) -> tuple[Machine, Machine]:
    return Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)


def sync(machine: Machine, *args: str) -> dict:
    out = machine.ops("sync", "--json", *args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def blobs(machine: Machine) -> CheckpointStore:
    return CheckpointStore.for_home(machine.home)


def remote_blobs(remote: RemoteSpec) -> dict[str, bytes]:
    return {
        k[len(CHECKPOINTS) :]: v
        for k, v in remote.raw_objects().items()
        if k.startswith(CHECKPOINTS)
    }


def put_raw(remote: RemoteSpec, key: str, data: bytes | None) -> None:
    """Change (or, with None, remove) an object behind Taurus's back."""
    if remote.kind == "file":
        assert remote.folder is not None
        path = remote.folder / key
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
        return
    client, prefix = remote.server.client(), remote.url.split("/", 3)[3]
    if data is None:
        client.delete_object(Bucket=remote.bucket, Key=f"{prefix}/{key}")
    else:
        client.put_object(Bucket=remote.bucket, Key=f"{prefix}/{key}", Body=data)


def requests_made(server, action) -> dict[str, int]:  # type: ignore[no-untyped-def]
    before = server.counts()
    action()
    after = server.counts()
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


# -- a chat on one machine, a rewind on the other ---------------------------------------------
def chat_on(machine: Machine, monkeypatch: pytest.MonkeyPatch, answers: list[str]):  # type: ignore[no-untyped-def]
    from taurus_ops.config import load_config

    monkeypatch.setenv("TAURUS_HOME", str(machine.home))
    monkeypatch.setenv("HOME", str(machine.user))
    config = load_config()
    return make_app(SessionStore.from_config(config), answers, config=config)


def test_a_file_edited_in_a_chat_here_is_rewound_there(
    pair, remote: RemoteSpec, fake_api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taurus_ops.chat.commands import Commands

    desk, laptop = pair
    fake_api.add(
        tool_use("write", {"file": "notes.txt", "content": "alpha\nbeta\n"}),
        text("Wrote it."),
        tool_use("edit", {"file": "notes.txt", "old_string": "beta", "new_string": "gamma"}),
        text("Changed it."),
    )
    app, _ = chat_on(desk, monkeypatch, ["yes", "yes"])
    app.start_new()
    app.message("write notes.txt")
    app.message("now change it")
    app.close()
    sid = app.session.id
    assert Path("notes.txt").read_text() == "alpha\ngamma\n"

    pushed = sync(desk)["results"]
    assert pushed["uploaded"] == [sid]
    assert pushed["checkpoints"]["uploaded"] == 2  # "alpha beta" and "alpha gamma", once each
    assert remote_blobs(remote) == {sha(c): c for c in (b"alpha\nbeta\n", b"alpha\ngamma\n")}

    pulled = sync(laptop)["results"]
    assert pulled["downloaded"] == [sid] and pulled["checkpoints"]["downloaded"] == 2
    here = blobs(laptop)
    assert here.read(sid, sha(b"alpha\nbeta\n")) == b"alpha\nbeta\n"
    for path in here.folder(sid).iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert here.folder(sid).stat().st_mode & 0o777 == 0o700
    shutil.rmtree(desk.home / "checkpoints")  # what the laptop restores is its own copy

    app, ui = chat_on(laptop, monkeypatch, [])
    app.open_ref(sid)
    commands = Commands(app)
    ui.answers += ["f", "y"]  # files only; yes, restore
    commands("/rewind 4")  # to just before the edit of message 6
    assert Path("notes.txt").read_text() == "alpha\nbeta\n"
    assert "restored notes.txt" in ui.said
    ui.answers += ["y"]
    commands("/rewind undo")
    assert Path("notes.txt").read_text() == "alpha\ngamma\n"
    app.close()

    # the rewinds are in the session now; every content they kept is on the remote already
    again = sync(laptop)["results"]
    assert again["uploaded"] == [sid] and again["checkpoints"]["uploaded"] == 0
    assert sync(desk)["results"]["downloaded"] == [sid]


def test_a_sync_with_nothing_changed_uploads_no_checkpoint(s3_server, tmp_path: Path) -> None:
    remote = make_remote("s3", tmp_path, s3_server)
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    path = edited_session(desk.home, desk.sessions, "work0001", EDITS)
    assert sync(desk)["results"]["checkpoints"]["uploaded"] == len(CONTENTS)
    assert sync(laptop)["results"]["checkpoints"]["downloaded"] == len(CONTENTS)
    for machine in (desk, laptop):
        assert requests_made(s3_server, lambda m=machine: sync(m)) == {"LIST": 1}
    # one more edit: only its new content goes, before the session
    doc = edited_document(blobs(desk), "work0001", [*EDITS, ("b.py", b"bee 2\n", b"bee 3\n")])
    path.write_bytes(json.dumps(doc, indent=2).encode())
    made = requests_made(s3_server, lambda: sync(desk))
    # journal "writing", the new blob, the session, journal "done", the device record
    assert made == {"LIST": 1, "PUT": 5}
    result = sync(laptop)["results"]
    assert result["checkpoints"] == {
        "uploaded": 0,
        "uploadedBytes": 0,
        "downloaded": 1,
        "downloadedBytes": len(b"bee 3\n"),
        "linked": 0,
    }
    assert blobs(laptop).read("work0001", sha(b"bee 3\n")) == b"bee 3\n"


def test_a_full_listing_never_walks_the_checkpoints(
    pair, remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.remote import connect

    desk, _ = pair
    edited_session(desk.home, desk.sessions, "work0001", EDITS)
    sync(desk)
    for name, value in desk.env().items():
        monkeypatch.setenv(name, value)
    with connect(load_config()) as conn:
        everything = {i.key for i in conn.remote.list("")}
        listed = {i.key for i in conn.remote.list("", after=AFTER_CHECKPOINTS)}
    assert {k for k in everything if k.startswith(CHECKPOINTS)} == {
        CHECKPOINTS + sha(c) for c in CONTENTS
    }
    assert listed == {k for k in everything if not k.startswith(CHECKPOINTS)}
    assert "sessions/work0001.json" in listed and "taurus-remote.json" in listed


def test_an_encrypted_remote_holds_no_checkpoint_in_clear(pair, remote: RemoteSpec) -> None:
    desk, laptop = pair
    assert desk.ops("remote", "init", "--encrypt").exit_code == 0
    key_file = desk.home / "remote.key"
    desk.write_config(encryptionKeyFile=str(key_file))
    secret = b"API_TOKEN = 'do-not-leak-4242'\n"
    edited_session(desk.home, desk.sessions, "work0001", [("cfg.py", secret, b"redacted\n")])
    sync(desk)
    stored = remote_blobs(remote)
    assert len(stored) == 2
    names = {sha(secret), sha(b"redacted\n")}
    for key, data in remote.raw_objects().items():
        assert b"do-not-leak" not in data and b"redacted" not in data, key
        assert not any(n in key or n.encode() in data for n in names), key  # not even the hash
    shutil.copy(key_file, laptop.home / "copied.key")
    laptop.write_config(encryptionKeyFile=str(laptop.home / "copied.key"))
    assert sync(laptop)["results"]["checkpoints"]["downloaded"] == 2
    assert blobs(laptop).read("work0001", sha(secret)) == secret


def test_a_damaged_or_missing_remote_checkpoint_is_one_warning_not_a_failed_sync(
    pair, remote: RemoteSpec
) -> None:
    desk, laptop = pair
    edited_session(desk.home, desk.sessions, "work0001", EDITS)
    sync(desk)
    put_raw(remote, CHECKPOINTS + sha(b"bee\n"), b"bee, altered\n")
    put_raw(remote, CHECKPOINTS + sha(b"one\n"), None)
    out = laptop.ops("sync")
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and len(out.stderr.splitlines()) == 2, out.stderr
    damaged = next(w for w in warnings if sha(b"bee\n")[:12] in w)
    missing = next(w for w in warnings if sha(b"one\n")[:12] in w)
    assert "is damaged on the remote" in damaged and "cannot restore b.py" in damaged
    assert "is not on the remote" in missing and "cannot restore a.py" in missing
    assert laptop.files() == desk.files()  # the session itself arrived
    here = blobs(laptop)
    assert not here.has("work0001", sha(b"bee\n")) and not here.has("work0001", sha(b"one\n"))
    assert here.read("work0001", sha(b"two\n")) == b"two\n"
    again = laptop.ops("sync")
    assert again.exit_code == 0 and "warning" not in again.stderr  # said once, not asked again
    # the doctor here says what a rewind can no longer do
    doctor = json.loads(laptop.ops("doctor", "--json").stdout)
    (note,) = doctor["problems"]
    assert note["code"] == "checkpoint-missing" and "a.py as before message 4" in note["problem"]


def test_a_fork_pulled_beside_its_parent_shares_its_blobs(pair, remote: RemoteSpec) -> None:
    desk, laptop = pair
    parent = edited_session(desk.home, desk.sessions, "work0001", EDITS)
    store = SessionStore(desk.sessions, desk.archive)
    first = fork_session(store, store.load(parent), 5, blobs(desk))
    pushed = sync(desk)["results"]
    assert sorted(pushed["uploaded"]) == sorted(["work0001", first.session.id])
    assert pushed["checkpoints"]["uploaded"] == len(CONTENTS)  # the fork's are the same objects
    pulled = sync(laptop)["results"]
    assert pulled["checkpoints"]["downloaded"] == len(CONTENTS)
    assert pulled["checkpoints"]["linked"] == 2  # the fork's two: "one", "two"
    here = blobs(laptop)
    for content in (b"one\n", b"two\n"):
        ours, theirs = (
            here.path("work0001", sha(content)),
            here.path(first.session.id, sha(content)),
        )
        assert ours.stat().st_ino == theirs.stat().st_ino, "a link, not a copy"
    # a fork made later is pulled beside the parent already here: linked, nothing downloaded
    second = fork_session(store, store.load(parent), 7, blobs(desk))
    sync(desk)
    pulled = sync(laptop)["results"]
    assert pulled["downloaded"] == [second.session.id]
    assert pulled["checkpoints"]["downloaded"] == 0 and pulled["checkpoints"]["linked"] == 4
    assert json.loads(laptop.ops("doctor", "--full", "--json").stdout)["problems"] == []


def test_the_other_version_of_a_conflict_brings_its_checkpoints(pair, remote: RemoteSpec) -> None:
    desk, laptop = pair
    path = edited_session(desk.home, desk.sessions, "work0001", EDITS[:1])
    sync(desk)
    sync(laptop)
    desk_doc = edited_document(blobs(desk), "work0001", [*EDITS[:1], ("a.py", b"one\n", b"desk\n")])
    path.write_bytes(json.dumps(desk_doc, indent=2).encode())
    mine = edited_document(blobs(laptop), "work0001", [*EDITS[:1], ("a.py", b"one\n", b"lap\n")])
    write_session(laptop.sessions, mine)
    sync(desk)
    (conflict,) = sync(laptop)["results"]["conflicts"]
    here = blobs(laptop)
    copy = conflict["copy"]
    assert here.read(copy, sha(b"desk\n")) == b"desk\n"  # fetched for the copy
    linked = here.path(copy, sha(b"one\n")).stat().st_ino
    assert linked == here.path("work0001", sha(b"one\n")).stat().st_ino  # linked from the original
    assert sha(b"lap\n") in remote_blobs(remote)  # ours went up before our version did
    assert json.loads(laptop.ops("doctor", "--full", "--json").stdout)["problems"] == []


def test_a_sync_cut_off_before_the_checkpoints_came_finishes_them_next_time(
    pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taurus_ops.ops.sync.checkpoints import Blobs
    from taurus_ops.remote.base import RemoteError

    desk, laptop = pair
    edited_session(desk.home, desk.sessions, "work0001", EDITS)
    sync(desk)
    real = Blobs._download

    def cut_off(self, sha_: str, sids: list[str]) -> str | None:  # type: ignore[no-untyped-def]
        raise RemoteError("remote: the connection was dropped (after retries)")

    monkeypatch.setattr(Blobs, "_download", cut_off)
    out = laptop.ops("sync")
    assert out.exit_code == 1 and "connection was dropped" in out.stderr
    assert laptop.files() == desk.files()  # the session is here; its checkpoints are not
    monkeypatch.setattr(Blobs, "_download", real)
    result = sync(laptop)["results"]
    assert result["conflicts"] == [] and result["checkpoints"]["downloaded"] == len(CONTENTS)
    assert result["alreadyInStep"] == ["work0001"]
    assert sorted(b.sha for b in blobs(laptop).blobs("work0001")) == sorted(map(sha, CONTENTS))


def test_remote_status_counts_checkpoint_bytes_here_and_there(pair, remote: RemoteSpec) -> None:
    desk, laptop = pair
    edited_session(desk.home, desk.sessions, "work0001", EDITS)
    sync(desk)
    size = sum(len(c) for c in CONTENTS)
    info = json.loads(desk.ops("remote", "status", "--json").stdout)
    assert info["checkpoints"] == {
        "localFiles": 4,
        "localBytes": size,
        "remoteObjects": 4,
        "remoteBytes": size,
    }
    info = json.loads(laptop.ops("remote", "status", "--json").stdout)
    assert info["checkpoints"]["localFiles"] == 0 and info["checkpoints"]["remoteBytes"] == size
    shown = laptop.ops("remote", "status").stdout
    assert f"checkpoints: 0 files, 0B here; 4 objects, {size}B on the remote" in shown


def test_racing_pushes_of_one_checkpoint_never_conflict(pair, remote: RemoteSpec) -> None:
    desk, laptop = pair
    shared = [f"shared content {n}\n".encode() for n in range(6)]
    for round_no in range(2):
        for machine in (desk, laptop):
            for n, content in enumerate(shared):  # both name the same contents, at once
                sid = f"{machine.device[:4]}{round_no}{n:03d}"
                own = f"{machine.device} {round_no} {n}\n".encode()
                edited_session(machine.home, machine.sessions, sid, [("s.py", content, own)])
        racers = [m.popen("sync", "--json") for m in (desk, laptop)]
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
            results = json.loads(out)["results"]
            assert results["failed"] == [] and results["warnings"] == [], results
    stored = remote_blobs(remote)
    for content in shared:
        assert stored[sha(content)] == content  # one object, whole, whoever made it
    for machine in (desk, laptop):
        sync(machine)
    assert desk.files() == laptop.files()
    for machine in (desk, laptop):  # every checkpoint each session names is here, whole
        assert json.loads(machine.ops("doctor", "--full", "--json").stdout)["problems"] == []


def test_a_checkpoint_a_full_disk_cannot_keep_is_fetched_by_the_next_sync(
    pair, tmp_path: Path
) -> None:
    import subprocess

    from helpers.mounts import mount_tmpfs

    desk, laptop = pair
    big = os.urandom(300_000)
    edited_session(desk.home, desk.sessions, "work0001", [("data.bin", big, b"small\n")])
    sync(desk)
    small = laptop.home / "checkpoints"
    small.mkdir(mode=0o700)
    mount_tmpfs(small, "size=64k,mode=0700")
    try:
        out = laptop.ops("sync")
        assert out.exit_code == 0, out.output
        lines = out.stderr.splitlines()
        assert len(lines) == 1, out.stderr  # (once seen with a second line under load)
        (warning,) = lines
        assert "could not be kept here (No space left on device)" in warning
        assert "the next sync tries again" in warning
        assert laptop.files() == desk.files()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True, timeout=10)
    result = sync(laptop)["results"]
    assert result["alreadyInStep"] == ["work0001"] and result["warnings"] == []
    assert blobs(laptop).read("work0001", sha(big)) == big
