"""Who may run which tool: config lists, ``--allow`` flags, and the user's answers.

``write``, ``edit`` and ``bash`` need permission; ``read``, ``grep`` and ``glob`` do
not. ``permissions.deny`` always wins; ``permissions.allow``, ``--allow`` and the
user's "always" answers let a tool run without asking. Without a terminal (``-p``)
nothing is asked: a tool that is not allowed is refused, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

NEEDS_PERMISSION = frozenset({"write", "edit", "bash"})
ALL = "*"

Decision = Literal["allow", "deny", "ask"]
Answer = Literal["yes", "always", "no"]


@dataclass
class Verdict:
    allowed: bool
    reason: str = ""  # why a tool was refused, for the model and the user


@dataclass
class Permissions:
    allow: set[str] = field(default_factory=set)
    deny: set[str] = field(default_factory=set)
    interactive: bool = True
    session_allow: set[str] = field(default_factory=set)  # "always" answers

    @classmethod
    def build(
        cls,
        allow: Iterable[str],
        deny: Iterable[str],
        interactive: bool,
        session_allow: Iterable[str] = (),
    ) -> Permissions:
        return cls(
            {a.strip() for a in allow if a.strip()},
            {d.strip() for d in deny if d.strip()},
            interactive,
            set(session_allow),
        )

    def decide(self, tool: str) -> Decision:
        """A pure decision for ``tool``: allow, deny, or ask the user."""
        if tool in self.deny or ALL in self.deny:
            return "deny"
        if tool not in NEEDS_PERMISSION:
            return "allow"
        if tool in self.allow or ALL in self.allow or tool in self.session_allow:
            return "allow"
        return "ask" if self.interactive else "deny"

    def check(self, tool: str, ask: Callable[[], Answer] | None) -> Verdict:
        """Decide, asking through ``ask`` when needed; an "always" answer is remembered."""
        decision = self.decide(tool)
        if decision == "allow":
            return Verdict(True)
        if decision == "deny":
            if tool in self.deny or ALL in self.deny:
                return Verdict(False, f"the {tool} tool is denied by permissions.deny")
            return Verdict(
                False,
                f"the {tool} tool needs permission and nobody can be asked here; "
                f"allow it with --allow {tool} or permissions.allow",
            )
        if ask is None:
            return Verdict(False, f"the {tool} tool needs permission")
        answer = ask()
        if answer == "always":
            self.session_allow.add(tool)
            return Verdict(True)
        if answer == "yes":
            return Verdict(True)
        return Verdict(False, f"the user refused permission to run {tool}")


def parse_answer(text: str) -> Answer | None:
    """``y``/``yes`` -> yes, ``a``/``always`` -> always, ``n``/``no``/empty -> no; else None."""
    word = text.strip().lower()
    if word in ("y", "yes"):
        return "yes"
    if word in ("a", "always"):
        return "always"
    if word in ("", "n", "no"):
        return "no"
    return None


def local_identity() -> str:
    """Who and where: "always" answers saved in a session count only for the same user
    on the same machine, so a session shared by a teammate brings none of theirs."""
    import os
    import socket

    return f"{os.getuid()}@{socket.gethostname()}"


def saved_allowances(data: dict[str, Any]) -> list[str]:
    """The "always" answers stored in a session document, if they were given here."""
    allowed = data.get("allowedTools")
    if not isinstance(allowed, list) or data.get("allowedToolsBy") != local_identity():
        return []
    return [tool for tool in allowed if isinstance(tool, str)]
