"""The session file format, atomic saves, locks, references and listing."""

from taurus_ops.store.atomic import atomic_write, ensure_dir
from taurus_ops.store.lock import SessionLock, is_locked
from taurus_ops.store.mend import dangling_tool_uses, mend_tool_uses
from taurus_ops.store.refs import SessionRef
from taurus_ops.store.session import Session, parse_session
from taurus_ops.store.store import SessionStore
from taurus_ops.store.summary import SessionSummary

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
