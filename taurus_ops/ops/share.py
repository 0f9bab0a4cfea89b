"""``taurus-ops share``: one session into the team area of the remote (``PREFIX/shared/``).

The session goes up as ``shared/<id>.json`` (the same object format as sync, encrypted
when the remote is), optionally through the export redaction first. A teammate then
runs ``taurus chat --session <id>`` (or ``taurus-ops show <id>``): not found on their
machine, it is downloaded from the shared area (see ``taurus_ops.remote.shared``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taurus_ops.ops.redact import Redaction, redact
from taurus_ops.remote import SHARED, connect
from taurus_ops.remote.base import Conflict, RemoteError
from taurus_ops.remote.codec import BadObject, Meta, decode, encode, keyed, sha256_of
from taurus_ops.store import format as fmt


@dataclass
class Shared:
    id: str
    url: str  # where it now is
    redaction: Redaction | None
    unchanged: bool  # the same bytes were already shared


def share_session(config: Any, store: Any, ref: str, redact_secrets: bool = False) -> Shared:
    found = store.resolve(ref)
    body = found.path.read_bytes()
    redaction = None
    if redact_secrets:
        session = store.load(found.path, found.archived)
        redaction = Redaction()
        body = fmt.dumps(redact(session.data, redaction))
    with connect(config) as conn:
        conn.ensure_marker()
        meta = Meta(file=found.path.name, sha256=sha256_of(body), device=conn.device)
        data = encode(meta, body, conn.key)
        metadata = {"sha256": keyed(meta.sha256, conn.key), "device": conn.device}
        key = f"{SHARED}{found.session_id}.json"
        where = f"{conn.url}/{key}"
        for _ in range(4):
            existing = conn.remote.get(key)
            try:
                if existing is None:
                    conn.remote.put_new(key, data, metadata)
                else:
                    try:
                        theirs, _body = decode(existing.data, conn.key, where)
                    except BadObject:
                        theirs = None
                    if theirs is not None and theirs.sha256 == meta.sha256:
                        return Shared(found.session_id, where, redaction, True)
                    conn.remote.put_replace(key, data, existing.etag, metadata)
            except Conflict:
                continue  # shared from elsewhere at the same moment: look again
            return Shared(found.session_id, where, redaction, False)
    raise RemoteError(f"remote {conn.url}: {key} kept changing while sharing; try again")
