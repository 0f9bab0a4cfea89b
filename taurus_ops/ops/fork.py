"""``taurus-ops fork``: a new session from the first N messages of another.

``run(ctx, ForkRequest("abc123@12", name))`` checks the name before anything is made,
forks (``taurus_ops.store.fork``: the parent's file is not changed, its checkpoints are
shared) and names the new session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import UsageError

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.fork import Fork


@dataclass(frozen=True)
class ForkRequest:
    ref: str  # REF or REF@N: keep the first N messages (all without @N)
    name: str | None = None  # a name for the new session


@dataclass
class ForkResult:
    made: Fork
    name: str | None
    link: Path | None  # the name link made

    def describe(self) -> str:
        from taurus_ops.store.fork import describe

        return describe(self.made)

    def as_json(self) -> dict[str, Any]:
        made = self.made
        return {
            "id": made.session.id,
            "path": str(made.session.path),
            "parentSession": made.parent.id,
            "forkedAt": made.count,
            "name": self.name,
            "checkpointsLinked": made.linked,
        }


def run(ctx: JobContext, request: ForkRequest) -> ForkResult:
    from taurus_ops.store.fork import fork_session, split_ref
    from taurus_ops.store.refs import check_token

    store, name = ctx.store, request.name
    target, count = split_ref(request.ref)
    if name is not None:  # checked before anything is made
        check_token(name, "session name")
        if os.path.lexists(store.session_dir / f"{name}.json") or store.has_id(name):
            raise UsageError(f"{name!r} is already a name or an id; choose another --name")
    parent = store.load_ref(target)
    made = fork_session(store, parent, count, store.checkpoints)
    link = store.name(str(made.session.path), name) if name else None
    return ForkResult(made, name, link)
