"""Review findings in retention, archive and backup: each test pins one fixed bug."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user = tmp_path / "user-home"
    monkeypatch.setenv("TAURUS_HOME", str(user / ".taurus"))
    return user


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


def test_timers_carry_the_taurus_home_the_user_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TAURUS_HOME given relative to the current folder: a service (which starts in the
    home folder) must get the same absolute Taurus home, not the bare relative text."""
    from taurus_ops.config import load_config
    from taurus_ops.ops import timers

    work = tmp_path / "work"
    (work / "th").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TAURUS_HOME", "th")
    service = timers.render(load_config(), ["/usr/bin/taurus-ops"])["taurus-ops-backup.service"]
    assert f'Environment="TAURUS_HOME={work / "th"}"' in service


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


NO_DAC = [
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def _without_dac(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run taurus-ops in a real subprocess that, even as root, cannot read others' 0600 files."""
    import shutil
    import sys

    if os.geteuid() != 0:
        return subprocess.run(
            [sys.executable, "-m", "taurus_ops.cli", *args], capture_output=True, text=True
        )
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop root's read-anything capability")
    return subprocess.run(
        ["setpriv", *NO_DAC, "--", sys.executable, "-m", "taurus_ops.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


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
    done = _without_dac(["backup", "create"])
    assert done.returncode == 0, done.stderr
    assert "2025-02-01_root1.json" in done.stderr and "Permission denied" in done.stderr
    (made,) = (home / ".taurus" / "backups").glob("*.tar.gz")
    with tarfile.open(made) as tar:
        names = tar.getnames()
    assert ".taurus/sessions/2025-01-18_mine1.json" in names
    assert ".taurus/sessions/2025-02-01_root1.json" not in names
    assert ".taurus/sessions/their-work.json" not in names


def test_a_scheduled_backup_logs_what_it_left_out(home: Path) -> None:
    from taurus_ops.ops import schedule

    sessions = home / ".taurus" / "sessions"
    write_session(sessions, make_document("one1"))
    os.symlink("/etc/hostname", sessions / "elsewhere.json")
    assert schedule.run_job("backup", lock_wait=0) == "ok"
    log = (home / ".taurus" / "logs" / "taurus-ops.log").read_text()
    assert "skipped link" in log and "elsewhere.json" in log


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


def test_cleanup_goes_on_past_a_lock_it_may_not_open(home: Path) -> None:
    """A lock file another user owns (left by `sudo taurus chat`) keeps that one session
    where it is; the rest of the plan is still carried out."""
    sessions = home / ".taurus" / "sessions"
    base = datetime(2025, 1, 18, tzinfo=UTC)
    for i in range(3):
        write_session(sessions, make_document(f"s{i}", created=base.replace(day=18 + i)))
    lock = sessions / ".2025-01-18_s0.json.lock"
    lock.write_text("1\n")
    os.chmod(lock, 0o600)
    os.chown(lock, 12345, 12345) if os.geteuid() == 0 else os.chmod(lock, 0)
    (home / ".taurus" / "config.yaml").write_text("sessions:\n  maxSessions: 1\n")
    done = _without_dac(["cleanup"])
    assert done.returncode == 1, done.stderr
    assert "2025-01-18_s0.json" in done.stderr and "ermission denied" in done.stderr
    assert (sessions / "2025-01-18_s0.json").is_file()
    assert (home / ".taurus" / "archive" / "2025-01-19_s1.json").is_file()
    assert (sessions / "2025-01-20_s2.json").is_file()


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
    done = _without_dac(["backup", "restore", str(made)])
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
    done = _without_dac(["backup", "create"])
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
