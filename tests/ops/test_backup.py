"""Backup, verify and restore: round trips with plain tar, hostile archives, full disks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.mounts import mount_tmpfs
from helpers.processes import without_dac
from helpers.sessions import make_document, write_session

from taurus_ops.ops.backup import create
from taurus_ops.ops.backup.create import create_backup
from taurus_ops.ops.backup.layout import BACKUP_RE, scope_of
from taurus_ops.ops.backup.rotate import list_backups
from taurus_ops.ops.backup.verify import verify_archive
from taurus_ops.ops.context import JobContext
from taurus_ops.store import format as fmt


def create_rotating(config, now: datetime) -> create.CreateResult:
    """A backup as `backup create` makes one: written, verified, then old ones rotated."""
    return create.run(JobContext.of(config), create.CreateRequest(now=now))


def populate(user: Path) -> dict[str, bytes]:
    """Sessions, a name, an archived session, a template and config; returns rel -> bytes."""
    taurus = user / ".taurus"
    sessions, archive = taurus / "sessions", taurus / "archive"
    base = datetime(2025, 1, 18, 10, 0, tzinfo=UTC)
    for i in range(5):
        write_session(sessions, make_document(f"sess{i}", created=base + timedelta(days=i)))
    write_session(archive, make_document("old1", created=base - timedelta(days=90)))
    os.symlink("2025-01-18_sess0.json", sessions / "login-bug.json")
    os.symlink("../archive/2024-10-20_old1.json", sessions / "old-work.json")
    (taurus / "templates").mkdir(mode=0o700)
    (taurus / "templates" / "review.json").write_text('{"messages": []}\n')
    (taurus / "config.yaml").write_text("backup:\n  keep: 3\n")
    (sessions / ".2025-01-18_sess1.json.lock").write_text("123\n")  # a stale lock: not backed up
    return snapshot(user)


def snapshot(user: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    taurus = user / ".taurus"
    for path in sorted(taurus.rglob("*")):
        rel = str(path.relative_to(user))
        if "backups" in path.parts or "logs" in path.parts or path.name.endswith(".lock"):
            continue
        if path.is_symlink():
            out[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file() and path.name not in ("cleanup-state.json", "ops.lock"):
            out[rel] = path.read_bytes()
    return out


def only_backup(user: Path) -> Path:
    found = list((user / ".taurus" / "backups").glob("taurus-sessions-backup-*.tar.gz"))
    assert len(found) == 1
    return found[0]


def test_round_trip_plain_tar_and_restore_byte_identical(home: Path, ops) -> None:
    before = populate(home)
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    archive = only_backup(home)
    assert BACKUP_RE.match(archive.name)
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    verified = ops("backup", "verify", str(archive))
    assert verified.exit_code == 0 and "checksums match" in verified.output
    names = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True).stdout
    assert ".taurus/sessions/2025-01-18_sess0.json" in names.splitlines()
    assert not any(n.startswith("/") or ".lock" in n for n in names.splitlines())
    # the tutorial's restore: plain tar into the home folder
    saved = home / ".taurus" / "backups"
    os.rename(home / ".taurus", home / "taurus-before")
    subprocess.run(["tar", "-xzf", str(saved.parent.parent / "taurus-before" / "backups" / archive.name), "-C", str(home)], check=True)  # fmt: skip
    after = snapshot(home)
    after.pop(".taurus/backup-manifest.json")
    assert after == before
    manifest = json.loads((home / ".taurus" / "backup-manifest.json").read_text())
    for entry in manifest["files"]:
        data = (home / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert oct((home / ".taurus" / "sessions").stat().st_mode & 0o777) == "0o700"
    # taurus-ops restore into an empty Taurus home
    import shutil

    shutil.rmtree(home / ".taurus")
    restored = ops("backup", "restore", str(home / "taurus-before" / "backups" / archive.name))
    assert restored.exit_code == 0, restored.output
    assert snapshot(home) == before
    for path in (home / ".taurus" / "sessions").glob("*.json"):
        if not path.is_symlink():
            assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(ops("show", "old-work", "--json").output)["sessionId"] == "old1"


def test_restore_keeps_newer_on_disk_unless_forced(home: Path, ops) -> None:
    populate(home)
    assert ops("backup", "create").exit_code == 0
    archive = only_backup(home)
    sessions = home / ".taurus" / "sessions"
    newer = sessions / "2025-01-18_sess0.json"
    doc = json.loads(newer.read_bytes())
    doc["messages"].append({"role": "user", "content": "a later turn"})
    doc["updated"] = fmt.now_iso()
    newer.write_bytes(fmt.dumps(doc))
    older = sessions / "2025-01-19_sess1.json"
    original_older = older.read_bytes()
    doc1 = json.loads(original_older)
    doc1["updated"] = "2020-01-01T00:00:00.000Z"
    doc1["messages"] = doc1["messages"][:1]
    older.write_bytes(fmt.dumps(doc1))
    os.chmod(older, 0o644)
    (sessions / "2025-01-20_sess2.json").unlink()

    dry = ops("backup", "restore", str(archive), "--dry-run")
    assert dry.exit_code == 0
    assert "newer on disk" in dry.output and "2025-01-20_sess2.json: missing" in dry.output
    assert not (sessions / "2025-01-20_sess2.json").exists()  # the dry run wrote nothing

    out = ops("backup", "restore", str(archive))
    assert out.exit_code == 0, out.output
    assert b"a later turn" in newer.read_bytes()  # kept: newer on disk
    assert older.read_bytes() == original_older  # replaced: older on disk
    assert oct(older.stat().st_mode & 0o777) == "0o600"
    assert (sessions / "2025-01-20_sess2.json").is_file()
    kept_copies = list((home / ".taurus" / "restore-replaced").rglob("2025-01-19_sess1.json"))
    assert len(kept_copies) == 1 and b"2020-01-01" in kept_copies[0].read_bytes()

    forced = ops("backup", "restore", str(archive), "--force")
    assert forced.exit_code == 0
    assert b"a later turn" not in newer.read_bytes()


def test_backup_outside_home_and_restore_maps_to_settings(taurus_home: Path, store, ops) -> None:
    # the conftest layout: TAURUS_HOME is not inside HOME
    write_session(store.session_dir, make_document("abc123"))
    out = ops("backup", "create")
    assert out.exit_code == 0 and "outside your home folder" in out.output
    archive = next((taurus_home / "backups").glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        members = tar.getnames()
    assert str(store.session_dir).lstrip("/") + "/2025-01-18_abc123.json" in members
    (store.session_dir / "2025-01-18_abc123.json").unlink()
    assert ops("backup", "restore", str(archive)).exit_code == 0
    assert (store.session_dir / "2025-01-18_abc123.json").is_file()


def test_restore_to_folder(home: Path, ops, tmp_path: Path) -> None:
    before = populate(home)
    assert ops("backup", "create").exit_code == 0
    target = tmp_path / "inspect"
    out = ops("backup", "restore", str(only_backup(home)), "--to", str(target))
    assert out.exit_code == 0, out.output
    got = snapshot(target)
    assert got == before


# -- verification failures -----------------------------------------------------------------------
def rewrite(archive: Path, dest: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """Copy ``archive`` member by member through ``change(info, data) -> (info, data)|None``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:gz") as out:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            changed = change(info, data)
            if changed is None:
                continue
            info, data = changed
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


