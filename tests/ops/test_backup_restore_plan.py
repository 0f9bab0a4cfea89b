"""The restore plan is a pure function of the manifest and the disk's facts.

Every destination here lies under a folder that does not exist: were ``decide`` to
look at the disk instead of the facts it is given, every file would come out
"missing on disk" and each case below would fail.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.ops.backup import restore
from taurus_ops.ops.backup.restore import KEEP, REPLACE, RESTORE, SAME, Disk, OnDisk, decide
from taurus_ops.store import format as fmt

NOWHERE = Path("/nonexistent-taurus-test")
SESSIONS = NOWHERE / "sessions"
ARCHIVE = NOWHERE / "archive"
OTHER = {"sessions": ARCHIVE, "archive": SESSIONS}
BACKED_UP = fmt.dumps({**make_document("abc123"), "updated": "2025-01-18T10:00:00.000Z"})
SHA = hashlib.sha256(BACKED_UP).hexdigest()
NAME = "2025-01-18_abc123.json"
MEMBER = f".taurus/sessions/{NAME}"
DEST = SESSIONS / NAME
ROOTS = [(".taurus/sessions", "sessions", SESSIONS), (".taurus/archive", "archive", ARCHIVE)]


def manifest(links: bool = False) -> dict:
    return {
        "roots": [{"kind": k, "member": m} for m, k, _ in ROOTS],
        "files": [{"path": MEMBER, "size": len(BACKED_UP), "sha256": SHA, "mtime": 1_000}],
        "links": [{"path": ".taurus/sessions/login-bug.json", "target": NAME}] if links else [],
    }


def at_dest(**facts: object) -> Disk:
    return Disk(files={str(DEST): OnDisk(**facts)})  # type: ignore[arg-type]


LATER = datetime(2025, 2, 1, tzinfo=UTC)
EARLIER = datetime(2024, 12, 1, tzinfo=UTC)
FILE = {"exists": True, "is_file": True, "sha256": "0" * 64, "real": str(DEST)}

CASES = {
    "missing": (Disk(), False, RESTORE, "missing on disk"),
    "identical": (at_dest(**{**FILE, "sha256": SHA}), False, SAME, "identical"),
    "a symlink": (at_dest(exists=True, is_link=True, is_file=True), False, KEEP, "not a regular"),
    "a folder": (at_dest(exists=True), False, KEEP, "not a regular file"),
    "unreadable": (at_dest(**FILE, unreadable="Permission denied"), False, KEEP, "cannot read"),
    "locked": (at_dest(**FILE, locked=True), False, KEEP, "open in a running chat"),
    "newer": (at_dest(**FILE, updated=LATER), False, KEEP, "newer on disk (use --force"),
    "newer, forced": (at_dest(**FILE, updated=LATER), True, REPLACE, "replaced (--force)"),
    "older": (at_dest(**FILE, updated=EARLIER), False, REPLACE, "older on disk"),
    "newer by mtime": (at_dest(**FILE, mtime=2_000.0), False, KEEP, "newer on disk"),
    "older by mtime": (at_dest(**FILE, mtime=500.0), False, REPLACE, "older on disk"),
    "archived since": (
        Disk(others={str(ARCHIVE / NAME): OnDisk(exists=True, is_file=True)}),
        False,
        KEEP,
        f"present in the archive as {ARCHIVE / NAME}",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_state_on_disk_gives_its_action(case: str) -> None:
    disk, force, action, why = CASES[case]
    contents = {MEMBER: BACKED_UP}
    plan = decide(Path("b.tar.gz"), manifest(), ROOTS, disk, OTHER, force, contents)
    (step,) = plan.steps
    assert (step.action, step.dest) == (action, str(DEST))
    assert why in step.why, step.why


def test_a_folder_reached_through_a_link_is_never_written() -> None:
    disk = Disk(escapes={str(DEST)})
    (step,) = decide(Path("b.tar.gz"), manifest(), ROOTS, disk, OTHER).steps
    assert step.action == KEEP and "link leading elsewhere" in step.why


def test_restoring_elsewhere_ignores_where_sessions_moved_and_locks() -> None:
    """``--to``: no other folder to look in, and a chat's lock does not count."""
    moved = Disk(others={str(ARCHIVE / NAME): OnDisk(exists=True, is_file=True)})
    (step,) = decide(Path("b.tar.gz"), manifest(), ROOTS, moved, {}).steps
    assert step.action == RESTORE
    locked = at_dest(**FILE, locked=True, updated=EARLIER)
    (step,) = decide(
        Path("b.tar.gz"), manifest(), ROOTS, locked, {}, False, {MEMBER: BACKED_UP}
    ).steps
    assert step.action == REPLACE


