"""The sessions, newest first, flat or as family trees (``taurus-ops list``).

``run(ctx, ListRequest(...))`` reads the summaries (from the index where it is fresh)
and, as a list always does, says when a configured retention rule is about to remove
sessions; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.family import Node
    from taurus_ops.store.summary import SessionSummary


@dataclass(frozen=True)
class ListRequest:
    limit: int | None = None  # at most this many sessions (trees, with ``tree``)
    archived: bool = False  # the archived sessions too
    tree: bool = False  # forks and /compact successors under their parent


@dataclass
class ListResult:
    """``sessions`` (flat), or ``roots`` (with ``tree``); ``warning`` about a cleanup."""

    sessions: list[SessionSummary] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)  # id -> ids made from it
    roots: list[Node] | None = None
    warning: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.roots if self.roots is not None else self.sessions)

    def as_json(self) -> list[dict[str, Any]]:
        if self.roots is not None:
            return [_node_json(root) for root in self.roots]
        return [{**s.as_json(), "children": self.children.get(s.id, [])} for s in self.sessions]


def _node_json(node: Node) -> dict[str, Any]:
    return {**node.summary.as_json(), "children": [_node_json(c) for c in node.children]}


def run(ctx: JobContext, request: ListRequest) -> ListResult:
    result = ListResult(warning=_cleanup_warning(ctx))
    if request.tree:
        from taurus_ops.store.family import build

        roots = build(ctx.store.summaries(archived=True))
        if not request.archived:  # an archived parent stays, to hold its active children
            roots = [r for r in roots if any(not n.summary.archived for n in r.walk())]
        result.roots = roots[: request.limit] if request.limit else roots
        return result
    # from the index when it is current: then only ``limit`` rows are read
    result.sessions, result.children = ctx.store.listing(
        archived=request.archived, limit=request.limit
    )
    return result


def _cleanup_warning(ctx: JobContext) -> str | None:
    """A line warning that a configured retention rule will remove sessions, if any."""
    try:
        from taurus_ops.ops.cleanup import pending_warning
    except ImportError:
        return None
    return pending_warning(ctx.config, ctx.store)
