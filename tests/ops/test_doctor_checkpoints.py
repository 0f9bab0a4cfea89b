"""``taurus-ops doctor`` and the file checkpoints: each kind of damage found, repaired without
losing a byte (the quarantine keeps it), and a second run clean; a fork's links are one file."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.checkpoints import age, edited_session
from helpers.doctoring import tree
from helpers.jobs import run_doctor

from taurus_ops.ops.doctor.document import INFO
from taurus_ops.store import SessionStore
from taurus_ops.store.checkpoints import CheckpointStore
from taurus_ops.store.fork import fork_session
from taurus_ops.store.lock import SessionLock

SID = "work0001"
# edit 0 writes a.py (message 2), edit 1 changes it (message 4), edit 2 changes b.py (message 6)
EDITS = [("a.py", None, b"one\n"), ("a.py", b"one\n", b"two\n"), ("b.py", b"bee\n", b"bee 2\n")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    home: Path
    sessions: Path
    archive: Path
    session: Path
    blobs: CheckpointStore = field(init=False)

    def __post_init__(self) -> None:
        self.blobs = CheckpointStore.for_home(self.home)

    def blob(self, content: bytes, sid: str = SID) -> Path:
        return self.blobs.path(sid, sha(content))

    def doctor(self, **kw):  # type: ignore[no-untyped-def]
        if "only" in kw:  # sessions named by their paths
            kw["refs"] = tuple(str(path) for path in kw.pop("only"))
        return run_doctor(self.home, self.sessions, self.archive, **kw)

    def quarantined(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in (self.home / "quarantine").glob("*/*")
            if p.name != "MANIFEST.jsonl" and p.is_file() and not p.is_symlink()
        }

    def manifest(self) -> list[dict]:
        lines = []
        for path in (self.home / "quarantine").glob("*/MANIFEST.jsonl"):
            lines += [json.loads(line) for line in path.read_text().splitlines()]
        return lines


@pytest.fixture
def world(taurus_home: Path) -> World:
    sessions, archive = taurus_home / "sessions", taurus_home / "archive"
    path = edited_session(taurus_home, sessions, SID, EDITS)
    return World(taurus_home, sessions, archive, path)


def codes(report) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((p.code, p.path) for p in report.problems)


def test_a_healthy_store_of_checkpoints_is_clean(world: World) -> None:
    for full in (False, True):
        report = world.doctor(full=full)
        assert report.problems == [] and report.exit_code == 0, report.lines()


# -- the matrix: damage -> finding -> repair -> a clean second run ---------------------------
@dataclass
class Damage:
    """One kind of damage: what it does, what the doctor must say, what the repair leaves."""

    hurt: Callable[[World], Path]  # returns the path the finding names
    code: str
    severity: str = "warning"
    full: bool = False  # found only by --full (a hash of every blob)
    kept: Callable[[World], bytes] | None = None  # the bytes the quarantine must hold
    notes_after: tuple[str, ...] = ()  # notes that stay true after the repair
    then: Callable[[World], None] | None = None  # more checks after the repair


def _empty_blob(w: World) -> Path:
    w.blob(b"bee\n").write_bytes(b"")  # what a power cut leaves of a write never synced
    return w.blob(b"bee\n")


def _bit_rot(w: World) -> Path:
    path = w.blob(b"two\n")
    path.write_bytes(b"twO\n")  # same size: only a hash tells
    return path


def _bit_rot_with_a_copy(w: World) -> Path:
    edited_session(w.home, w.sessions, "other001", [("c.py", None, b"two\n")])
    return _bit_rot(w)


def _stale_temp(w: World) -> Path:
    temp = w.blob(b"bee\n").with_name(f".{sha(b'bee 3')}.tmp-1a2b3c4d")
    temp.write_bytes(b"bee")  # a save cut off: never linked to its name
    age(temp)
    return temp


def _temp_of_a_missing_blob(w: World) -> Path:
    blob = w.blob(b"bee\n")
    temp = blob.with_name(f".{blob.name}.tmp-1a2b3c4d")
    os.rename(blob, temp)  # the save was fsynced, the link to its name never made
    age(temp)
    return temp


def _stray_file(w: World) -> Path:
    path = w.blob(b"bee\n").with_name("notes.txt")
    path.write_text("put here by hand")
    return path


def _stray_link(w: World) -> Path:
    path = w.blob(b"bee\n").with_name(sha(b"planted"))
    os.symlink("/etc/hostname", path)
    return path


def _stray_at_the_top(w: World) -> Path:
    path = w.blobs.root / "README"
    path.write_text("not a session's folder")
    return path


def _blob_mode(w: World) -> Path:
    w.blob(b"two\n").chmod(0o644)
    return w.blob(b"two\n")


def _folder_mode(w: World) -> Path:
    w.blobs.folder(SID).chmod(0o755)
    return w.blobs.folder(SID)


def _store_mode(w: World) -> Path:
    w.blobs.root.chmod(0o750)
    return w.blobs.root


def _missing(w: World) -> Path:
    w.blob(b"bee\n").unlink()  # pruned, or removed by hand
    return w.session


def _orphan(w: World) -> Path:
    edited_session(w.home, w.sessions, "gone0001", [("old.py", b"x" * 3000, b"y" * 2000)])
    (w.sessions / "2025-01-18_gone0001.json").unlink()  # the session went; its folder stayed
    age(w.blobs.folder("gone0001"))
    return w.blobs.folder("gone0001")


def _unlinked(w: World) -> Path:
    store = SessionStore(w.sessions, w.archive)
    made = fork_session(store, store.load(w.session), 7, w.blobs)
    w.blob(b"bee\n", made.session.id).unlink()  # the fork lost its link; the parent has it
    return w.blobs.folder(made.session.id)


def _blob_back(content: bytes, sid: str = SID) -> Callable[[World], None]:
    def check(w: World) -> None:
        assert w.blobs.read(sid, sha(content)) == content
        assert w.blob(content, sid).stat().st_mode & 0o777 == 0o600

    return check


def _mode_is(want: int, where: Callable[[World], Path]) -> Callable[[World], None]:
    def check(w: World) -> None:
        assert stat.S_IMODE(where(w).stat().st_mode) == want

    return check


def _orphan_stays(w: World) -> None:
    assert w.blobs.folder("gone0001").is_dir()  # reported, never removed by the doctor


def _fork_linked(w: World) -> None:
    (fork,) = [i for i in w.blobs.session_ids() if i != SID]
    assert w.blob(b"bee\n", fork).stat().st_ino == w.blob(b"bee\n").stat().st_ino


DAMAGES = {
    "empty blob": Damage(
        _empty_blob, "checkpoint-damaged", "error", kept=lambda w: b"", notes_after=("missing",)
    ),
    "bit rot": Damage(
        _bit_rot, "checkpoint-damaged", "error", True, lambda w: b"twO\n", ("missing",)
    ),
    "bit rot, a whole copy elsewhere": Damage(
        _bit_rot_with_a_copy,
        "checkpoint-damaged",
        "error",
        True,
        lambda w: b"twO\n",
        then=_blob_back(b"two\n"),
    ),
    "stale temporary file": Damage(_stale_temp, "checkpoint-temp", kept=lambda w: b"bee"),
    "temporary file of a missing blob": Damage(
        _temp_of_a_missing_blob,
        "checkpoint-temp",
        kept=lambda w: b"bee\n",
        then=_blob_back(b"bee\n"),
    ),
    "stray file": Damage(_stray_file, "checkpoint-stray", kept=lambda w: b"put here by hand"),
    "stray link": Damage(_stray_link, "checkpoint-stray"),
    "stray file at the top": Damage(
        _stray_at_the_top, "checkpoint-stray", kept=lambda w: b"not a session's folder"
    ),
    "blob mode": Damage(
        _blob_mode, "permissions", then=_mode_is(0o600, lambda w: w.blob(b"two\n"))
    ),
    "folder mode": Damage(
        _folder_mode, "permissions", then=_mode_is(0o700, lambda w: w.blobs.folder(SID))
    ),
    "store mode": Damage(_store_mode, "permissions", then=_mode_is(0o700, lambda w: w.blobs.root)),
    "missing blob": Damage(_missing, "checkpoint-missing", INFO, notes_after=("missing",)),
    "orphan folder": Damage(
        _orphan, "checkpoint-orphan", INFO, notes_after=("orphan",), then=_orphan_stays
    ),
    "fork lost a link": Damage(_unlinked, "checkpoint-unlinked", then=_fork_linked),
}


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_each_damage_is_found_repaired_and_a_second_run_is_clean(world: World, kind: str) -> None:
    damage = DAMAGES[kind]
    where = damage.hurt(world)
    if damage.full:
        assert world.doctor().exit_code == 0, "hashing every blob is for --full only"
    found = world.doctor(full=damage.full)
    (problem,) = [p for p in found.problems if p.code == damage.code]
    assert problem.path == str(where) and problem.severity == damage.severity, found.lines()
    assert found.exit_code == (0 if damage.severity == INFO else 1)

    before = tree(world.home)
    dry = world.doctor(full=damage.full, fix=True, dry_run=True)
    assert tree(world.home) == before, "a dry run changes nothing"
    planned = [a for a in dry.plan.actions if problem.code in {p.code for p in a.problems}]
    assert bool(planned) == (damage.severity != INFO)
    assert "--fix would:" in "\n".join(dry.lines()) or damage.severity == INFO

    fixed = world.doctor(full=damage.full, fix=True)
    assert fixed.exit_code == 0, fixed.lines()
    (done,) = [p for p in fixed.problems if p.code == damage.code]
    if damage.severity != INFO:
        assert done.status == "fixed", done
    if damage.kept is not None:  # nothing lost: the original bytes are in the quarantine
        kept = world.quarantined()
        assert damage.kept(world) in kept.values(), kept
        assert any(line["original"] == str(where) for line in world.manifest())
    if damage.then is not None:
        damage.then(world)

    again = world.doctor(full=True)
    assert again.exit_code == 0, again.lines()
    left = sorted(p.code.removeprefix("checkpoint-") for p in again.problems)
    assert left == sorted(damage.notes_after), again.lines()
    assert all(p.severity == INFO for p in again.problems)


def test_a_stray_link_is_recorded_before_it_goes(world: World) -> None:
    link = _stray_link(world)
    world.doctor(fix=True)
    assert not os.path.lexists(link) and os.path.exists("/etc/hostname")
    (entry,) = [e for e in world.manifest() if e["original"] == str(link)]
    assert entry["linkTarget"] == "/etc/hostname"


def test_a_missing_checkpoint_says_which_file_and_message_a_rewind_cannot_restore(
    world: World,
) -> None:
    world.blob(b"bee\n").unlink()
    world.blob(b"one\n").unlink()  # the content a.py had before message 4
    (note,) = world.doctor().problems
    assert note.path == str(world.session) and note.severity == INFO
    assert "2 checkpoints" in note.text and "pruned by checkpoints.maxBytes" in note.text
    assert "a.py as before message 4" in note.text and "b.py as before message 6" in note.text
    # a content Taurus wrote, needed only for the +/- counts
    world.blobs.save(SID, b"one\n")
    world.blobs.save(SID, b"bee\n")
    world.blob(b"bee 2\n").unlink()
    (note,) = world.doctor().problems
    assert "only the +/- line counts" in note.text
    # a session whose whole folder is gone: found by --full, which reads every session
    for path in world.blobs.folder(SID).iterdir():
        path.unlink()
    world.blobs.folder(SID).rmdir()
    assert world.doctor().problems == []
    (note,) = world.doctor(full=True).problems
    assert "4 checkpoints" in note.text and "a.py as before message 4" in note.text


def test_an_orphan_is_reported_with_its_size_and_the_command_never_removed(world: World) -> None:
    where = _orphan(world)
    report = world.doctor(fix=True)
    (note,) = report.problems
    assert note.code == "checkpoint-orphan" and note.status == "manual"
    assert "2 files, 4.9K" in note.text
    assert f"rm -r {where}" in note.outcome
    text = "\n".join(report.lines())
    assert "not fixed automatically: if that session is gone for good: rm -r" in text
    assert where.is_dir() and len(list(where.iterdir())) == 2
    # a session in the archive or in a project's own folder is not gone
    project = world.sessions / "project-a"
    project.mkdir()
    (project / "2025-01-18_gone0001.json").write_text("{}")
    assert world.doctor().problems == []


def test_a_young_temporary_file_may_be_a_save_in_progress(world: World) -> None:
    temp = world.blob(b"bee\n").with_name(f".{sha(b'new')}.tmp-1a2b3c4d")
    temp.write_bytes(b"ne")
    assert world.doctor().problems == []


# -- forks: links are one file ---------------------------------------------------------------
@pytest.fixture
def family(world: World) -> tuple[World, str]:
    store = SessionStore(world.sessions, world.archive)
    made = fork_session(store, store.load(world.session), 7, world.blobs)
    assert made.linked == 4
    return world, made.session.id


def test_a_forks_links_are_neither_orphans_nor_counted_twice(family) -> None:
    world, fork = family
    assert world.blob(b"bee\n", fork).stat().st_nlink == 2
    assert world.doctor(full=True).problems == []
    # the parent's session goes: its folder is an orphan whose linked blobs stay for the fork
    world.session.unlink()
    assert world.doctor(full=True).problems == [], "a folder just written may be a new session's"
    age(world.blobs.folder(SID))
    (note,) = world.doctor(full=True).problems
    assert note.code == "checkpoint-orphan" and note.path == str(world.blobs.folder(SID))
    assert "4 files" in note.text and "of it is linked from other sessions' folders" in note.text
    assert world.blobs.folder(fork).name not in note.path


def test_a_damaged_blob_a_fork_shares_is_one_problem_and_both_names_go(family) -> None:
    world, fork = family
    world.blob(b"bee\n").write_bytes(b"")  # one file, two names
    report = world.doctor(fix=True)
    (damaged,) = [p for p in report.problems if p.code == "checkpoint-damaged"]
    assert damaged.status == "fixed" and "with its 1 link in" in damaged.outcome
    assert not world.blob(b"bee\n").exists() and not world.blob(b"bee\n", fork).exists()
    assert list(world.quarantined().values()).count(b"") == 1  # kept once
    notes = world.doctor(full=True).problems
    assert {(p.code, p.severity) for p in notes} == {("checkpoint-missing", INFO)}
    assert len(notes) == 2  # both sessions named it


def test_only_the_sessions_asked_for_are_looked_at(world: World) -> None:
    other = edited_session(world.home, world.sessions, "other001", [("c.py", None, b"c\n")])
    world.blob(b"c\n", "other001").write_bytes(b"")
    _orphan(world)
    report = world.doctor(only=[world.session])
    assert report.problems == []
    found = world.doctor(only=[other]).problems
    assert sorted(p.code for p in found) == ["checkpoint-damaged", "checkpoint-missing"]
    assert {Path(p.path).parent.name for p in found} == {"other001", "sessions"}


def test_a_session_open_in_a_chat_is_left_alone(world: World) -> None:
    temp = _stale_temp(world)
    world.blob(b"bee\n").write_bytes(b"")
    lock = SessionLock(world.session)
    lock.acquire()
    try:
        report = world.doctor(fix=True)
    finally:
        lock.release()
    (damaged,) = [p for p in report.problems if p.code == "checkpoint-damaged"]
    assert damaged.status == "skipped" and "open in a chat" in damaged.outcome
    assert temp.exists() and not any(p.code == "checkpoint-temp" for p in report.problems)
    assert world.doctor(fix=True).exit_code == 0  # closed: repaired


def test_a_checkpoint_changed_since_the_scan_is_put_back_not_lost(world: World) -> None:
    from taurus_ops.ops.doctor.checks import scan_store
    from taurus_ops.ops.doctor.plan import make_plan
    from taurus_ops.ops.doctor.repair import Quarantine, apply_plan

    path = _empty_blob(world)
    scan = scan_store(world.home, world.sessions, world.archive)
    plan = make_plan(scan)
    world.blobs.save(SID, b"bee\n")  # a chat keeps the content again meanwhile
    apply_plan(plan, scan, Quarantine(world.home))
    (problem,) = [p for p in scan.problems if p.code == "checkpoint-damaged"]
    assert problem.status == "skipped" and "changed since the scan" in problem.outcome
    assert path.read_bytes() == b"bee\n"
    assert world.doctor(full=True).problems == []


def test_the_cli_hashes_only_with_full(world: World, ops) -> None:
    _bit_rot(world)
    plain = json.loads(ops("doctor", "--json").output)
    assert plain["healthy"] and plain["problems"] == []
    full = ops("doctor", "--full", "--json")
    assert full.exit_code == 1
    damaged, note = sorted(json.loads(full.output)["problems"], key=lambda p: p["severity"])
    assert damaged["code"] == "checkpoint-damaged" and damaged["severity"] == "error"
    assert damaged["fix"] == "move it to the quarantine"
    assert note["code"] == "checkpoint-missing" and note["path"] == str(world.session)
    text = ops("doctor", "--full", "--fix").output
    assert "checkpoints/work0001/" in text and "fixed: moved to" in text
    assert "--full" in ops("doctor", "--help").output
