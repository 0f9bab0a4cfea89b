"""The write journal: how a sync knows, from one small listing, that nobody wrote sessions.

Each device that writes session objects keeps ``journal/<device>.json``. Before its
first session write in a sync it sets the record to ``"writing"``; after its last, to
``"done"`` (both conditional writes, and every change gives the record a new version).
A sync lists ``journal/`` first. If every record is the version it saw before its last
full listing, none was ``"writing"`` then, and that full listing is less than a day
old, no other device has written a session since: the remote is what the sync state
says, and the sessions are not listed at all. Otherwise (a record changed, appeared,
or was mid-write) the sessions are listed in full, after the journal, so any write
that began after the journal was read changes a record again and is seen next time.

A device that died between ``"writing"`` and ``"done"`` leaves its record
``"writing"``; everyone lists in full until its next sync sets it ``"done"``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from taurus_ops.ops.sync.state import SyncState
from taurus_ops.remote import Connection
from taurus_ops.remote.base import Conflict, ObjectInfo, RemoteError
from taurus_ops.store import format as fmt

JOURNAL = "journal/"
FULL_EVERY = timedelta(days=1)  # a full listing at least this often (objects removed by hand)
WRITING, DONE = "writing", "done"


def list_journal(conn: Connection) -> dict[str, ObjectInfo]:
    out = {}
    for item in conn.remote.list(JOURNAL):
        name = item.key[len(JOURNAL) :]
        if name.endswith(".json") and "/" not in name:
            out[name[:-5]] = item
    return out


def can_skip_listing(state: SyncState, journal: dict[str, ObjectInfo]) -> bool:
    """True if no device can have written a session since the last full listing."""
    listed = fmt.parse_time(state.listed_at)
    if listed is None or datetime.now(UTC) - listed > FULL_EVERY or state.marker is None:
        return False
    seen = state.journal
    if set(seen) != set(journal):
        return False
    for name, item in journal.items():
        record = seen[name]
        if record.get("etag") != item.etag or record.get("state") != DONE:
            return False
    return True


def read_journal(
    conn: Connection, state: SyncState, journal: dict[str, ObjectInfo]
) -> dict[str, Any]:
    """Each device's record as it is now: {device: {"etag", "state"}} (read before a full listing)."""
    out: dict[str, Any] = {}
    for name, item in journal.items():
        known = state.journal.get(name)
        if known is not None and known.get("etag") == item.etag:
            out[name] = dict(known)
            continue
        found = conn.remote.get(item.key)
        record_state = WRITING  # unreadable or changed under us: assume mid-write
        if found is not None:
            try:
                data = json.loads(found.data)
                if isinstance(data, dict) and data.get("state") in (WRITING, DONE):
                    record_state = data["state"]
            except ValueError:
                pass
            out[name] = {"etag": found.etag, "state": record_state}
        # a record gone meanwhile is simply not there
    return out


def mark(conn: Connection, state: SyncState, journal: dict[str, ObjectInfo], what: str) -> None:
    """Set this device's record to ``what`` (writing or done), conditionally."""
    key = f"{JOURNAL}{conn.device}.json"
    body = json.dumps({"device": conn.device, "state": what, "at": fmt.now_iso()}).encode()
    known = state.journal.get(conn.device, {}).get("etag")  # as listed, or as last written
    listed = journal.get(conn.device)
    expected = known if known is not None else listed.etag if listed is not None else None
    for _ in range(3):
        try:
            if expected is None:
                etag = conn.remote.put_new(key, body, {})
            else:
                etag = conn.remote.put_replace(key, body, expected, {})
        except Conflict:  # another machine of the same device name, or a record we did not see
            found = conn.remote.get(key)
            expected = found.etag if found is not None else None
            continue
        state.journal[conn.device] = {"etag": etag, "state": what}
        state.dirty = True
        return
    raise RemoteError(f"remote {conn.url}: {key} kept changing; try again")


def own_unfinished(state: SyncState, journal: dict[str, ObjectInfo], device: str) -> bool:
    """This device's record is not the ``done`` version it last wrote (a sync cut off)."""
    item = journal.get(device)
    if item is None:
        return False
    known = state.journal.get(device)
    return known is None or known.get("etag") != item.etag or known.get("state") != DONE
