"""ops.fork.run and ops.checkpoints.run with a JobContext."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.errors import InvalidReference, UsageError
from taurus_ops.ops import checkpoints, fork
from taurus_ops.ops.checkpoints import CheckpointsRequest
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.fork import ForkRequest
from taurus_ops.store.checkpoints import ABSENT


def test_a_fork_is_named_and_a_taken_name_is_refused_before_anything_is_made(
    taurus_home: Path,
) -> None:
    ctx = JobContext.load()
    write_session(ctx.store.session_dir, make_document("aaa111", n_turns=2))
    made = fork.run(ctx, ForkRequest("aaa111", name="v2"))
    assert made.link == ctx.store.session_dir / "v2.json"
    assert os.path.realpath(made.link) == str(made.made.session.path)
    assert made.as_json()["parentSession"] == "aaa111" and made.as_json()["name"] == "v2"
    assert made.describe().startswith("Forked aaa111 at message ")
    before = sorted(os.listdir(ctx.store.session_dir))
    for taken in ("v2", "aaa111"):  # a name, or an id
        with pytest.raises(UsageError, match="already a name or an id"):
            fork.run(ctx, ForkRequest("aaa111", name=taken))
    with pytest.raises(InvalidReference):
        fork.run(ctx, ForkRequest("aaa111", name="../out"))
    assert sorted(os.listdir(ctx.store.session_dir)) == before


def test_checkpoints_say_which_contents_are_kept(taurus_home: Path) -> None:
    ctx = JobContext.load()
    doc = make_document("aaa111", n_turns=1)
    store = ctx.store.checkpoints
    assert store is not None
    kept, _ = store.save("aaa111", b"before\n")
    gone = "f" * 64  # named by the session, not in the store
    doc["toolCalls"] = [
        {"tool": "write", "file": "a.txt", "checkpoint": kept, "written": ABSENT},
        {"tool": "edit", "file": "b.txt", "checkpoint": kept, "written": gone},
    ]
    write_session(ctx.store.session_dir, doc)
    result = checkpoints.run(ctx, CheckpointsRequest("aaa111"))
    assert result.session_id == "aaa111" and list(result.blobs) == [kept]
    assert result.folder == store.folder("aaa111") and result.size == len(b"before\n")
    assert [(c.file, result.kept(c)) for c in result.changes] == [("a.txt", True), ("b.txt", False)]
    assert [c["kept"] for c in result.as_json()["changes"]] == [True, False]
