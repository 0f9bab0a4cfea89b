"""A symlink planted at any name the store or the ops write is never written through.

Every file Taurus makes is created with O_CREAT|O_EXCL|O_NOFOLLOW under a random
temporary name and renamed (or linked) into place. For each writer, a link is planted
at its target name and at the temporary name it would use (the random part forced to
a known value once), both to an existing file outside and dangling; afterwards the
file outside holds exactly what it held, keeps its mode, and nothing was created
where a dangling link pointed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt

PRECIOUS = b"precious: not Taurus's to touch\n"
FORCED = "deadbeef"  # the random part of the next temporary name, in a planted-temp case


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    path.chmod(0o644)
    return path


@pytest.fixture
def forced_token(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make the next random temporary name predictable (``...tmp-deadbeef``), once."""
    from taurus_ops.store import atomic

    real = atomic._token

    def arm() -> None:
        calls = {"n": 0}

        def token() -> str:
            calls["n"] += 1
            return FORCED if calls["n"] == 1 else real()

        monkeypatch.setattr(atomic, "_token", token)

    return arm


def plant(at: Path, victim: Path, dangling: bool) -> Path:
    """A symlink at ``at`` to the victim (or to a name that does not exist); returns its goal."""
    goal = victim.with_name("nothing-here") if dangling else victim
    at.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(goal, at)
    return goal


def temp_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{FORCED}")


# -- the writers --------------------------------------------------------------------------------
def _session(store, sid: str = "abc123") -> Path:
    return write_session(store.session_dir, make_document(sid))


def save_over_target(env) -> None:
    path = _session(env.store)
    session = env.store.load(path)
    path.unlink()
    env.plant(path)
    env.store.save(session)
    assert path.is_file() and not path.is_symlink()


def save_temp(env) -> None:
    path = _session(env.store)
    session = env.store.load(path)
    env.plant(temp_of(path))
    env.arm()
    env.store.save(session)
    assert fmt.loads(path.read_bytes())["sessionId"] == "abc123"


def create_over_target(env) -> None:
    from taurus_ops.errors import UsageError

    env.store.ensure()
    target = env.store.path_for("fresh1")
    env.plant(target)
    with pytest.raises(UsageError, match="already exists"):
        env.store.create("fresh1")


def create_temp(env) -> None:
    env.store.ensure()
    env.plant(temp_of(env.store.path_for("fresh1")))
    env.arm()
    created = env.store.create("fresh1")
    assert created.path.is_file() and not created.path.is_symlink()


def template_new_over_target(env) -> None:
    env.store.ensure()
    env.plant(env.store.path_for("fresh2"))
    out = env.ops("template", "new", "debugging", "--var", "problem=x", "--id", "fresh2")
    assert out.exit_code != 0 and "already exists" in out.output
    assert out.output.count("\n") == 1


def name_link_temp(env) -> None:
    _session(env.store)
    link = env.store.session_dir / "mine.json"
    env.plant(link.with_name(f".mine.json.tmp-link-{FORCED}"))
    env.arm()
    env.store.name("abc123", "mine")
    assert os.readlink(link) == "2025-01-18_abc123.json"


def session_lock(env) -> None:
    from taurus_ops.store.lock import SessionLock, lock_path

    path = _session(env.store)
    env.plant(lock_path(path))
    with SessionLock(path):
        assert not lock_path(path).is_symlink()


def ops_lock(env) -> None:
    from taurus_ops.store.lock import OpsLock

    env.home.mkdir(exist_ok=True)
    env.plant(env.home / "ops.lock")
    with OpsLock(env.home):
        pass


def _index_sidecar(suffix: str) -> Callable[[object], None]:
    def run(env) -> None:
        from taurus_ops.store.index import Index

        _session(env.store)
        env.home.mkdir(exist_ok=True)
        at = env.home / f"index.sqlite{suffix}"
        env.plant(at)  # before the index is built
        assert env.ops("index", "rebuild").exit_code == 0
        if os.path.lexists(at):
            at.unlink()
        env.plant(at, second=True)  # and beside a built index, before it is refreshed
        _session(env.store, "def456")
        assert env.ops("search", "login", "-l").output.count(".json") == 2
        with Index.for_dirs(env.home, env.store.session_dir, env.store.archive_dir) as index:
            assert len(index.rows()) == 2

    run.__name__ = f"index{suffix or '_file'}"
    return run


