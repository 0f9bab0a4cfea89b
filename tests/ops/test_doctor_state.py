"""The doctor remembers the files it found healthy and reads only what changed since.

Reads are counted in a real child process with an audit hook on ``open``: each read of
a session file is a parse. A file is remembered by its device, inode, size, mtime and
ctime; any change to them, a new name, or ``doctor --full`` reads it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.ops.doctor.checks import STATE_NAME
from taurus_ops.store import format as fmt

SCAN = """
import json, sys
from pathlib import Path
folder = sys.argv[2] + "/"
reads = []
def count(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(folder):
        reads.append(args[0])
sys.addaudithook(count)
from taurus_ops.ops.doctor.checks import scan_store
home, sessions, now, fix = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
if fix == "fix":
    from taurus_ops.config.effective import Config
    from taurus_ops.config.settings import Settings
    from taurus_ops.ops import doctor
    from taurus_ops.ops.context import JobContext
    settings = Settings.model_validate({"sessionDirectory": sessions})
    ctx = JobContext.of(Config(settings=settings, home=home))
    report = doctor.run(ctx, doctor.DoctorRequest(fix=True))
    print(json.dumps({"exit": report.exit_code}))
else:
    scan = scan_store(home, sessions, None, now=now)
    print(json.dumps({"reads": sorted(reads), "checked": scan.checked,
                      "problems": sorted((p.code, p.path) for p in scan.problems)}))
"""

CLI = """
import sys, runpy
folder = sys.argv[1] + "/"
reads = []
def count(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(folder):
        reads.append(args[0])
sys.addaudithook(count)
sys.argv = ["taurus-ops", "doctor", *sys.argv[2:]]
try:
    runpy.run_module("taurus_ops.cli", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("READS", len(reads), code, file=sys.stderr)
"""

LATER = 3600.0  # a scan an hour after the files were written: every file has settled


def scan(home: Path, sessions: Path, later: float = LATER, fix: bool = False) -> dict[str, Any]:
    mode = "fix" if fix else "scan"
    proc = subprocess.run(
        [sys.executable, "-c", SCAN, str(home), str(sessions), str(time.time() + later), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def documents(count: int) -> list[dict[str, Any]]:
    """Sessions of distinct times (two files of one time and length are compared as copies)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [make_document(f"s{n:03d}", start + timedelta(hours=n), n_turns=3) for n in range(count)]


@pytest.fixture
def sessions(taurus_home: Path) -> list[Path]:
    taurus_home.mkdir(mode=0o700)
    return [write_session(taurus_home / "sessions", doc) for doc in documents(30)]


def test_unchanged_healthy_files_are_not_read_again(
    taurus_home: Path, sessions: list[Path]
) -> None:
    folder = taurus_home / "sessions"
    first = scan(taurus_home, folder)
    assert len(first["reads"]) == 30 and first["problems"] == [] and first["checked"] == 30
    state = taurus_home / STATE_NAME
    assert state.stat().st_mode & 0o777 == 0o600
    written = state.stat().st_mtime_ns
    again = scan(taurus_home, folder)
    assert again["reads"] == [] and again["problems"] == [] and again["checked"] == 30
    assert state.stat().st_mtime_ns == written  # nothing changed: not even the state


def _same_size_new_mtime(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"role": "user"', b'"role": "usex"', 1))


def _same_mtime_new_size(path: Path) -> None:
    st = path.stat()
    path.write_bytes(path.read_bytes() + b"trailing garbage")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _new_inode(path: Path) -> None:
    st = path.stat()
    raw = path.read_bytes().replace(b'"role": "user"', b'"role": "usex"', 1)
    other = path.with_name("elsewhere.tmp")
    other.write_bytes(raw)
    os.chmod(other, 0o600)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize(
    "change",
    [_same_size_new_mtime, _same_mtime_new_size, _new_inode],
    ids=["same-size-new-mtime", "same-mtime-new-size", "replaced-inode"],
)
def test_a_changed_file_is_read_again_and_its_damage_found(
    taurus_home: Path, sessions: list[Path], change: Any
) -> None:
    folder = taurus_home / "sessions"
    assert len(scan(taurus_home, folder)["reads"]) == 30
    target = sessions[7]
    change(target)
    found = scan(taurus_home, folder)
    assert found["reads"] == [str(target)]
    assert [path for _code, path in found["problems"]] == [str(target)]
    again = scan(taurus_home, folder)  # a damaged file is never remembered
    assert again["reads"] == [str(target)] and again["problems"] == found["problems"]


def test_a_renamed_file_is_read_again(taurus_home: Path, sessions: list[Path]) -> None:
    folder = taurus_home / "sessions"
    scan(taurus_home, folder)
    renamed = sessions[3].with_name(sessions[3].name.replace("s003", "other1"))
    os.rename(sessions[3], renamed)  # the same inode, size and mtime under another name
    found = scan(taurus_home, folder)
    assert found["reads"] == [str(renamed)]
    assert [code for code, _path in found["problems"]] == ["id-mismatch"]


def test_files_changed_just_now_are_checked_but_not_remembered(
    taurus_home: Path, sessions: list[Path]
) -> None:
    """A coarse file-system clock could give a second change within the same tick the same
    mtime and ctime, so a file is remembered only once its last change has settled."""
    folder = taurus_home / "sessions"
    assert len(scan(taurus_home, folder, later=-60)["reads"]) == 30
    assert len(scan(taurus_home, folder, later=-60)["reads"]) == 30
    assert len(scan(taurus_home, folder)["reads"]) == 30  # settled: remembered now
    assert scan(taurus_home, folder)["reads"] == []


def test_a_damaged_state_reads_every_file(taurus_home: Path, sessions: list[Path]) -> None:
    folder = taurus_home / "sessions"
    scan(taurus_home, folder)
    for junk in (b"", b"{not json", b'{"version": 1, "files": {"x": [1]}}', b"[]"):
        (taurus_home / STATE_NAME).write_bytes(junk)
        assert len(scan(taurus_home, folder)["reads"]) == 30
    assert scan(taurus_home, folder)["reads"] == []


def test_a_repair_still_works_and_the_repaired_file_is_read_once(
    taurus_home: Path, sessions: list[Path]
) -> None:
    folder = taurus_home / "sessions"
    scan(taurus_home, folder)
    target = sessions[11]
    original = fmt.loads(target.read_bytes())
    target.write_bytes(target.read_bytes()[:-200])  # cut off mid-write
    assert [p for _c, p in scan(taurus_home, folder)["problems"]] == [str(target)]
    assert scan(taurus_home, folder, fix=True)["exit"] == 0
    repaired = fmt.loads(target.read_bytes())
    assert repaired["messages"] == original["messages"][: len(repaired["messages"])]
    after = scan(taurus_home, folder)
    assert after["problems"] == [] and after["reads"] == [str(target)]
    assert scan(taurus_home, folder)["reads"] == []


def test_copies_are_still_found_when_their_files_are_not_read(taurus_home: Path) -> None:
    """Two healthy files holding one split-off document: the note needs only the two read."""
    taurus_home.mkdir(mode=0o700)
    folder = taurus_home / "sessions"
    for doc in documents(10):
        write_session(folder, doc)
    doc = make_document("first1", n_turns=2)
    pair = [
        write_session(folder, doc),
        write_session(folder, dict(doc, sessionId="second", previousSessionId="first1")),
    ]
    first = scan(taurus_home, folder)
    assert [c for c, _p in first["problems"]] == ["same-conversation"]
    again = scan(taurus_home, folder)
    assert again["problems"] == first["problems"]
    assert sorted(set(again["reads"])) == sorted(str(p) for p in pair)  # and no other file


def test_doctor_full_reads_every_file(taurus_home: Path, sessions: list[Path]) -> None:
    def doctor(*args: str) -> int:
        proc = subprocess.run(
            [sys.executable, "-c", CLI, str(taurus_home / "sessions"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        line = [x for x in proc.stderr.splitlines() if x.startswith("READS")][-1]
        assert line.split()[2] in ("0", "None"), proc.stdout + proc.stderr
        return int(line.split()[1])

    time.sleep(2.1)  # the files' last change has settled (SETTLE_SECONDS)
    assert doctor() == 30
    assert doctor() == 0
    assert doctor("--full") == 30
    assert doctor() == 0
