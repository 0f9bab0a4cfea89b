"""The sync planner, as a pure function: every combination of here, there and the last sync."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from taurus_ops.ops.sync.local import LocalEntry
from taurus_ops.ops.sync.plan import (
    BOTH,
    CONFLICT,
    DOWNLOAD,
    DOWNLOAD_NEW,
    DOWNLOADS,
    PULL,
    PUSH,
    UPLOAD,
    UPLOAD_NEW,
    UPLOADS,
    plan_sync,
)
from taurus_ops.remote.base import ObjectInfo

SHAS = ["a" * 64, "b" * 64]
ETAGS = ["e1", "e2"]


def local_entry(sid: str, sha: str, archived: bool, locked: bool) -> LocalEntry:
    return LocalEntry(
        id=sid,
        path=f"/s/2025-01-18_{sid}.json",
        file=f"2025-01-18_{sid}.json",
        archived=archived,
        names=(),
        sha256=sha,
        size=1,
        mtime_ns=1,
        ino=1,
        locked=locked,
    )


# one session: (here: None | (sha, archived, locked), there: None | etag, last sync: None | (sha, etag))
case = st.tuples(
    st.none() | st.tuples(st.sampled_from(SHAS), st.booleans(), st.booleans()),
    st.none() | st.sampled_from(ETAGS),
    st.none() | st.tuples(st.sampled_from(SHAS), st.sampled_from(ETAGS)),
)


def build(cases: list) -> tuple[dict, dict, dict, dict]:  # type: ignore[type-arg]
    local, remote, digests, etags = {}, {}, {}, {}
    for n, (here, there, last) in enumerate(cases):
        sid = f"s{n:04d}"
        if here is not None:
            local[sid] = local_entry(sid, *here)
        if there is not None:
            remote[sid] = ObjectInfo(f"sessions/{sid}.json", there, 1)
        if last is not None:
            digests[sid] = local_entry(sid, last[0], False, False).digest
            etags[sid] = last[1]
    return local, remote, digests, etags


@settings(max_examples=150, deadline=None)
@given(st.lists(case, max_size=12), st.sampled_from([BOTH, PUSH, PULL]))
def test_the_plan_follows_the_table(cases: list, direction: str) -> None:  # type: ignore[type-arg]
    local, remote, digests, etags = build(cases)
    plan = plan_sync(local, remote, digests, etags, direction)
    by_id: dict[str, list[str]] = {}
    for action in plan.actions:
        by_id.setdefault(action.id, []).append(action.kind)
    assert all(len(kinds) == 1 for kinds in by_id.values()), "one action per session"
    allowed = {BOTH: (*UPLOADS, *DOWNLOADS, CONFLICT), PUSH: UPLOADS, PULL: DOWNLOADS}[direction]
    assert all(a.kind in allowed for a in plan.actions)
    accounted = len(plan.actions) + len(plan.skipped) + plan.unchanged + plan.other_way
    assert accounted + len(plan.forget) == len(set(local) | set(remote) | set(etags))
    for sid in set(local) | set(remote):
        here, there = local.get(sid), remote.get(sid)
        kind = by_id.get(sid, [None])[0]
        changed_here = here is not None and digests.get(sid) != here.digest
        changed_there = there is not None and etags.get(sid) != there.etag
        if here is not None and there is None:
            assert kind == (UPLOAD_NEW if direction != PULL else None)
        elif here is None:
            if etags.get(sid) == there.etag:  # type: ignore[union-attr]
                assert kind is None  # deleted here: never brought back unchanged
            else:
                assert kind == (DOWNLOAD_NEW if direction != PUSH else None)
        elif not changed_here and not changed_there:
            assert kind is None
        elif changed_here and changed_there:
            assert kind == (CONFLICT if direction == BOTH else None)
        elif changed_here:
            assert kind == (UPLOAD if direction != PULL else None)
        else:
            expected = DOWNLOAD if direction != PUSH and not here.locked else None
            assert kind == expected, "a session open in a chat is never downloaded over"


def test_a_second_plan_after_recording_everything_is_empty() -> None:
    local = {f"s{n}": local_entry(f"s{n}", SHAS[n % 2], n % 3 == 0, False) for n in range(6)}
    remote = {sid: ObjectInfo(f"sessions/{sid}.json", "e1", 1) for sid in local}
    plan = plan_sync(
        local, remote, {sid: e.digest for sid, e in local.items()}, dict.fromkeys(local, "e1")
    )
    assert plan.actions == [] and plan.unchanged == 6