def test_a_name_follows_its_session_into_the_archive() -> None:
    disk = Disk(others={str(ARCHIVE / NAME): OnDisk(exists=True, is_file=True)})
    plan = decide(Path("b.tar.gz"), manifest(links=True), ROOTS, disk, OTHER)
    file_step, name_step = plan.steps
    assert file_step.action == KEEP
    assert (name_step.kind, name_step.action) == ("link", RESTORE)
    assert name_step.target == str(ARCHIVE / NAME)


@pytest.mark.parametrize(
    ("there", "action"),
    [
        (OnDisk(exists=True, is_link=True, is_file=True, real=str(DEST)), SAME),
        (OnDisk(exists=True, is_link=True, is_file=True, real="/elsewhere.json"), KEEP),
        (OnDisk(exists=True, is_file=True, real="/x"), KEEP),
    ],
)
def test_a_name_already_there(there: OnDisk, action: str) -> None:
    link = str(SESSIONS / "login-bug.json")
    disk = Disk(files={str(DEST): OnDisk(real=str(DEST))}, others={link: there})
    _, name_step = decide(Path("b.tar.gz"), manifest(links=True), ROOTS, disk, OTHER).steps
    assert name_step.action == action


def test_the_dry_run_prints_the_plan_the_real_run_carries_out(home_with_backup, ops) -> None:
    archive, sessions = home_with_backup
    (sessions / "2025-01-18_plan0001.json").unlink()
    newer = sessions / "2025-01-18_plan0002.json"
    doc = json.loads(newer.read_bytes())
    doc["updated"] = fmt.now_iso()
    newer.write_bytes(fmt.dumps(doc))
    dry = ops("backup", "restore", str(archive), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    real = ops("backup", "restore", str(archive), "--json")
    assert real.exit_code == 0, real.output
    planned, done = json.loads(dry.output), json.loads(real.output)
    assert planned["steps"] == done["steps"]
    actions = {Path(s["dest"]).name: s["action"] for s in done["steps"]}
    assert actions["2025-01-18_plan0001.json"] == RESTORE
    assert actions["2025-01-18_plan0002.json"] == KEEP
    assert actions["2025-01-18_plan0003.json"] == SAME
    assert done["written"] == [str(sessions / "2025-01-18_plan0001.json")]


def test_survey_reads_what_decide_needs(home_with_backup) -> None:
    """The one part that looks at the disk: each destination's facts."""
    from taurus_ops.config import load_config
    from taurus_ops.ops.backup.verify import verify_archive

    archive, sessions = home_with_backup
    config = load_config()
    report = verify_archive(archive)
    assert report.manifest is not None
    roots = restore.dest_map(report.manifest, config, None)
    disk = restore.survey(report.manifest, roots, config)
    same = disk.at(sessions / "2025-01-18_plan0003.json")
    entry = next(e for e in report.manifest["files"] if e["path"].endswith("plan0003.json"))
    assert same.exists and same.is_file and same.sha256 == entry["sha256"]
    (sessions / "2025-01-18_plan0003.json").unlink()
    assert not restore.survey(report.manifest, roots, config).at(sessions / "x.json").exists


@pytest.fixture
def home_with_backup(taurus_home: Path, store, ops) -> tuple[Path, Path]:
    for n in range(1, 4):
        write_session(store.session_dir, make_document(f"plan{n:04d}"))
    out = ops("backup", "create", "--json")
    assert out.exit_code == 0, out.output
    return Path(json.loads(out.output)["path"]), store.session_dir
