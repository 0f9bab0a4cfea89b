"""The session file format, atomic saves, locks, references and listing.

The names below are loaded on first use: a command that only reads the index
(``taurus-ops search -l``) loads none of the session store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "Session": "session",
    "SessionLock": "lock",
    "SessionRef": "refs",
    "SessionStore": "store",
    "SessionSummary": "summary",
    "atomic_write": "atomic",
    "dangling_tool_uses": "mend",
    "ensure_dir": "atomic",
    "is_locked": "lock",
    "mend_tool_uses": "mend",
    "parse_session": "session",
}

__all__ = [
    "Session",
    "SessionLock",
    "SessionRef",
    "SessionStore",
    "SessionSummary",
    "atomic_write",
    "dangling_tool_uses",
    "ensure_dir",
    "is_locked",
    "mend_tool_uses",
    "parse_session",
]

if TYPE_CHECKING:
    from taurus_ops.store.atomic import atomic_write, ensure_dir
    from taurus_ops.store.lock import SessionLock, is_locked
    from taurus_ops.store.mend import dangling_tool_uses, mend_tool_uses
    from taurus_ops.store.refs import SessionRef
    from taurus_ops.store.session import Session, parse_session
    from taurus_ops.store.store import SessionStore
    from taurus_ops.store.summary import SessionSummary


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
