"""Arbitrary bytes and random mutations: the doctor never crashes, never writes outside the
Taurus home, always leaves sessions the API accepts, and a second run finds nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from helpers.doctoring import assert_api_accepts, compare, tree
from helpers.jobs import run_doctor
from helpers.sessions import make_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.ops.doctor.salvage import salvage
from taurus_ops.store import SessionStore
from taurus_ops.store import format as fmt

DOC = make_document("abc123", n_turns=3)
RAW = fmt.dumps(DOC)
NAME = "2025-01-18_abc123.json"

SETTINGS = settings(
    max_examples=int(os.environ.get("DOCTOR_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _run(data: bytes) -> tuple[SessionStore, Path]:
    """Doctor a store holding ``data`` as one session, plus an escaping name; check the rules."""
    root = Path(tempfile.mkdtemp(prefix="doctor-fuzz-"))
    try:
        home = root / "home"
        sessions = home / "sessions"
        sessions.mkdir(parents=True, mode=0o700)
        os.chmod(home, 0o700)
        outside = root / "outside"
        outside.mkdir()
        (outside / "victim.json").write_bytes(RAW[:50])
        os.symlink(outside / "victim.json", sessions / "victim.json")
        path = sessions / NAME
        path.write_bytes(data)
        os.chmod(path, 0o600)
        store = SessionStore(sessions, home / "archive")
        before_outside = tree(outside)

        report = run_doctor(home, sessions, home / "archive", fix=True)
        assert report.exit_code == 0, report.lines()
        assert tree(outside) == before_outside  # nothing written outside the home
        assert {p.name for p in root.iterdir()} == {"home", "outside"}
        again = run_doctor(home, sessions, home / "archive")
        assert again.exit_code == 0 and not again.problems, again.lines()  # idempotent
        if path.exists():
            session = store.load(path)
            assert session.id == "abc123"
            assert_api_accepts(session.messages)
            return store, path
        # nothing to salvage: the exact bytes are in the quarantine
        kept = [p for p in (home / "quarantine").glob(f"*/{NAME}*")]
        assert kept and kept[0].read_bytes() == data
        return store, path
    finally:
        shutil.rmtree(root, ignore_errors=True)


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(data):
    _run(data)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cut", "insert", "overwrite", "delete"]),
            st.integers(0, len(RAW)),
            st.binary(min_size=1, max_size=40),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_session(edits):
    data = RAW
    for op, at, chunk in edits:
        at = min(at, len(data))
        if op == "cut":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + chunk + data[at:]
        elif op == "overwrite":
            data = data[:at] + chunk + data[at + len(chunk) :]
        else:
            data = data[:at] + data[at + len(chunk) :]
    _run(data)


@SETTINGS
@given(st.integers(1, len(RAW) - 1), st.sampled_from([b"", b"\0" * 512, b"\x07", b"\xff"]))
def test_salvage_never_invents_a_message(cut, tail):
    """Cut anywhere (and maybe a NUL tail or a bad byte): only original messages come back."""
    result = salvage(RAW[:cut] + tail)
    recovered = result.main.data.get("messages", []) if result.main else []
    assert compare(recovered, DOC["messages"])["invented"] == 0
    assert recovered == DOC["messages"][: len(recovered)]  # a prefix, exactly


_BLOCK = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.sampled_from(["", "hi"])),
    st.builds(
        lambda i: {"type": "tool_use", "id": i, "name": "read", "input": {}},
        st.sampled_from(["a", "b", "c"]),
    ),
    st.builds(
        lambda i: {"type": "tool_result", "tool_use_id": i, "content": "ok"},
        st.sampled_from(["a", "b", "c"]),
    ),
    st.just({"type": "mystery"}),
)
_MESSAGE = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant", "user", "assistant", "system"]),
    st.one_of(st.sampled_from(["", "text"]), st.lists(_BLOCK, max_size=3)),
)


@SETTINGS
@given(st.lists(_MESSAGE, max_size=6))
def test_fast_history_check_agrees_with_the_detailed_one_and_the_api(messages):
    from helpers.doctoring import assert_api_accepts

    from taurus_ops.ops.doctor.document import (
        FileContext,
        _clean_history,
        examine,
        repair_document,
    )

    ctx = FileContext.of(NAME, 0)
    doc = {"sessionId": "abc123", "created": DOC["created"], "updated": DOC["updated"]}
    clean = _clean_history(messages)
    detailed = examine({**doc, "messages": messages}, ctx)
    assert clean == (not detailed)  # the fast pass and the detailed checks agree
    if clean and messages:
        assert_api_accepts(messages)
    repaired = repair_document({**doc, "messages": messages}, ctx)
    assert _clean_history(repaired.data["messages"])  # the repair always yields a clean history
    if repaired.data["messages"]:
        assert_api_accepts(repaired.data["messages"])
