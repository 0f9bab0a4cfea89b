"""Counted words in what the commands print: ``1 file``, ``2 files``, never ``1 files`` or ``(s)``.

Each command runs once with one item and once with two, and every line it prints (and the
operations log it writes) is checked for a hedged plural or a singular count with a plural noun.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.words import plural

HEDGED = re.compile(r"\w\((?:s|es)\)")
# the plural nouns Taurus counts
NOUNS = (
    "files|sessions|problems|errors|warnings|notes|messages|secrets|bytes|days|calls|blocks"
    "|characters|documents|stretches|links|runs|entries|names|lines|matches|results|copies"
)
# "1" as a whole number, up to two words (an adjective: "1 damaged files"), a plural noun
ONE_PLURAL = re.compile(rf"(?<![\w.,/-])1 (?:[a-z_]+ ){{0,2}}(?:{NOUNS})\b")


def bad_counts(text: str) -> list[str]:
    """Every hedged plural and singular-with-plural phrase in ``text``."""
    found = [m.group(0) for m in HEDGED.finditer(text)]
    found += [m.group(0) for m in ONE_PLURAL.finditer(text)]
    return found


def test_the_checks_catch_what_they_are_for() -> None:
    assert bad_counts("Restored 1 files") == ["1 files"]
    assert bad_counts("2 session(s)") == ["n(s)"]
    assert bad_counts("1 damaged files (run taurus-ops doctor)") == ["1 damaged files"]
    assert not bad_counts("Restored 1 file; 2 files; 1 of 2 problems; 1 session is open")


def old_session(folder: Path, sid: str, days: int) -> Path:
    created = datetime.now(UTC) - timedelta(days=days)
    doc = make_document(sid, created=created, n_turns=1)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc["updated"] = stamp
    path = write_session(folder, doc)
    os.utime(path, (created.timestamp(), created.timestamp()))
    return path


@pytest.mark.parametrize("n", [1, 2])
def test_commands_count_in_words(n: int, ops, store, taurus_home: Path, tmp_path: Path) -> None:
    printed: list[str] = []

    def run(*args: str, code: int = 0) -> str:
        result = ops(*args)
        assert result.exit_code == code, (args, result.output)
        printed.append(result.output)
        return result.output

    for i in range(n):
        old_session(store.session_dir, f"old{i}", days=40)
    old_session(store.session_dir, "fresh", days=0)

    # cleanup: n sessions past retentionDays
    (taurus_home / "config.yaml").write_text("sessions:\n  retentionDays: 30\n")
    out = run("cleanup", "--dry-run")
    assert f"Would archive {plural(n, 'session')}" in out
    run("cleanup")
    out = run("cleanup", "--dry-run")
    assert f"({plural(1, 'session')} kept)" in out
    (taurus_home / "config.yaml").unlink()

    # names and the index
    for i in range(n):
        store.name("fresh", f"name{i}")
    stats = run("stats")
    assert f"{plural(n, 'name link')} not counted" in stats
    out = run("index", "rebuild")
    assert f"{plural(n + 1, 'session')} in" in out

    # export: every session in the directory
    for i in range(n - 1):
        write_session(store.session_dir, make_document(f"more{i}"))
    out = run("export", "--all", "-o", str(tmp_path / "exports"), "--redact")
    assert f"Exported {plural(n, 'session')}" in out
    refused = ops("export", "--all", "-o", str(tmp_path / "exports"))
    assert refused.exit_code != 0
    printed.append(refused.output)
    assert plural(n, "file already exists", "files already exist") in refused.output

    # backup create / verify / restore, with exactly n session files in the store
    for path in [*store.files(), *store.files(archived=True)]:
        path.unlink()
    for link in store.session_dir.glob("*.json"):
        link.unlink()
    for i in range(n):
        write_session(store.session_dir, make_document(f"keep{i}"))
    out = run("backup", "create")
    assert f"Backed up {plural(n, 'file')}" in out
    (archive,) = (taurus_home / "backups").glob("*.tar.gz")
    out = run("backup", "verify", str(archive))
    assert plural(n, "file") + "," in out
    for path in store.files():
        path.unlink()
    out = run("backup", "restore", str(archive))
    assert f"Restored {plural(n, 'file')}" in out

    # the doctor: n damaged files, found and then repaired (no index: it would add a note)
    for index in taurus_home.glob("index.sqlite*"):
        index.unlink()
    for path in store.files():
        path.write_bytes(path.read_bytes()[:-30])
    out = run("doctor", code=1)
    assert f"Checked {plural(n, 'session file')}" in out
    assert f"Found {plural(n, 'problem')} ({plural(n, 'error')})" in out
    out = run("doctor", "--fix")
    assert f"Repaired {n} of {plural(n, 'problem')}" in out

    log = taurus_home / "logs" / "taurus-ops.log"
    if log.exists():
        printed.append(log.read_text())
    everything = "\n".join(printed)
    assert not bad_counts(everything), bad_counts(everything)


def test_stale_index_and_damaged_counts(ops, store, taurus_home: Path, monkeypatch) -> None:
    from taurus_ops.store.index import build

    # files cut short in place are seen by a full look: every refresh makes one here
    monkeypatch.setattr(build, "TRUST_SECONDS", 0.0)
    for n in (1, 2):
        for path in store.files():
            path.unlink()
        paths = [write_session(store.session_dir, make_document(f"s{n}{i}")) for i in range(n)]
        assert ops("index", "rebuild").exit_code == 0
        later = time.time() + 10
        for path in paths:
            path.write_bytes(path.read_bytes()[:-5])
            os.utime(path, (later, later))
        status = ops("index", "status").output
        assert f"{plural(n, 'file')} changed" in status
        stats = ops("stats").output
        assert f"{plural(n, 'damaged file')}" in stats
        assert not bad_counts(status + stats), bad_counts(status + stats)
