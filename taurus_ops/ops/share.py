"""``taurus-ops share``: one session into the team area of the remote (``PREFIX/shared/``).

The session goes up as ``shared/<id>.json`` (the same object format as sync, encrypted
when the remote is), optionally through the export redaction first. A teammate then
runs ``taurus chat --session <id>`` (or ``taurus-ops show <id>``): not found on their
machine, it is downloaded from the shared area (see ``taurus_ops.remote.shared``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.redact import Redaction, redact
from taurus_ops.remote import SHARED, connect
from taurus_ops.remote.base import Conflict, RemoteError
from taurus_ops.remote.codec import BadObject, Meta, decode, encode, keyed, sha256_of
from taurus_ops.store import format as fmt

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext


@dataclass(frozen=True)
class ShareRequest:
    ref: str
    redact: bool = False  # mask secrets first, as ``export --redact`` does


@dataclass
class ShareResult:
    id: str
    url: str  # where it now is
    redaction: Redaction | None
    unchanged: bool  # the same bytes were already shared

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "unchanged": self.unchanged,
            "redacted": self.redaction.total if self.redaction is not None else None,
        }


def run(ctx: JobContext, request: ShareRequest) -> ShareResult:
    """Put one session (redacted first if asked) in the team area; the same bytes already
    there are left as they are."""
    config, store, ref = ctx.config, ctx.store, request.ref
    found = store.resolve(ref)
    body = found.path.read_bytes()
    redaction = None
    if request.redact:
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
                        return ShareResult(found.session_id, where, redaction, True)
                    conn.remote.put_replace(key, data, existing.etag, metadata)
            except Conflict:
                continue  # shared from elsewhere at the same moment: look again
            return ShareResult(found.session_id, where, redaction, False)
    raise RemoteError(f"remote {conn.url}: {key} kept changing while sharing; try again")
