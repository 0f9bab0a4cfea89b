"""A session's family: the sessions it was forked or compacted from, and those made from it.

The links are the ``parentSession`` (and ``forkedAt``) fields of the session files,
read from summaries (the index's or the files'). A session with ``forkedAt`` is a
fork of its parent keeping that many messages; one without is a ``/compact``
successor (it continues from a summary of its parent). A parent that is gone leaves
its children as roots; a loop made by hand is cut where it closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from taurus_ops.store import format as fmt
from taurus_ops.store.summary import SessionSummary
from taurus_ops.words import plural


@dataclass
class Node:
    summary: SessionSummary
    children: list[Node] = field(default_factory=list)
    orphan: bool = False  # its parent is named but not found

    @property
    def relation(self) -> str:
        """How it came from its parent: ``fork @N``, ``compacted`` or ``""`` for a root."""
        if self.summary.parent is None:
            return ""
        if self.summary.forked_at is not None:
            return f"fork @{self.summary.forked_at}"
        return "compacted"

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def _created(summary: SessionSummary) -> datetime:
    return (
        fmt.parse_time(summary.created)
        or fmt.parse_time(summary.updated)
        or datetime.min.replace(tzinfo=UTC)
    )


def build(summaries: Iterable[SessionSummary]) -> list[Node]:
    """Every session as a tree node; returns the roots, most recently updated first.

    A tree's place among the roots is its newest member's, so a family where work goes
    on stays at the top."""
    nodes: dict[str, Node] = {}
    for summary in summaries:
        nodes.setdefault(summary.id, Node(summary))
    roots = []
    for node in nodes.values():
        parent_id = node.summary.parent
        parent = nodes.get(parent_id) if parent_id else None
        if parent is not None and not _is_ancestor(node, parent, nodes):
            parent.children.append(node)
        else:
            node.orphan = parent_id is not None and parent is None
            roots.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: _created(n.summary))
    newest = {id(root): max(n.summary.sort_key() for n in root.walk()) for root in roots}
    roots.sort(key=lambda r: newest[id(r)], reverse=True)
    return roots


def _is_ancestor(node: Node, candidate: Node, nodes: dict[str, Node]) -> bool:
    """True if ``node`` is ``candidate`` or one of its ancestors (a loop)."""
    seen = set()
    current: Node | None = candidate
    while current is not None and current.summary.id not in seen:
        if current is node:
            return True
        seen.add(current.summary.id)
        parent = current.summary.parent
        current = nodes.get(parent) if parent else None
    return False


def family_of(summaries: Iterable[SessionSummary], session_id: str) -> Node | None:
    """The tree holding ``session_id`` (its root), or None if the session is not listed."""
    for root in build(summaries):
        if any(n.summary.id == session_id for n in root.walk()):
            return root
    return None


def children_of(summaries: Iterable[SessionSummary], session_id: str) -> list[SessionSummary]:
    """The sessions forked or compacted from ``session_id``, oldest first."""
    found = [s for s in summaries if s.parent == session_id and s.id != session_id]
    return sorted(found, key=_created)


def render(
    roots: list[Node],
    current: str | None = None,
    when: Callable[[str], str] | None = None,
) -> list[str]:
    """The trees as text, one session a line, children indented under their parent."""
    lines: list[str] = []

    def line(node: Node, prefix: str, tail: str) -> None:
        s = node.summary
        stamp = when(s.updated) if when is not None else s.updated[:16].replace("T", " ")
        mark = "*" if s.id == current else " "
        relation = f"{node.relation}  " if node.relation else ""
        orphan = f"(parent {s.parent} not found)  " if node.orphan else ""
        names = f"[{', '.join(s.names)}]  " if s.names else ""
        title = s.title if not s.error else f"(damaged: {s.error})"
        archived = "  [archived]" if s.archived else ""
        lines.append(
            f"{mark} {prefix}{tail}{s.id}  {relation}{orphan}{stamp}  "
            f"{plural(s.messages, 'msg')}  {names}{fmt.one_line(title, 60)}{archived}"
        )

    def visit(node: Node, prefix: str, tail: str, child_prefix: str) -> None:
        line(node, prefix, tail)
        for position, child in enumerate(node.children):
            last = position == len(node.children) - 1
            visit(
                child,
                child_prefix,
                "└─ " if last else "├─ ",
                child_prefix + ("   " if last else "│  "),
            )

    for root in roots:
        visit(root, "", "", "")
    return lines
