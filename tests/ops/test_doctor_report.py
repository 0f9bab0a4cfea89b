"""The doctor's numbers: the summary counts exactly the items it lists, and what it repaired.

A matrix over every kind of damage (tests/helpers/damage.py, the format damage, and the
store-level problems), each with a stale index on top (a note, the item that used to be
listed but not counted), in text and in --json, scanning and fixing.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path

import pytest
from helpers.damage import DAMAGES, format_damages
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt
from taurus_ops.store.lock import lock_path

SEVERITY_TITLES = {"error": "Errors", "warning": "Warnings", "info": "Notes"}
NOUNS = {"error": "error", "warning": "warning", "info": "note"}


def _damage_file(store, kind: str) -> None:
    doc = make_document("abc123", n_turns=3)
    path = write_session(store.session_dir, doc)
    raw = path.read_bytes()
    if kind in DAMAGES:
        path.write_bytes(DAMAGES[kind](raw, random.Random(3)).data)
    else:
        path.write_bytes(fmt.dumps(format_damages(doc)[kind]))


def _store_problem(store, kind: str) -> None:
    doc = make_document("abc123", n_turns=3)
    path = write_session(store.session_dir, doc)
    raw = path.read_bytes()
    if kind == "permissions":
        os.chmod(path, 0o644)
        os.chmod(store.session_dir, 0o755)
    elif kind == "stale-lock":
        lock_path(path).write_text("999999\n")
    elif kind == "temp-file":
        temp = path.with_name(f".{path.name}.tmp-0badc0de")
        temp.write_bytes(raw[:100])
        os.utime(temp, (1, 1))
    elif kind == "duplicate-id":
        other = make_document("abc123", n_turns=1, first="Another conversation")
        write_session(store.archive_dir, other)
        copy = store.archive_dir / "2025-01-19_abc123.json"
        (store.archive_dir / "2025-01-18_abc123.json").rename(copy)
    elif kind == "names":
        os.symlink("2025-01-01_gone00.json", store.session_dir / "dangling.json")
        os.symlink("/etc/hostname", store.session_dir / "escape.json")
    elif kind == "two-sessions":
        other = make_document("zzz999", n_turns=1, first="A different conversation")
        path.write_bytes(raw + fmt.dumps(other))
    elif kind == "several-at-once":
        path.write_bytes(raw[:-50])
        os.chmod(path, 0o644)
        lock_path(path).write_text("999999\n")
        write_session(store.session_dir, make_document("def456"))
        second = store.session_dir / "2025-01-18_def456.json"
        second.write_bytes(b"\xef\xbb\xbf" + second.read_bytes())


FORMAT_KINDS = sorted(format_damages(make_document("abc123")))
STORE_KINDS = ["permissions", "stale-lock", "temp-file", "duplicate-id", "names", "two-sessions"]
KINDS = sorted(DAMAGES) + FORMAT_KINDS + STORE_KINDS + ["several-at-once"]


def _make(store, taurus_home: Path, ops, kind: str) -> None:
    store.ensure()
    # an index built first: the damage makes it stale, which the doctor lists as a note
    write_session(store.session_dir, make_document("idx001", n_turns=1))
    assert ops("index", "rebuild").exit_code == 0
    if kind in STORE_KINDS or kind == "several-at-once":
        _store_problem(store, kind)
    else:
        _damage_file(store, kind)
    later = time.time() + 30
    for path in store.session_dir.glob("*.json"):
        if not path.is_symlink():
            os.utime(path, (later, later))


def _parse_text(output: str) -> dict:
    """What the text report lists, its group headers, and the numbers its summary states."""
    lines = output.splitlines()
    items = [line for line in lines if line.startswith("      ") and line.strip()]
    headers = {
        sev: int(m.group(1))
        for sev, title in SEVERITY_TITLES.items()
        for line in lines
        if (m := re.fullmatch(rf"{title} \((\d+)\):", line))
    }
    summary = lines[-1]
    return {"items": items, "headers": headers, "summary": summary}


def _breakdown(text: str) -> dict[str, int]:
    out = {}
    for sev, noun in NOUNS.items():
        m = re.search(rf"(\d+) {noun}s?\b", text)
        if m:
            out[sev] = int(m.group(1))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_text_summary_counts_what_is_listed_and_repaired(kind, store, taurus_home, ops):
    _make(store, taurus_home, ops, kind)
    scan = ops("doctor")
    found = _parse_text(scan.output)
    assert found["items"], scan.output
    m = re.match(r"Found (\d+) problems? \(([^)]*)\)\.", found["summary"])
    assert m, found["summary"]
    assert int(m.group(1)) == len(found["items"]) == sum(found["headers"].values())
    assert _breakdown(m.group(2)) == found["headers"]
    assert "note" in m.group(2)  # the stale index is counted, not only listed

    dry = _parse_text(ops("doctor", "--fix", "--dry-run").output)
    assert len(dry["items"]) == len(found["items"])

    fixed = ops("doctor", "--fix")
    done = _parse_text(fixed.output)
    m = re.match(r"Repaired (\d+) of (\d+) problems?", done["summary"])
    assert m, done["summary"]
    repaired = [line for line in done["items"] if line.strip().startswith("fixed:")]
    assert int(m.group(2)) == len(done["items"]) == len(found["items"])
    assert int(m.group(1)) == len(repaired)
    if fixed.exit_code == 0:
        assert "the store is healthy" in done["summary"]
        not_fixed = len(done["items"]) - len(repaired)
        if not_fixed:  # only notes may stay unrepaired in a healthy store
            assert f"{not_fixed} not repaired" in done["summary"]
            assert set(_breakdown(done["summary"].split("not repaired")[1])) == {"info"}
    else:
        assert f"{len(done['items']) - len(repaired)} not repaired" in done["summary"]


@pytest.mark.parametrize("kind", KINDS)
def test_json_counts_what_is_listed_and_repaired(kind, store, taurus_home, ops):
    _make(store, taurus_home, ops, kind)
    text = _parse_text(ops("doctor").output)
    scan = json.loads(ops("doctor", "--json").output)
    assert scan["found"] == len(scan["problems"]) == sum(scan["counts"].values())
    assert scan["found"] == len(text["items"])
    by_severity = {s: sum(1 for p in scan["problems"] if p["severity"] == s) for s in NOUNS}
    assert scan["counts"] == by_severity
    assert {k: v for k, v in by_severity.items() if v} == text["headers"]
    assert scan["fixed"] == 0
    assert scan["remaining"] == sum(1 for p in scan["problems"] if p["severity"] != "info")

    fixed = json.loads(ops("doctor", "--fix", "--json").output)
    assert fixed["found"] == len(fixed["problems"]) == scan["found"]
    assert fixed["fixed"] == sum(1 for p in fixed["problems"] if p["status"] == "fixed")
    assert fixed["remaining"] == sum(
        1 for p in fixed["problems"] if p["severity"] != "info" and p["status"] != "fixed"
    )
    assert fixed["healthy"] == (fixed["remaining"] == 0) == (fixed["exitStatus"] == 0)
    again = json.loads(ops("doctor", "--json").output)
    assert again["healthy"] and again["found"] == len(again["problems"])