def _damaged(env) -> Path:
    path = _session(env.store)
    path.write_bytes(path.read_bytes()[:-40])  # cut off mid-write
    return path


def quarantine_slot(env) -> None:
    path = _damaged(env)
    day = datetime.now().strftime("%Y-%m-%d")
    env.plant(env.home / "quarantine" / day / path.name)
    out = env.ops("doctor", "--fix")
    assert out.exit_code == 0, out.output


def quarantine_manifest(env) -> None:
    _damaged(env)
    day = datetime.now().strftime("%Y-%m-%d")
    env.plant(env.home / "quarantine" / day / "MANIFEST.jsonl")
    out = env.ops("doctor", "--fix")
    assert out.exit_code == 0, out.output


def export_output(env) -> None:
    _session(env.store)
    target = env.tmp / "out" / "share.md"
    env.plant(target)
    out = env.ops("export", "abc123", "-o", str(target))
    assert out.exit_code != 0 and "exists" in out.output  # not over it without --force
    out = env.ops("export", "abc123", "-o", str(target), "--force")
    assert out.exit_code == 0 and target.is_file() and not target.is_symlink()


def export_temp(env) -> None:
    _session(env.store)
    target = env.tmp / "out" / "share.md"
    target.parent.mkdir()
    env.plant(temp_of(target))
    env.arm()
    assert env.ops("export", "abc123", "-o", str(target)).exit_code == 0


def export_all(env) -> None:
    _session(env.store)
    _session(env.store, "def456")
    folder = env.tmp / "exports"
    env.plant(folder / "2025-01-18_abc123.md")
    out = env.ops("export", "--all", "-o", str(folder))
    if env.dangling:  # the planted name is reported, not written through; the rest exported
        assert out.exit_code == 1 and "2025-01-18_abc123.md" in out.output
        assert (folder / "2025-01-18_def456.md").is_file()
    else:  # a file is there (through the link): refused before anything is written
        assert out.exit_code == 2 and "already exist" in out.output


NOW = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)


def _backup(env):
    from taurus_ops.config import load_config
    from taurus_ops.ops.backup import create

    return create.create_backup(load_config(), now=NOW)


def backup_target(env) -> None:
    from taurus_ops.ops.backup import layout, verify

    _session(env.store)
    env.plant(env.home / "backups" / layout.backup_name(NOW))
    created = _backup(env)
    assert created.path.name == layout.backup_name(NOW, 1)  # the next free name
    assert verify.verify_archive(created.path).ok


def backup_temp(env) -> None:
    from taurus_ops.ops.backup import layout, verify

    _session(env.store)
    (env.home / "backups").mkdir(mode=0o700)
    env.plant(temp_of(env.home / "backups" / layout.backup_name(NOW)))
    env.arm()
    assert verify.verify_archive(_backup(env).path).ok


def restore_dest(env) -> None:
    path = _session(env.store)
    archive = _backup(env).path
    path.unlink()
    env.plant(path)
    out = env.ops("backup", "restore", str(archive))
    assert "Traceback" not in out.output
    assert path.is_symlink()  # kept as it is: "exists and is not a regular file"


def restore_temp(env) -> None:
    path = _session(env.store)
    archive = _backup(env).path
    path.unlink()
    env.plant(temp_of(path))
    env.arm()
    out = env.ops("backup", "restore", str(archive))
    assert out.exit_code == 0, out.output
    assert path.is_file() and not path.is_symlink()


def config_cache(env) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.config.cache import CACHE_NAME

    env.home.mkdir(exist_ok=True)
    env.plant(env.home / CACHE_NAME)
    load_config()
    assert (env.home / CACHE_NAME).is_file() and not (env.home / CACHE_NAME).is_symlink()


def ops_log(env) -> None:
    from taurus_ops.ops.log import log_event, log_file

    env.plant(log_file(env.home))
    log_event(env.home, "cleanup: a line")
    assert b"a line" in log_file(env.home).read_bytes()


def cleanup_state_and_log(env) -> None:
    from taurus_ops.ops.cleanup import state_path
    from taurus_ops.ops.log import log_file

    _session(env.store)
    _session(env.store, "def456")
    (env.home / "config.yaml").write_text("sessions:\n  maxSessions: 1\n")
    env.plant(state_path(env.home))
    env.plant(log_file(env.home), second=True)
    out = env.ops("cleanup")
    assert out.exit_code == 0, out.output
    assert not state_path(env.home).is_symlink()


