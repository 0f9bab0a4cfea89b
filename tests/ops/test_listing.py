"""ops.listing.run and ops.show.run with a JobContext: the sessions flat or as family
trees, and one session's details, family and transcript, read without a terminal."""

from __future__ import annotations

from pathlib import Path

from helpers.sessions import make_document, write_session

from taurus_ops.ops import fork, listing, show
from taurus_ops.ops.context import JobContext
from taurus_ops.ops.listing import ListRequest
from taurus_ops.store.summary import SessionSummary


def family(ctx: JobContext) -> str:
    """A parent, a fork of it at message 3, and one more session; the fork's id."""
    write_session(ctx.store.session_dir, make_document("aaa111", n_turns=2))
    write_session(ctx.store.session_dir, make_document("ccc333", n_turns=1))
    return fork.run(ctx, fork.ForkRequest("aaa111@3")).made.session.id


def test_a_list_flat_or_as_trees(taurus_home: Path) -> None:
    ctx = JobContext.load()
    child = family(ctx)
    flat = listing.run(ctx, ListRequest())
    assert flat.roots is None and len(flat.sessions) == 3 and flat.warning is None
    assert flat.children == {"aaa111": [child]}
    assert {row["id"]: row["children"] for row in flat.as_json()} == {
        child: [],
        "aaa111": [child],
        "ccc333": [],
    }
    assert len(listing.run(ctx, ListRequest(limit=1)).sessions) == 1
    trees = listing.run(ctx, ListRequest(tree=True))
    assert trees.roots is not None
    (parent,) = [r for r in trees.roots if r.summary.id == "aaa111"]
    assert [c.summary.id for c in parent.children] == [child]
    assert [row["id"] for row in trees.as_json()] == [r.summary.id for r in trees.roots]
    assert not trees.empty and not flat.empty


def test_an_empty_store_lists_nothing(taurus_home: Path) -> None:
    result = listing.run(JobContext.load(), ListRequest(tree=True))
    assert result.empty and result.as_json() == []


def test_show_gives_the_document_or_every_part_of_the_view(taurus_home: Path) -> None:
    ctx = JobContext.load()
    child = family(ctx)
    document = show.run(ctx, show.ShowRequest("aaa111", document=True))
    assert document.as_json()["sessionId"] == "aaa111" and document.transcript == []
    parent = show.run(ctx, show.ShowRequest("aaa111", last=1))
    assert parent.details["id"] == "aaa111" and parent.details["names"] == []
    assert parent.family == [f"  Forks:    {child} (@3)"]
    assert len(parent.transcript) >= 1 and parent.transcript[0].startswith("[")
    forked = show.run(ctx, show.ShowRequest(child))
    assert forked.family == ["  Parent:   aaa111 (forked at message 3)"]
    assert forked.transcript[0].startswith("[1] You: ")


def summary(sid: str, parent: str | None, forked_at: int | None) -> SessionSummary:
    return SessionSummary(sid, f"/s/{sid}.json", "", "", 0, 0, "", 0, parent=parent,
                          forked_at=forked_at)  # fmt: skip


def test_family_lines_name_the_parent_the_forks_and_the_successors() -> None:
    info = {"parentSession": "root01", "forkedAt": None}
    kids = [summary("f1", "x", 3), summary("c1", "x", None), summary("f2", "x", 5)]
    assert show.family_lines(info, kids) == [
        "  Parent:   root01 (compacted into this one)",
        "  Forks:    f1 (@3), f2 (@5)",
        "  Continued: c1 (compacted)",
    ]
    assert show.family_lines({"parentSession": "root01", "forkedAt": True}, []) == [
        "  Parent:   root01 (compacted into this one)"  # a bool is no message number
    ]
    assert show.family_lines({}, []) == []
