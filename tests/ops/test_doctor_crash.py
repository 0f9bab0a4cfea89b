"""SIGKILL during `doctor --fix`, at random moments, then a rerun: the same end as one run.

A store holding every kind of damage in tests/helpers/damage.py at once, with the repairs
that write new files (a file of two sessions split in two, one id on two conversations)
and those that move or replace files (a newer temporary file, an older copy, names). Copies
of it are repaired once without interruption, and again by `taurus-ops doctor --fix`
processes killed at random moments (or the moment a split is half done), each rerun
picking up what the last left. The session
files in the end are the same, byte for byte, and no split-off document is written twice.
Then the other direction: a store damaged by the old behaviour (one split-off document
written twice under two ids) is detected, and --fix keeps one and quarantines the other.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.damage import DAMAGES, format_damages
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt
from taurus_ops.store.lock import lock_path

DRIVER = textwrap.dedent(
    """
    import sys
    from taurus_ops.cli.main import main
    import taurus_ops.ops.doctor.repair, taurus_ops.ops.doctor.copies, taurus_ops.store.index
    from taurus_ops.config import load_config, read_config_file  # what the doctor loads lazily
    print("ready", flush=True)  # from here on, the time is the doctor's
    sys.argv = ["taurus-ops", "doctor", "--fix", *sys.argv[1:]]
    main()
    """
)
WHEN = time.mktime((2025, 2, 1, 12, 0, 0, 0, 0, -1))  # every file's mtime: old, and the same


def populate(home: Path) -> None:
    sessions, archive = home / "sessions", home / "archive"
    for i, (_kind, damage) in enumerate(sorted(DAMAGES.items())):
        doc = make_document(f"dmg{i:03d}", n_turns=3)
        path = write_session(sessions, doc)
        path.write_bytes(damage(path.read_bytes(), random.Random(i)).data)
    for kind in ("missing-id", "dangling-tool-use"):
        doc = format_damages(make_document(f"fmt-{kind}", n_turns=2))[kind]
        (sessions / f"2025-01-18_fmt-{kind}.json").write_bytes(fmt.dumps(doc))
    # two sessions in one file (the second keeps its id), and one with no id of its own
    for sid, other_id in (("split1", "zzz999"), ("split2", None)):
        path = write_session(sessions, make_document(sid, n_turns=2))
        other = make_document(other_id or "x", n_turns=1, first=f"Another talk than {sid}")
        if other_id is None:
            del other["sessionId"]
        path.write_bytes(path.read_bytes() + fmt.dumps(other))
    # one id, two conversations (one gets a new id); one id, an older copy in the archive
    write_session(sessions, make_document("same01", n_turns=3))
    other = make_document("same01", n_turns=1, first="Something else entirely")
    (sessions / "2025-02-01_same01.json").write_bytes(fmt.dumps(other))
    doc = make_document("older1", n_turns=3)
    path = write_session(sessions, doc)
    write_session(archive, dict(doc, messages=doc["messages"][:3]))
    os.symlink(path.name, sessions / "older-work.json")
    # a newer whole version left in a temporary file, a stale lock, loose modes, a lost name
    doc = make_document("temp01", n_turns=2)
    path = write_session(sessions, doc)
    newer = dict(doc, messages=[*doc["messages"], {"role": "user", "content": "One more."}])
    path.with_name(f".{path.name}.tmp-feedface").write_bytes(fmt.dumps(newer))
    lock_path(path).write_text("999999\n")
    os.chmod(path, 0o644)
    os.symlink("2025-01-01_gone00.json", sessions / "lost.json")
    for folder in (sessions, archive):
        for entry in folder.iterdir():
            if not entry.is_symlink():
                if entry.name.endswith(".json"):
                    os.chmod(entry, 0o600 if entry != path else 0o644)
                os.utime(entry, (WHEN, WHEN))


def snapshot(home: Path) -> dict[str, object]:
    """Every session file and name (not the hidden temporary files and locks)."""
    out: dict[str, object] = {}
    for folder in ("sessions", "archive"):
        for entry in sorted((home / folder).iterdir()):
            if entry.name.startswith("."):
                continue
            rel = f"{folder}/{entry.name}"
            out[rel] = ("->", os.readlink(entry)) if entry.is_symlink() else entry.read_bytes()
    return out


def start(home: Path, script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TAURUS_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def age_temporary_files(home: Path) -> None:
    for folder in (home / "sessions", home / "archive"):
        for entry in folder.iterdir():
            if ".tmp-" in entry.name:
                os.utime(entry, (WHEN, WHEN), follow_symlinks=False)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_during_repair_then_rerun_ends_like_one_run(tmp_path: Path, seed: int) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    base = tmp_path / "base"
    populate(base)
    once = tmp_path / "once"
    shutil.copytree(base, once, symlinks=True)
    began = time.perf_counter()
    assert doctor(once, fix=True).exit_code == 0  # one run, not interrupted
    took = 1.5 * (time.perf_counter() - began)
    expected = snapshot(once)
    assert len([n for n in expected if n.startswith("sessions/2025")]) > len(DAMAGES)

    killed = tmp_path / "killed"
    shutil.copytree(base, killed, symlinks=True)
    rng = random.Random(seed)
    for round_ in range(4):  # `taurus-ops doctor --fix` processes, each killed
        before = set(os.listdir(killed / "sessions"))
        proc = start(killed, script)
        if round_ % 2:  # at a random moment
            time.sleep(rng.uniform(0, took))
        else:  # the moment a new session file appears: a split is half done
            deadline = time.monotonic() + took
            while time.monotonic() < deadline and proc.poll() is None:
                names = set(os.listdir(killed / "sessions")) - before
                if any(not n.startswith(".") for n in names):
                    break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    report = doctor(killed, fix=True)
    assert report.exit_code == 0, report.lines()
    assert snapshot(killed) == expected
    # nothing was written twice: the doctor would find a twice-written document and move
    # the second to the quarantine, but it never has to
    assert not [p for p in report.problems if p.code == "same-conversation"]
    for manifest in (killed / "quarantine").glob("*/MANIFEST.jsonl"):
        reasons = [json.loads(line)["reason"] for line in manifest.read_text().splitlines()]
        assert not [r for r in reasons if r.startswith("the same conversation")], reasons

    # what the killed runs left half-written is found later, and changes no session
    age_temporary_files(killed)
    assert doctor(killed, fix=True).exit_code == 0
    assert snapshot(killed) == expected
    again = doctor(killed)
    assert again.exit_code == 0 and not again.problems, again.lines()


def doctor(home: Path, fix: bool = False):  # type: ignore[no-untyped-def]
    from helpers.jobs import run_doctor

    return run_doctor(home, home / "sessions", home / "archive", fix=fix)


def test_every_step_of_a_split_is_done_once(tmp_path: Path, store, taurus_home: Path) -> None:
    """A rerun after each point of the split: the second document is written once, ever."""
    from helpers.jobs import run_doctor

    from taurus_ops.ops.doctor.checks import scan_store
    from taurus_ops.ops.doctor.plan import make_plan
    from taurus_ops.ops.doctor.repair import _create_new

    path = write_session(store.session_dir, make_document("abc123", n_turns=2))
    second = make_document("abc123", n_turns=1, first="Not the same talk")
    del second["sessionId"]
    path.write_bytes(path.read_bytes() + fmt.dumps(second))
    plan = make_plan(scan_store(taurus_home, store.session_dir, store.archive_dir))
    (action,) = [a for a in plan.actions if a.extra_files]
    ((new_path, data),) = action.extra_files
    _create_new(new_path, data)  # the run stopped right after writing the split-off document
    again = make_plan(scan_store(taurus_home, store.session_dir, store.archive_dir))
    assert [a.extra_files for a in again.actions if a.kind == "rewrite"] == [[]]
    _create_new(new_path, data)  # and writing it once more is no change either
    assert run_doctor(taurus_home, store.session_dir, store.archive_dir, fix=True).exit_code == 0
    files = sorted(p.name for p in store.files())
    assert files == sorted([path.name, new_path.name])
    assert json.loads(new_path.read_bytes())["recoveredFrom"]["file"] == path.name


def test_a_split_off_document_written_twice_is_found_and_one_kept(
    store, taurus_home: Path, ops
) -> None:
    path = write_session(store.session_dir, make_document("abc123", n_turns=2))
    second = make_document("zzz999", n_turns=1, first="Not the same talk")
    path.write_bytes(path.read_bytes() + fmt.dumps(second))
    assert ops("doctor", "--fix").exit_code == 0
    (split,) = [p for p in store.files() if p != path]
    # as an interrupted run once left it: the same document again, under another id
    twice = json.loads(split.read_bytes())
    twice["previousSessionId"], twice["sessionId"] = twice["sessionId"], "k3k3k3k3"
    copy = store.session_dir / split.name.replace(split.stem.split("_")[1], "k3k3k3k3")
    copy.write_bytes(fmt.dumps(twice))
    os.chmod(copy, 0o600)
    store.name("k3k3k3k3", "the-copy")

    found = json.loads(ops("doctor", "--json").output)
    assert not found["healthy"]
    (problem,) = [p for p in found["problems"] if p["code"] == "same-conversation"]
    assert problem["severity"] == "warning" and "more than once" in problem["problem"]
    listed = json.loads(ops("list", "--json").output)
    assert len(listed) == 3  # the duplicate shows in list (and search, stats) until fixed

    fixed = ops("doctor", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert sorted(p.name for p in store.files()) == sorted([path.name, split.name])
    kept = list((taurus_home / "quarantine").glob(f"*/{copy.name}"))
    assert kept and kept[0].read_bytes() == fmt.dumps(twice)
    assert os.path.realpath(store.session_dir / "the-copy.json") == str(split)
    assert json.loads(ops("doctor", "--json").output)["healthy"]


def test_old_double_split_without_a_trace_is_noted_not_touched(store, taurus_home, ops) -> None:
    """Written before files said where they came from: reported, never removed."""
    doc = make_document("first1", n_turns=2)
    a = write_session(store.session_dir, doc)
    b = write_session(store.session_dir, dict(doc, sessionId="second", previousSessionId="first1"))
    report = json.loads(ops("doctor", "--fix", "--json").output)
    (problem,) = [p for p in report["problems"] if p["code"] == "same-conversation"]
    assert problem["severity"] == "info" and problem["status"] == "manual"
    assert report["healthy"] and a.exists() and b.exists()
    # a copy made by hand under another name is no such pair
    b.unlink()
    c = store.session_dir / "2025-03-01_fork01.json"
    c.write_bytes(fmt.dumps(dict(doc, sessionId="fork01", previousSessionId="first1")))
    os.chmod(c, 0o600)
    assert not json.loads(ops("doctor", "--json").output)["problems"]


@pytest.mark.parametrize("same", [True, False])
def test_an_id_also_in_a_project_folder_is_reported(store, taurus_home, ops, same) -> None:
    """The tutorial's project folders: a session copied (not moved) into project-a/."""
    path = write_session(store.session_dir, make_document("abc123", n_turns=2))
    project = store.session_dir / "project-a"
    project.mkdir(mode=0o700)
    copy = project / path.name
    shutil.copy2(path, copy)
    if not same:  # continued in the project since
        data = json.loads(copy.read_bytes())
        data["messages"].append({"role": "user", "content": "Carry on in project-a."})
        copy.write_bytes(fmt.dumps(data))
    store.name("abc123", "login-bug")
    raw = path.read_bytes()

    found = json.loads(ops("doctor", "--json").output)
    (problem,) = found["problems"]
    assert problem["code"] == "id-elsewhere" and "project-a" in problem["problem"]
    assert not found["healthy"]
    copy_raw = copy.read_bytes()
    fixed = json.loads(ops("doctor", "--fix", "--json").output)
    assert copy.read_bytes() == copy_raw  # the project's copy is never touched
    if same:  # an identical copy: the top-level one goes to the quarantine, names follow
        assert fixed["healthy"] and not path.exists()
        (kept,) = (taurus_home / "quarantine").glob(f"*/{path.name}")
        assert kept.read_bytes() == raw
        assert os.path.realpath(store.session_dir / "login-bug.json") == str(copy)
        assert json.loads(ops("doctor", "--json").output)["healthy"]
    else:  # two different conversations: both kept, the report says what to do
        assert not fixed["healthy"] and path.read_bytes() == raw
        (problem,) = fixed["problems"]
        assert problem["status"] == "manual" and "both are kept" in problem["outcome"]