def test_verify_catches_corruption_and_bad_files(home: Path, ops, tmp_path: Path) -> None:
    populate(home)
    assert ops("backup", "create").exit_code == 0
    good = only_backup(home)

    def flip(info, data):  # type: ignore[no-untyped-def]
        if info.name.endswith("sess2.json"):
            data = data.replace(b"Help", b"Hel!", 1)
        return info, data

    bad_sum = rewrite(good, tmp_path / "flipped.tar.gz", flip)
    out = ops("backup", "verify", str(bad_sum))
    assert out.exit_code == 1 and "checksum mismatch" in out.output
    dropped = rewrite(
        good,
        tmp_path / "dropped.tar.gz",
        lambda i, d: None if i.name.endswith("sess3.json") else (i, d),
    )
    out = ops("backup", "verify", str(dropped))
    assert out.exit_code == 1 and "missing" in out.output
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out = ops("backup", "verify", str(truncated))
    assert out.exit_code == 1 and "unreadable archive" in out.output
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a gzip file at all" * 10)
    assert ops("backup", "verify", str(garbage)).exit_code == 1
    plain = tmp_path / "plain.tar.gz"
    subprocess.run(["tar", "-czf", str(plain), "-C", str(home), ".taurus/sessions"], check=True)
    out = ops("backup", "verify", str(plain))
    assert out.exit_code == 1 and "no manifest" in out.output
    missing = ops("backup", "verify", str(tmp_path / "nope.tar.gz"))
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    # a failed archive restores nothing
    before = snapshot(home)
    (home / ".taurus" / "sessions" / "2025-01-20_sess2.json").unlink()
    refused = ops("backup", "restore", str(bad_sum))
    assert refused.exit_code == 1 and "nothing restored" in refused.output
    assert not (home / ".taurus" / "sessions" / "2025-01-20_sess2.json").exists()
    assert len(snapshot(home)) == len(before) - 1


# -- hostile archives ----------------------------------------------------------------------------
def _manifest_for(files: dict[str, bytes], links: list[dict] | None = None) -> bytes:
    return fmt.dumps(
        {
            "format": "taurus-backup",
            "version": 1,
            "created": fmt.now_iso(),
            "home": "/home/x",
            "roots": [{"kind": "sessions", "member": ".taurus/sessions", "path": "/x"}],
            "files": [
                {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(), "mtime": 0}
                for n, d in files.items()
            ],
            "links": links or [],
        }
    )


