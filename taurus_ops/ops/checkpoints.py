"""``taurus-ops checkpoints``: a session's file changes and whether each content is kept.

``run(ctx, CheckpointsRequest(ref))`` reads the session's change log (each write and
edit, what the file held before and what Taurus wrote, and the rewinds) beside the
blobs in ``~/.taurus/checkpoints/<session-id>/``; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.checkpoints import Blob, Change


@dataclass(frozen=True)
class CheckpointsRequest:
    ref: str


@dataclass
class CheckpointsResult:
    session_id: str
    folder: Path | None  # None: no checkpoint store (no Taurus home)
    size: int  # bytes the session's checkpoints take
    blobs: dict[str, Blob] = field(default_factory=dict)  # sha256 -> the content kept
    changes: list[Change] = field(default_factory=list)

    def kept(self, change: Change) -> bool:
        """Both sides of ``change`` (what was there, what was written) are still kept."""
        from taurus_ops.store.checkpoints import ABSENT

        return all(s == ABSENT or s in self.blobs for s in (change.before, change.after))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.session_id,
            "folder": str(self.folder) if self.folder is not None else None,
            "bytes": self.size,
            "blobs": [
                {"sha256": b.sha, "size": b.size, "mtime": b.mtime} for b in self.blobs.values()
            ],
            "changes": [
                {
                    "message": c.message,
                    "tool": c.tool,
                    "file": c.file,
                    "realPath": c.path or None,
                    "checkpoint": c.before,
                    "written": c.after,
                    "outcome": c.outcome,
                    "timestamp": c.timestamp,
                    "rewind": c.rewind,
                    "kept": self.kept(c),
                }
                for c in self.changes
            ],
        }


def run(ctx: JobContext, request: CheckpointsRequest) -> CheckpointsResult:
    from taurus_ops.store.checkpoints import changes

    session = ctx.store.load_ref(request.ref)
    store = ctx.store.checkpoints
    if store is None:
        return CheckpointsResult(session.id, None, 0, {}, changes(session.data))
    return CheckpointsResult(
        session.id,
        store.folder(session.id),
        store.size(session.id),
        {b.sha: b for b in store.blobs(session.id)},
        changes(session.data),
    )