def move_across_devices(env) -> None:
    from taurus_ops.store.move import _copy_verified

    path = _session(env.store)
    dest = env.store.archive_dir / path.name
    env.store.archive_dir.mkdir(mode=0o700)
    env.plant(temp_of(dest))
    env.arm()
    _copy_verified(path, dest)
    assert dest.read_bytes() == path.read_bytes()


def schedule_job_store(env) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from taurus_ops.ops.schedule import DB_NAME, _job_store

    env.home.mkdir(exist_ok=True)
    env.plant(env.home / DB_NAME)
    store = _job_store(env.home)
    store.start(BackgroundScheduler(), "default")  # creates its tables
    try:
        assert store.get_all_jobs() == []
    finally:
        store.shutdown()
    assert (env.home / DB_NAME).is_file() and not (env.home / DB_NAME).is_symlink()


WRITERS = [
    save_over_target,
    save_temp,
    create_over_target,
    create_temp,
    template_new_over_target,
    name_link_temp,
    session_lock,
    ops_lock,
    *(_index_sidecar(s) for s in ("", "-wal", "-shm", "-journal")),
    quarantine_slot,
    quarantine_manifest,
    export_output,
    export_temp,
    export_all,
    backup_target,
    backup_temp,
    restore_dest,
    restore_temp,
    config_cache,
    ops_log,
    cleanup_state_and_log,
    move_across_devices,
    schedule_job_store,
]


class Env:
    def __init__(self, home, store, ops, tmp, victim, dangling, arm) -> None:
        self.home, self.store, self.ops, self.tmp = home, store, ops, tmp
        self.victim, self.dangling, self.arm = victim, dangling, arm
        self.goals: list[Path] = []

    def plant(self, at: Path, second: bool = False) -> None:
        victim = self.victim
        if second:  # another file outside, for a second planted name
            victim = self.victim.with_name("victim2.txt")
            victim.write_bytes(PRECIOUS)
            victim.chmod(0o644)
        self.goals.append(plant(at, victim, self.dangling))


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("writer", WRITERS, ids=[w.__name__ for w in WRITERS])
def test_a_planted_link_is_never_written_through(
    writer, dangling, taurus_home, store, ops, tmp_path, victim, forced_token
) -> None:
    env = Env(taurus_home, store, ops, tmp_path, victim, dangling, forced_token)
    writer(env)
    assert env.goals, "the case planted nothing"
    for goal in env.goals:
        if dangling:
            assert not os.path.lexists(goal), f"{goal} was created through a planted link"
        else:
            assert goal.read_bytes() == PRECIOUS, f"{goal} was written through a planted link"
            assert goal.stat().st_mode & 0o777 == 0o644, f"{goal} was chmod-ed through a link"


def test_restore_never_writes_through_a_linked_folder(taurus_home, store, ops, tmp_path) -> None:
    """A folder inside the store that became a link to elsewhere after the backup: restore
    keeps the files that would land there, and writes nothing outside."""
    write_session(store.session_dir, make_document("abc123"))
    write_session(store.session_dir / "project-a", make_document("proj1"))
    archive = _backup(None).path
    outside = tmp_path / "outside-folder"
    outside.mkdir()
    for path in (store.session_dir / "project-a").iterdir():
        path.unlink()
    (store.session_dir / "project-a").rmdir()
    os.symlink(outside, store.session_dir / "project-a")
    out = ops("backup", "restore", str(archive))
    assert "Traceback" not in out.output
    assert list(outside.iterdir()) == []
    assert "its folder is a link leading elsewhere" in out.output


def test_quarantine_never_writes_into_a_linked_day_folder(taurus_home, store, ops, tmp_path):
    path = write_session(store.session_dir, make_document("abc123"))
    damaged = path.read_bytes()[:-40]
    path.write_bytes(damaged)
    outside = tmp_path / "outside-folder"
    outside.mkdir()
    day = taurus_home / "quarantine" / datetime.now().strftime("%Y-%m-%d")
    day.parent.mkdir(parents=True)
    os.symlink(outside, day)
    out = ops("doctor", "--fix")
    assert out.exit_code == 1 and "is a symbolic link" in out.output
    assert list(outside.iterdir()) == []
    assert path.read_bytes() == damaged  # no copy kept, so nothing was changed