def craft(path: Path, hostile: list[tarfile.TarInfo], listed: dict[str, bytes]) -> Path:
    """A plausible backup (one good session and a manifest) plus hostile members."""
    good = {".taurus/sessions/2025-01-18_good.json": fmt.dumps(make_document("good"))}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in good.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        for info in hostile:
            data = listed.get(info.name)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        links = [
            {"path": i.name, "target": i.linkname}
            for i in hostile
            if i.issym() and i.name.endswith(".json")
        ]
        manifest = _manifest_for({**good, **listed}, links)
        info = tarfile.TarInfo(".taurus/backup-manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def hostile_cases(outside: Path) -> dict[str, tuple[list[tarfile.TarInfo], dict[str, bytes], str]]:
    evil = b'{"evil": true}\n'
    slip = f"../../../../../../../../{str(outside).lstrip('/')}/slip.json"
    return {
        "tar-slip": ([_info(slip)], {slip: evil}, "'..'"),
        "absolute": ([_info(f"{outside}/abs.json")], {f"{outside}/abs.json": evil}, "absolute"),
        "symlink-out": (
            [_info(".taurus/sessions/passwd.json", tarfile.SYMTYPE, "/etc/passwd")],
            {},
            "not a file in this backup",
        ),
        "symlink-then-write": (
            [
                _info(".taurus/sessions/escape", tarfile.SYMTYPE, str(outside)),
                _info(".taurus/sessions/escape/through.json"),
            ],
            {".taurus/sessions/escape/through.json": evil},
            "symbolic link",
        ),
        "hardlink": (
            [_info(".taurus/sessions/hard.json", tarfile.LNKTYPE, "/etc/passwd")],
            {},
            "hard link",
        ),
        "device": ([_info(".taurus/sessions/dev.json", tarfile.CHRTYPE)], {}, "special file"),
        "fifo": ([_info(".taurus/sessions/fifo.json", tarfile.FIFOTYPE)], {}, "special file"),
    }


@pytest.mark.parametrize(
    "case",
    ["tar-slip", "absolute", "symlink-out", "symlink-then-write", "hardlink", "device", "fifo"],
)
def test_hostile_archive_writes_nothing(case: str, home: Path, ops, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members, listed, expected = hostile_cases(outside)[case]
    archive = craft(tmp_path / f"{case}.tar.gz", members, listed)
    sessions = home / ".taurus" / "sessions"
    sessions.mkdir(parents=True)
    verify = ops("backup", "verify", "--json", str(archive))
    assert verify.exit_code == 1
    problems = json.loads(verify.output)["problems"]
    assert any(expected in p for p in problems), problems
    target = tmp_path / "target"
    for args in ([], ["--to", str(target)], ["--force"]):
        out = ops("backup", "restore", str(archive), *args)
        assert out.exit_code == 1 and "nothing restored" in out.output
        assert "Traceback" not in out.output
    assert list(outside.iterdir()) == []
    assert list(sessions.iterdir()) == []
    assert not target.exists()
    assert not Path("/etc/passwd.json").exists()


# -- consistency while a chat saves --------------------------------------------------------------
SAVER = """
import sys, json
from pathlib import Path
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store import format as fmt
path = Path(sys.argv[1])
doc = json.loads(path.read_bytes())
print("ready", flush=True)
i = 0
while True:
    i += 1
    doc["messages"].append({"role": "user", "content": f"turn {i} " + "x" * 2000})
    doc["counter"] = i
    atomic_write(path, fmt.dumps(doc), durable=False)
"""


def test_each_session_captured_at_one_version_while_a_chat_saves(home: Path) -> None:
    populate(home)
    path = home / ".taurus" / "sessions" / "2025-01-18_sess0.json"
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert saver.stdout is not None and saver.stdout.readline().strip() == "ready"
        from taurus_ops.config import load_config

        config = load_config()
        counters = set()
        for _ in range(8):
            created = create_backup(config, output=home / "out.tar.gz", verify=False)
            report = verify_archive(created.path)
            assert report.ok, report.problems
            with tarfile.open(created.path) as tar:
                member = tar.extractfile(".taurus/sessions/2025-01-18_sess0.json")
                doc = json.loads(member.read())  # type: ignore[union-attr]
            assert len(doc["messages"]) == 13 + doc.get("counter", 0)
            counters.add(doc.get("counter", 0))
            created.path.unlink()
    finally:
        saver.kill()
        saver.wait()
    assert len(counters) > 1  # the saves really were happening during the backups


# -- rotation, unwritable folders, full disks ---------------------------------------------------------
def test_rotation_keeps_newest_and_ignores_other_files(home: Path) -> None:
    populate(home)
    from taurus_ops.config import load_config

    (home / ".taurus" / "config.yaml").write_text("backup:\n  keep: 2\n")
    config = load_config()
    folder = home / ".taurus" / "backups"
    folder.mkdir(mode=0o700)
    manual = folder / "before-refactor-20250101.json"
    manual.write_text("{}")
    stamps = [datetime(2025, 1, d, 3, 0, tzinfo=UTC) for d in (1, 2, 3, 4)]
    made = [create_rotating(config, now=s).path for s in stamps]
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([manual.name, made[2].name, made[3].name])
    assert len(list_backups(folder)) == 2
    # two in the same second get distinct names
    again = create_rotating(config, now=stamps[3]).path
    assert again != made[3] and again.exists() and made[3].exists()


def test_backup_directory_not_writable(home: Path, ops) -> None:
    populate(home)
    blocker = home / "not-a-folder"
    blocker.write_text("x")
    (home / ".taurus" / "config.yaml").write_text(f"backup:\n  directory: {blocker}/sub\n")
    out = ops("backup", "create")
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and "cannot create the backup folder" in out.output


def _big_sessions(home: Path, n: int = 6) -> None:
    sessions = home / ".taurus" / "sessions"
    for i in range(n):
        doc = make_document(f"big{i}")
        doc["messages"].append({"role": "user", "content": os.urandom(150_000).hex()})
        write_session(sessions, doc)


def test_full_disk_removes_partial_and_keeps_old_backups(home: Path, ops, tmp_path: Path) -> None:
    """A real full file system: a 512 KiB tmpfs as backup.directory."""
    populate(home)
    mount = tmp_path / "small"
    mount.mkdir()
    mount_tmpfs(mount, "size=512k,mode=0700")
    try:
        (home / ".taurus" / "config.yaml").write_text(f"backup:\n  directory: {mount}\n")
        assert ops("backup", "create").exit_code == 0  # a small one fits
        old = list(mount.iterdir())
        old_bytes = old[0].read_bytes()
        _big_sessions(home)  # about 1.8 MB of incompressible text
        out = ops("backup", "create")
        assert out.exit_code == 1
        assert "No space left on device" in out.output
        assert "partial archive was removed" in out.output
        assert list(mount.iterdir()) == old and old[0].read_bytes() == old_bytes
        log = (home / ".taurus" / "logs" / "taurus-ops.log").read_text()
        assert "backup: failed" in log
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def test_read_only_backup_folder(home: Path, ops, tmp_path: Path) -> None:
    """A read-only file system: even root cannot write there."""
    populate(home)
    mount = tmp_path / "ro"
    mount.mkdir()
    mount_tmpfs(mount, "size=1m,ro")
    try:
        (home / ".taurus" / "config.yaml").write_text(f"backup:\n  directory: {mount}\n")
        out = ops("backup", "create")
        assert out.exit_code == 1 and "Read-only file system" in out.output
        assert "Traceback" not in out.output
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes beyond the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_write_failure_without_root(home: Path) -> None:
    """Where no tmpfs can be mounted: RLIMIT_FSIZE makes the kernel refuse the write (EFBIG),
    the same failure path as ENOSPC (an OSError from write), in a real subprocess."""
    populate(home)
    folder = home / ".taurus" / "backups"
    folder.mkdir(mode=0o700)
    old = folder / "taurus-sessions-backup-20250101-030000.tar.gz"
    old.write_bytes(b"an older backup")
    _big_sessions(home)
    done = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "backup", "create"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "File too large" in done.stderr and "partial archive was removed" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [old.name]
    assert old.read_bytes() == b"an older backup"


def test_output_option_and_no_overwrite(home: Path, ops, tmp_path: Path) -> None:
    populate(home)
    target = tmp_path / "mine.tar.gz"
    out = ops("backup", "create", "-o", str(target), "--json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["path"] == str(target) and info["files"] == 8
    assert verify_archive(target).ok
    before = target.read_bytes()
    again = ops("backup", "create", "-o", str(target))
    assert again.exit_code == 1 and "already exists" in again.output
    assert target.read_bytes() == before
    into_dir = ops("backup", "create", "-o", str(tmp_path))
    assert into_dir.exit_code == 0
    assert len(list(tmp_path.glob("taurus-sessions-backup-*.tar.gz"))) == 1
    assert not (home / ".taurus" / "backups").exists()  # -o elsewhere: no rotation there


def test_a_project_backup_never_rotates_away_full_backups(
    home: Path, tmp_path: Path, monkeypatch
) -> None:
    """The tutorial's per-project sessionDirectory: backups made inside the project count
    against backup.keep only among themselves."""
    from taurus_ops.config import load_config

    populate(home)
    (home / ".taurus" / "config.yaml").write_text("backup:\n  keep: 2\n")
    project = tmp_path / "project-a"
    (project / ".taurus").mkdir(parents=True)
    (project / ".taurus" / "config.yaml").write_text(
        "sessionDirectory: ~/.taurus/sessions/project-a\n"
    )
    write_session(home / ".taurus" / "sessions" / "project-a", make_document("proj1"))
    folder = home / ".taurus" / "backups"
    full = [
        create_rotating(load_config(), now=datetime(2025, 1, d, tzinfo=UTC)).path for d in (1, 2)
    ]
    monkeypatch.chdir(project)
    scoped = [
        create_rotating(load_config(), now=datetime(2025, 2, d, tzinfo=UTC)).path for d in (1, 2, 3)
    ]
    left = {p.name for p in folder.iterdir()}
    assert {p.name for p in full} <= left  # the full backups stay
    assert {p.name for p in scoped[1:]} <= left and scoped[0].name not in left
    assert scope_of(full[0]) != scope_of(scoped[-1]) is not None
    with tarfile.open(scoped[-1]) as tar:  # still a plain tar.gz
        assert any(n.endswith("2025-01-18_proj1.json") for n in tar.getnames())


def _lying_backup(path: Path, **manifest_changes: object) -> Path:
    """One good session and a manifest whose checksums hold but whose structure lies."""
    name = ".taurus/sessions/2025-01-18_good.json"
    data = fmt.dumps(make_document("good"))
    manifest: dict[str, object] = {
        "format": "taurus-backup",
        "version": 1,
        "created": fmt.now_iso(),
        "home": "/home/x",
        "roots": [{"kind": "sessions", "member": ".taurus/sessions", "path": "/x"}],
        "files": [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
        "links": [],
    }
    for key, value in manifest_changes.items():
        if key == "mtime":
            manifest["files"][0]["mtime"] = value  # type: ignore[index]
        elif key == "extra_root":
            manifest["roots"].append(value)  # type: ignore[attr-defined]
        else:
            manifest[key] = value
    body = fmt.dumps(manifest)
    with tarfile.open(path, "w:gz") as tar:
        for member, content in ((name, data), (".taurus/backup-manifest.json", body)):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def fat_stick(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real FAT file system (no hard links), as on a USB stick, mounted with fusefat."""
    import shutil

    if os.geteuid() != 0 or not (shutil.which("mkfs.vfat") and shutil.which("fusefat")):
        pytest.skip("needs root, mkfs.vfat (dosfstools) and fusefat to mount a FAT stick")
    image, mount = tmp_path / "stick.img", tmp_path / "stick"
    with open(image, "wb") as handle:
        handle.truncate(16 << 20)
    subprocess.run(["mkfs.vfat", str(image)], check=True, capture_output=True)
    mount.mkdir()
    done = subprocess.run(["fusefat", "-o", "rw+", str(image), str(mount)], capture_output=True)
    if done.returncode != 0 or not os.path.ismount(mount):
        pytest.skip(f"fusefat could not mount: {done.stderr[-200:]!r}")
    try:
        yield mount
    finally:
        subprocess.run(["fusermount", "-u", str(mount)], capture_output=True)


@pytest.mark.parametrize("archive", ["~/.taurus/sessions/old"])  # equal is a config error
def test_backup_with_archive_in_the_session_directory(
    archive: str, home: Path, ops, tmp_path: Path
) -> None:
    """An archive folder inside the session folder is backed up once, not twice."""
    taurus = home / ".taurus"
    base = datetime(2025, 1, 18, 10, 0, tzinfo=UTC)
    write_session(taurus / "sessions", make_document("keep1", created=base))
    write_session(taurus / "sessions" / "old", make_document("old1", created=base))
    (taurus / "config.yaml").write_text(f"sessions:\n  archiveDirectory: {archive}\n")
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    (made,) = (taurus / "backups").glob("taurus-sessions-backup-*.tar.gz")
    with tarfile.open(made) as tar:
        names = tar.getnames()
    assert len(names) == len(set(names)), names
    assert ".taurus/sessions/2025-01-18_keep1.json" in names
    assert ".taurus/sessions/old/2025-01-18_old1.json" in names
    assert ops("backup", "verify", str(made)).exit_code == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["tar", "-xzf", str(made), "-C", str(plain)], check=True)
    assert (plain / ".taurus/sessions/old/2025-01-18_old1.json").is_file()


def test_backup_keeps_every_kind_of_name_and_never_fails_on_one(
    home: Path, ops, tmp_path: Path
) -> None:
    """A name made with an absolute path, one into project-a/, and one into an archive the
    backup leaves out: the backup succeeds, keeps the first two, and plain tar restores them."""
    taurus = home / ".taurus"
    sessions = taurus / "sessions"
    base = datetime(2025, 1, 18, 10, 0, tzinfo=UTC)
    for sid in ("abs1", "rel1"):
        write_session(sessions, make_document(sid, created=base))
    write_session(sessions / "project-a", make_document("pa1", created=base))
    write_session(taurus / "archive", make_document("old1", created=base))
    os.symlink(sessions / "2025-01-18_abs1.json", sessions / "absolute-name.json")
    os.symlink("project-a/2025-01-18_pa1.json", sessions / "project-name.json")
    os.symlink("../archive/2025-01-18_old1.json", sessions / "archived-name.json")
    (taurus / "config.yaml").write_text("backup:\n  includeArchive: false\n")
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    (made,) = (taurus / "backups").glob("taurus-sessions-backup-*.tar.gz")
    assert ops("backup", "verify", str(made)).exit_code == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["tar", "-xzf", str(made), "-C", str(plain)], check=True)
    restored = plain / ".taurus" / "sessions"
    for name, target in (
        ("absolute-name.json", "2025-01-18_abs1.json"),
        ("project-name.json", "project-a/2025-01-18_pa1.json"),
    ):
        link = restored / name
        assert link.is_symlink() and link.resolve() == (restored / target).resolve(), name
        assert link.read_bytes() == (sessions / target).read_bytes()
    assert not (restored / "archived-name.json").is_symlink()
    for name in ("absolute-name.json", "project-name.json"):
        (sessions / name).unlink()
    out = ops("backup", "restore", str(made))
    assert out.exit_code == 0, out.output
    assert (sessions / "absolute-name.json").resolve() == sessions / "2025-01-18_abs1.json"
    assert (sessions / "project-name.json").resolve() == (
        sessions / "project-a" / "2025-01-18_pa1.json"
    )


@pytest.mark.parametrize(
    "lie",
    [
        {"links": ["x"]},
        {"links": [{"path": 5, "target": None}]},
        {"mtime": "abc"},
        {"mtime": None},
        {"extra_root": {"kind": "templates"}},
        {"extra_root": {"kind": "archive", "member": None}},
    ],
    ids=[
        "link-not-object",
        "link-fields",
        "mtime-text",
        "mtime-null",
        "root-no-member",
        "root-null",
    ],
)
def test_a_manifest_that_lies_is_refused_in_one_line(
    lie: dict[str, object], home: Path, ops, tmp_path: Path
) -> None:
    archive = _lying_backup(tmp_path / "lying.tar.gz", **lie)
    sessions = home / ".taurus" / "sessions"
    sessions.mkdir(parents=True)
    on_disk = sessions / "2025-01-18_good.json"
    on_disk.write_text('{"sessionId": "good", "messages": []}\n')
    verify = ops("backup", "verify", str(archive))
    assert verify.exit_code == 1 and "manifest" in verify.output
    for args in (["--dry-run"], [], ["--force"]):
        out = ops("backup", "restore", str(archive), *args)
        assert out.exit_code == 1 and "nothing restored" in out.output, out.output
    assert on_disk.read_text() == '{"sessionId": "good", "messages": []}\n'
    assert sorted(p.name for p in sessions.iterdir()) == ["2025-01-18_good.json"]


def test_restore_never_overwrites_a_file_that_appeared_after_planning(
    home: Path, ops, tmp_path: Path
) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.ops.backup import restore, verify

    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("late1"))
    assert ops("backup", "create").exit_code == 0
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    target = sessions / "2025-01-18_late1.json"
    target.unlink()
    config = load_config()
    report = verify.verify_archive(made)
    plan = restore.plan_restore(made, report, config)
    assert [s.action for s in plan.steps] == [restore.RESTORE]
    target.write_text('{"sessionId": "late1", "messages": ["written meanwhile"]}\n')
    result = restore.execute_restore(plan, report, config.home)
    assert result.written == [] and [p for p, _ in result.failed] == [str(target)]
    assert "written meanwhile" in target.read_text()


def test_restoring_a_name_whose_session_was_archived_since(home: Path, ops) -> None:
    """The dry run says the name is restored; the real run does it, pointing at the
    session where it now lives (the archive), instead of failing."""
    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("gone1"))
    write_session(sessions, make_document("stay1"))
    os.symlink("2025-01-18_gone1.json", sessions / "login-bug.json")
    assert ops("backup", "create").exit_code == 0
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    assert ops("archive", "login-bug").exit_code == 0
    (sessions / "login-bug.json").unlink()
    dry = ops("backup", "restore", str(made), "--dry-run")
    assert "login-bug.json" in dry.output
    out = ops("backup", "restore", str(made))
    assert out.exit_code == 0, out.output
    assert (sessions / "login-bug.json").resolve() == (
        home / ".taurus" / "archive" / "2025-01-18_gone1.json"
    )
    assert not (sessions / "2025-01-18_gone1.json").exists()


def test_a_file_named_like_the_manifest_in_the_sessions_does_not_stop_backups(
    home: Path, ops, tmp_path: Path
) -> None:
    """`tar -xzf FILE -C ~/.taurus/sessions` by mistake leaves a backup-manifest.json among
    the sessions; later backups hold it as an ordinary file and still verify."""
    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("one1"))
    stray = sessions / ".taurus" / "backup-manifest.json"
    stray.parent.mkdir()
    stray.write_text('{"format": "taurus-backup", "files": []}\n')
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    assert ops("backup", "verify", str(made)).exit_code == 0
    stray.unlink()
    out = ops("backup", "restore", str(made))
    assert out.exit_code == 0, out.output
    assert stray.read_text() == '{"format": "taurus-backup", "files": []}\n'


def test_one_unreadable_session_does_not_stop_every_backup(home: Path) -> None:
    """A session file another user owns (left by `sudo taurus chat`) is skipped with a note,
    as tar does; before, every backup failed with a misleading 'could not write'."""
    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("mine1"))
    theirs = write_session(
        sessions, make_document("root1", created=datetime(2025, 2, 1, tzinfo=UTC))
    )
    os.chmod(theirs, 0o600)
    os.chown(theirs, 12345, 12345) if os.geteuid() == 0 else os.chmod(theirs, 0)
    os.symlink(theirs.name, sessions / "their-work.json")  # its name goes with it
    done = without_dac(["backup", "create"])
    assert done.returncode == 0, done.stderr
    assert "2025-02-01_root1.json" in done.stderr and "Permission denied" in done.stderr
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    with tarfile.open(made) as tar:
        names = tar.getnames()
    assert ".taurus/sessions/2025-01-18_mine1.json" in names
    assert ".taurus/sessions/2025-02-01_root1.json" not in names
    assert ".taurus/sessions/their-work.json" not in names


def test_verify_never_holds_a_huge_manifest_member_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member called backup-manifest.json beyond the size any real manifest reaches is
    read as an ordinary file (hashed in chunks), so a hostile one cannot exhaust memory."""
    from taurus_ops.ops.backup import verify

    monkeypatch.setattr(verify, "MANIFEST_MAX", 1 << 20)
    archive = tmp_path / "huge.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(".taurus/backup-manifest.json")
        info.size = 3 << 20
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    report = verify.verify_archive(archive)
    assert not report.ok
    assert any("no manifest" in p for p in report.problems), report.problems


@pytest.mark.parametrize("folder", ["~/.taurus/archive", "~/.taurus/sessions"])
def test_backups_kept_in_a_backed_up_folder_are_not_backed_up_again(
    folder: str, home: Path, ops
) -> None:
    """backup.directory inside the archive or session folder: each backup used to hold all
    the earlier ones, doubling in size every night."""
    taurus = home / ".taurus"
    write_session(taurus / "sessions", make_document("one1"))
    write_session(taurus / "archive", make_document("old1"))
    (taurus / "config.yaml").write_text(f"backup:\n  directory: {folder}\n")
    first = ops("backup", "create", "--json")
    assert first.exit_code == 0, first.output
    manual = Path(folder.replace("~", str(home))) / "before-refactor-20250118.json"
    manual.write_text('{"messages": []}\n')  # the tutorial's own copy: an ordinary file
    second = ops("backup", "create", "--json")
    assert second.exit_code == 0, second.output
    with tarfile.open(json.loads(second.output)["path"]) as tar:
        names = tar.getnames()
    assert not [n for n in names if n.endswith(".tar.gz")], names
    assert any(n.endswith("before-refactor-20250118.json") for n in names)


def test_restore_goes_on_past_a_file_it_may_not_read(home: Path, ops) -> None:
    sessions = home / ".taurus" / "sessions"
    theirs = write_session(sessions, make_document("root1"))
    mine = write_session(sessions, make_document("mine1", created=datetime(2025, 2, 1, tzinfo=UTC)))
    assert ops("backup", "create").exit_code == 0
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    theirs.write_text('{"sessionId": "root1", "messages": ["theirs"]}\n')
    os.chmod(theirs, 0o600)
    os.chown(theirs, 12345, 12345) if os.geteuid() == 0 else os.chmod(theirs, 0)
    mine.unlink()
    done = without_dac(["backup", "restore", str(made)])
    assert mine.is_file(), done.stderr
    assert "2025-01-18_root1.json" in done.stdout + done.stderr
    assert '"theirs"' in theirs.read_text()


def test_a_folder_backup_cannot_read_is_named_not_silently_left_out(home: Path) -> None:
    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("mine1"))
    write_session(sessions / "project-b", make_document("theirs1"))
    os.chmod(sessions / "project-b", 0o700)
    os.chown(sessions / "project-b", 12345, 12345) if os.geteuid() == 0 else os.chmod(
        sessions / "project-b", 0
    )
    done = without_dac(["backup", "create"])
    assert done.returncode == 0, done.stderr
    assert "project-b" in done.stderr and "ermission denied" in done.stderr


def test_a_second_restore_in_the_same_second_keeps_the_first_ones_copies(home: Path, ops) -> None:
    """restore-replaced/<time>/ is a new folder each time: a copy of replaced work is
    never overwritten by a later restore's copy."""
    from datetime import timedelta as later

    sessions = home / ".taurus" / "sessions"
    session = write_session(sessions, make_document("work1"))
    assert ops("backup", "create").exit_code == 0
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    session.write_text('{"sessionId": "work1", "messages": ["hand edit"]}\n')
    now = datetime.now()
    member = ".taurus/sessions/2025-01-18_work1.json"
    earlier_copies = []
    for moment in (now, now + later(seconds=1), now + later(seconds=2)):
        copy = home / ".taurus" / "restore-replaced" / moment.strftime("%Y%m%d-%H%M%S") / member
        copy.parent.mkdir(parents=True)
        copy.write_text("a copy kept by an earlier restore\n")
        earlier_copies.append(copy)
    out = ops("backup", "restore", str(made), "--force")
    assert out.exit_code == 0, out.output
    for copy in earlier_copies:
        assert copy.read_text() == "a copy kept by an earlier restore\n"
    kept = [
        p
        for p in (home / ".taurus" / "restore-replaced").rglob("2025-01-18_work1.json")
        if p not in earlier_copies
    ]
    assert [p.read_text() for p in kept] == ['{"sessionId": "work1", "messages": ["hand edit"]}\n']


def test_backup_to_a_fat_usb_stick(home: Path, ops, fat_stick: Path) -> None:
    """The README's `backup create -o /mnt/usb/` on a file system without hard links."""
    write_session(home / ".taurus" / "sessions", make_document("one1"))
    out = ops("backup", "create", "-o", str(fat_stick), "--json")
    assert out.exit_code == 0, out.output
    made = Path(json.loads(out.output)["path"])
    assert made.parent == fat_stick and made.is_file()
    assert ops("backup", "verify", str(made)).exit_code == 0
    assert [p.name for p in fat_stick.iterdir()] == [made.name]  # no temporary file left
    again = ops("backup", "create", "-o", str(made))
    assert again.exit_code == 1 and "already exists" in again.output


# -- file checkpoints ---------------------------------------------------------------------------
RANDOM = __import__("random").Random(7)
BIG_A, BIG_B = RANDOM.randbytes(150_000), RANDOM.randbytes(150_000)  # incompressible
# the chat replaced two large files and changed a small one; a fork at message 5 names the
# first two edits' checkpoints (BIG_A, "a", BIG_B, "b"), linked into its own folder
PARENT_EDITS = [("a.bin", BIG_A, b"a\n"), ("b.bin", BIG_B, b"b\n"), ("c.py", b"c\n", b"c 2\n")]


def with_checkpoints(user: Path) -> dict[str, str]:
    """A parent, its fork, a session of its own and an archived one, each with checkpoints,
    and a folder whose session is not in the backup; their ids by role."""
    from helpers.checkpoints import edited_session

    from taurus_ops.store import SessionStore
    from taurus_ops.store.checkpoints import CheckpointStore
    from taurus_ops.store.fork import fork_session

    taurus = user / ".taurus"
    store = SessionStore(taurus / "sessions", taurus / "archive")
    parent = edited_session(taurus, store.session_dir, "parent01", PARENT_EDITS)
    fork = fork_session(store, store.load(parent), 5, CheckpointStore.for_home(taurus))
    assert fork.linked == 4
    edited_session(taurus, store.session_dir, "own00001", [("d.py", b"d\n", b"d 2\n")])
    edited_session(taurus, store.archive_dir, "old00001", [("e.py", b"e\n", b"e 2\n")])
    edited_session(taurus, user / "elsewhere", "gone0001", [("f.py", b"f\n", b"f 2\n")])
    return {"parent": "parent01", "fork": fork.session.id, "own": "own00001", "old": "old00001"}


def written(user: Path) -> list[str]:
    """What is in the Taurus home but the log, the locks and the settings' cache."""
    return [k for k in snapshot(user) if not k.endswith(".config-cache.json")]


def held_blobs(taurus: Path, ids: list[str]) -> dict[str, dict[str, bytes]]:
    """Every blob of these sessions, read as /rewind reads it (checked against its name)."""
    from taurus_ops.store.checkpoints import CheckpointStore

    blobs = CheckpointStore.for_home(taurus)
    return {sid: {b.sha: blobs.read(sid, b.sha) for b in blobs.blobs(sid)} for sid in ids}


def test_checkpoints_are_backed_up_once_per_file_and_restored_with_their_links(
    home: Path, ops, tmp_path: Path
) -> None:
    import shutil

    from taurus_ops.store.checkpoints import CheckpointStore, referenced

    ids = with_checkpoints(home)
    taurus = home / ".taurus"
    held = held_blobs(taurus, list(ids.values()))
    assert sum(map(len, held.values())) == 14
    stats = json.loads(ops("stats", "--json").output)["checkpointBytes"]
    left_out = CheckpointStore.for_home(taurus).size("gone0001")  # its session is elsewhere
    assert ops("backup", "create").exit_code == 0
    made = only_backup(home)
    # the fork's copies of the large files are hard links: the archive holds each once
    assert made.stat().st_size < 1.2 * (len(BIG_A) + len(BIG_B))
    names = subprocess.run(["tar", "-tzf", str(made)], capture_output=True, text=True).stdout
    for sid, contents in held.items():
        for sha in contents:
            assert f".taurus/checkpoints/{sid}/{sha}" in names.splitlines()
    assert "gone0001" not in names  # only the folders of the sessions backed up
    verbose = subprocess.run(["tar", "-tvzf", str(made)], capture_output=True, text=True).stdout
    linked = [line.split()[-4:] for line in verbose.splitlines() if " link to " in line]
    assert len(linked) == 4 and all(
        a.rsplit("/", 1)[1] == b.rsplit("/", 1)[1] for a, _, _, b in linked
    )
    assert ops("backup", "verify", str(made)).exit_code == 0
    # plain tar gives the tutorial's layout, checkpoints beside the sessions, links as links
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["tar", "-xzf", str(made), "-C", str(plain)], check=True)
    assert sorted(p.name for p in (plain / ".taurus").iterdir()) == [
        "archive", "backup-manifest.json", "checkpoints", "sessions"
    ]  # fmt: skip
    for sid, contents in held.items():
        for sha, data in contents.items():
            assert (plain / ".taurus" / "checkpoints" / sid / sha).read_bytes() == data
    big = hashlib.sha256(BIG_A).hexdigest()
    ino = {sid: (plain / ".taurus/checkpoints" / sid / big).stat().st_ino for sid in ("parent01", ids["fork"])}  # fmt: skip
    assert len(set(ino.values())) == 1
    to = tmp_path / "to"  # restoring --to DIR gives what plain tar gives
    assert ops("backup", "restore", str(made), "--to", str(to)).exit_code == 0
    for sid in held:
        for name in ("plain", "to"):
            folder = tmp_path / name / ".taurus" / "checkpoints" / sid
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == held[sid]
    assert (to / ".taurus/checkpoints/parent01" / big).stat().st_nlink == 2

    # restore into an empty home
    saved = tmp_path / made.name
    shutil.move(made, saved)
    shutil.rmtree(taurus)
    dry = ops("backup", "restore", str(saved), "--dry-run")
    assert dry.exit_code == 0, dry.output
    for sid, contents in held.items():
        for sha in contents:
            assert f"restore  {taurus}/checkpoints/{sid}/{sha}: missing on disk" in dry.output
    assert written(home) == []  # the dry run wrote nothing
    out = ops("backup", "restore", str(saved))
    assert out.exit_code == 0, out.output
    assert held_blobs(taurus, list(ids.values())) == held  # every blob whole, as /rewind reads it
    blobs = CheckpointStore.for_home(taurus)
    assert oct(blobs.root.stat().st_mode & 0o777) == "0o700"
    for sid, contents in held.items():
        assert blobs.verify(sid) == []
        assert oct(blobs.folder(sid).stat().st_mode & 0o777) == "0o700"
        for sha in contents:
            assert oct(blobs.path(sid, sha).stat().st_mode & 0o777) == "0o600"
    for sha in held[ids["fork"]]:  # one file again, in both folders
        assert (
            blobs.path(ids["fork"], sha).stat().st_ino == blobs.path("parent01", sha).stat().st_ino
        )
    for path in [*(taurus / "sessions").glob("*.json"), *(taurus / "archive").glob("*.json")]:
        doc = json.loads(path.read_bytes())
        for sha in referenced(doc):  # what a rewind of each session needs
            blobs.read(doc["sessionId"], sha)
    # stats and `checkpoints REF` agree, with the links counted once as before
    restored = json.loads(ops("stats", "--json").output)["checkpointBytes"]
    assert restored == stats - left_out == blobs.size()
    shown = json.loads(ops("checkpoints", ids["fork"], "--json").output)
    assert shown["bytes"] == blobs.size(ids["fork"]) and all(c["kept"] for c in shown["changes"])


def _tampered(good: Path, dest: Path, sha: str, manifest_too: bool) -> Path:
    """``good`` with one byte of the checkpoint ``sha`` changed (and, with ``manifest_too``,
    the manifest saying so, so that only the checkpoint's name gives it away)."""
    changed: dict[str, str] = {}

    def tamper(info, data):  # type: ignore[no-untyped-def]
        if info.isreg() and info.name.endswith("/" + sha):
            data = data[:-1] + bytes([data[-1] ^ 1])
            changed[info.name] = hashlib.sha256(data).hexdigest()
        elif manifest_too and info.name.endswith("backup-manifest.json"):
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if entry["path"].endswith("/" + sha):
                    entry["sha256"] = next(iter(changed.values()))
            data = fmt.dumps(manifest)
        return info, data

    return rewrite(good, dest, tamper)


@pytest.mark.parametrize("manifest_too", [False, True], ids=["blob", "blob-and-manifest"])
def test_a_tampered_checkpoint_fails_verify_in_one_line(
    manifest_too: bool, home: Path, ops, tmp_path: Path
) -> None:
    with_checkpoints(home)
    assert ops("backup", "create").exit_code == 0
    sha = hashlib.sha256(BIG_A).hexdigest()  # a blob the fork links too
    bad = _tampered(only_backup(home), tmp_path / "tampered.tar.gz", sha, manifest_too)
    out = ops("backup", "verify", str(bad))
    assert out.exit_code == 1
    problems = [line for line in out.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1, out.output
    assert sha in problems[0] and "checkpoint damaged" in problems[0]
    assert "failed verification (1 problem)" in out.output
    before = snapshot(home)
    refused = ops("backup", "restore", str(bad), "--force")
    assert refused.exit_code == 1 and "nothing restored" in refused.output
    assert snapshot(home) == before


def test_restoring_over_a_home_keeps_a_different_checkpoint_as_it_keeps_a_session(
    home: Path, ops
) -> None:
    from taurus_ops.store.checkpoints import CheckpointStore

    ids = with_checkpoints(home)
    taurus = home / ".taurus"
    held = held_blobs(taurus, list(ids.values()))
    assert ops("backup", "create").exit_code == 0
    made = only_backup(home)
    blobs = CheckpointStore.for_home(taurus)
    big_b, own = hashlib.sha256(BIG_B).hexdigest(), hashlib.sha256(b"d\n").hexdigest()
    # newer on disk, other bytes (a damaged copy, in the parent's folder only): kept
    newer = blobs.path("parent01", big_b)
    newer.unlink()
    newer.write_bytes(b"changed on disk")
    later = time.time() + 3600
    os.utime(newer, (later, later))
    # older on disk, other bytes: replaced, its copy kept
    older = blobs.path("own00001", own)
    older.unlink()
    older.write_bytes(b"older on disk")
    os.utime(older, (1_000_000, 1_000_000))
    # one name of a linked blob gone: restored as a link to the other, still there
    big_a = hashlib.sha256(BIG_A).hexdigest()
    blobs.path(ids["fork"], big_a).unlink()
    dry = ops("backup", "restore", str(made), "--dry-run")
    assert f"keep     {newer}: newer on disk (use --force to replace it)" in dry.output
    assert f"replace  {older}: older on disk" in dry.output
    assert f"restore  {blobs.path(ids['fork'], big_a)}: missing on disk" in dry.output
    out = ops("backup", "restore", str(made))
    assert out.exit_code == 0, out.output
    assert newer.read_bytes() == b"changed on disk"  # not clobbered
    assert blobs.path(ids["fork"], big_b).read_bytes() == BIG_B  # the fork's own link intact
    assert older.read_bytes() == b"d\n" and oct(older.stat().st_mode & 0o777) == "0o600"
    (copy,) = (taurus / "restore-replaced").rglob(own)
    assert copy.read_bytes() == b"older on disk"
    restored = blobs.path(ids["fork"], big_a)
    assert restored.read_bytes() == BIG_A
    assert restored.stat().st_ino == blobs.path("parent01", big_a).stat().st_ino
    assert held_blobs(taurus, [ids["fork"], "own00001"]) == {
        sid: held[sid] for sid in (ids["fork"], "own00001")
    }


def test_a_damaged_checkpoint_on_disk_is_left_out_with_a_note(home: Path, ops) -> None:
    from taurus_ops.store.checkpoints import CheckpointStore

    with_checkpoints(home)
    blobs = CheckpointStore.for_home(home / ".taurus")
    damaged = blobs.path("own00001", hashlib.sha256(b"d 2\n").hexdigest())
    damaged.write_bytes(b"not what its name says")
    out = ops("backup", "create")
    assert out.exit_code == 0, out.output
    assert f"note: skipped checkpoint {damaged} (its content does not match its name" in out.output
    made = only_backup(home)
    assert ops("backup", "verify", str(made)).exit_code == 0
    with tarfile.open(made) as tar:
        assert not [n for n in tar.getnames() if n.endswith(damaged.name)]


def _checkpoint_backup(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], listed: list[dict]) -> Path:  # fmt: skip
    """A backup holding sessions and checkpoints roots, these members, and a manifest
    listing ``listed`` (file entries) as they are."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        manifest = fmt.dumps(
            {
                "format": "taurus-backup",
                "version": 1,
                "created": fmt.now_iso(),
                "home": "/home/x",
                "roots": [
                    {"kind": "sessions", "member": ".taurus/sessions", "path": "/x/s"},
                    {"kind": "checkpoints", "member": ".taurus/checkpoints", "path": "/x/c"},
                ],
                "files": listed,
                "links": [],
            }
        )
        info = tarfile.TarInfo(".taurus/backup-manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return path


def _entry(name: str, data: bytes, link_to: str | None = None) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    entry = {"path": name, "size": len(data), "sha256": sha, "mtime": 0}
    return {**entry, "linkTo": link_to} if link_to is not None else entry


BLOB = b"what a.py held\n"
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()
FIRST = f".taurus/checkpoints/one/{BLOB_SHA}"


def checkpoint_cases(outside: Path) -> dict[str, tuple[list, list, str]]:
    """(members after the first blob, manifest entries after its own, the problem)."""
    other = hashlib.sha256(b"other").hexdigest()
    return {
        "hardlink-absolute": (
            [(_info(f".taurus/checkpoints/two/{BLOB_SHA}", tarfile.LNKTYPE, f"{outside}/x"), None)],
            [],
            "hard link to",
        ),
        "hardlink-dotdot": (
            [
                (
                    _info(
                        f".taurus/checkpoints/two/{BLOB_SHA}", tarfile.LNKTYPE, "../../etc/passwd"
                    ),
                    None,
                )
            ],
            [],
            "'..'",
        ),
        "hardlink-from-sessions": (
            [(_info(".taurus/sessions/2025-01-18_x.json", tarfile.LNKTYPE, FIRST), None)],
            [_entry(".taurus/sessions/2025-01-18_x.json", BLOB, FIRST)],
            "only a checkpoint may be a hard link",
        ),
        "hardlink-other-name": (
            [(_info(f".taurus/checkpoints/two/{other}", tarfile.LNKTYPE, FIRST), None)],
            [_entry(f".taurus/checkpoints/two/{other}", BLOB, FIRST)],
            "only a checkpoint may be a hard link",
        ),
        "hardlink-unlisted": (
            [(_info(f".taurus/checkpoints/two/{BLOB_SHA}", tarfile.LNKTYPE, FIRST), None)],
            [_entry(f".taurus/checkpoints/two/{BLOB_SHA}", BLOB)],
            "stored as a hard link",
        ),
        "not-a-checkpoint": (
            [(_info(".taurus/checkpoints/one/notes.txt"), b"x")],
            [_entry(".taurus/checkpoints/one/notes.txt", b"x")],
            "not a checkpoint",
        ),
        "nested": (
            [(_info(f".taurus/checkpoints/one/deeper/{BLOB_SHA}"), BLOB)],
            [_entry(f".taurus/checkpoints/one/deeper/{BLOB_SHA}", BLOB)],
            "not a checkpoint",
        ),
        "dotdot": (
            [(_info(f".taurus/checkpoints/../../{BLOB_SHA}"), BLOB)],
            [_entry(f".taurus/checkpoints/../../{BLOB_SHA}", BLOB)],
            "'..'",
        ),
    }


@pytest.mark.parametrize("case", list(checkpoint_cases(Path("/x"))))
def test_a_hostile_checkpoint_member_writes_nothing(
    case: str, home: Path, ops, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members, listed, expected = checkpoint_cases(outside)[case]
    first = _info(FIRST)
    first.mode = 0o600
    archive = _checkpoint_backup(
        tmp_path / f"{case}.tar.gz", [(first, BLOB), *members], [_entry(FIRST, BLOB), *listed]
    )
    verify = ops("backup", "verify", "--json", str(archive))
    assert verify.exit_code == 1
    problems = json.loads(verify.output)["problems"]
    assert any(expected in p for p in problems), problems
    for args in ([], ["--to", str(tmp_path / "target")], ["--force"]):
        out = ops("backup", "restore", str(archive), *args)
        assert out.exit_code == 1 and "nothing restored" in out.output
        assert "Traceback" not in out.output
    assert list(outside.iterdir()) == [] and written(home) == []
    assert not (tmp_path / "target").exists()


def test_a_crafted_backup_with_a_linked_checkpoint_restores_as_links(
    home: Path, ops, tmp_path: Path
) -> None:
    """The other side of the cases above: the one shape of hard link allowed."""
    first = _info(FIRST)
    second = f".taurus/checkpoints/two/{BLOB_SHA}"
    archive = _checkpoint_backup(
        tmp_path / "good.tar.gz",
        [(first, BLOB), (_info(second, tarfile.LNKTYPE, FIRST), None)],
        [_entry(FIRST, BLOB), _entry(second, BLOB, FIRST)],
    )
    assert ops("backup", "verify", str(archive)).exit_code == 0
    assert ops("backup", "restore", str(archive)).exit_code == 0
    taurus = home / ".taurus"
    one, two = taurus / FIRST.split("/", 1)[1], taurus / second.split("/", 1)[1]
    assert one.read_bytes() == two.read_bytes() == BLOB
    assert one.stat().st_ino == two.stat().st_ino and one.stat().st_mode & 0o777 == 0o600
