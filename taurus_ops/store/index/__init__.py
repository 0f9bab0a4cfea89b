"""The session index: an SQLite cache of every session's metadata and message text.

The files are the truth; the index is a cache under the Taurus home
(``~/.taurus/index.sqlite``, 0600) that ``search``, ``stats``, ``list``, cleanup's
planner, the picker and the web viewer read. Each use refreshes it incrementally
(``build``): a file whose (path, size, mtime, inode) changed is read again, a new
file is added, a removed one dropped; a folder whose own stamp has not moved since a
recent full look is not looked into at all. A missing index is built (in worker
processes when there are many files); a damaged one (not a database, corrupt pages,
an old schema) is deleted and rebuilt, so no command ever fails because of it. One
index serves every session directory Taurus is pointed at: rows are keyed by
absolute path and queries keep to the directories of the current configuration.

Modules: ``schema`` (tables, version, stored paths), ``facts`` (what one file gives,
parsed once), ``text`` (the compressed message text and finding terms in it),
``build`` (the refresh), ``queries`` (every SELECT, as typed rows) and ``core``
(``Index``, the connection and the answers). The tables are known to these modules
only.

Public API::

    index = Index(config)        # or Index.for_dirs(home, session_dir, archive_dir)
    index.refresh()              # bring it up to date with the files; returns a RefreshReport
    index.summaries(limit=10)    # what list shows, newest first
    index.search_rows(...), index.term_messages(...), index.holding_all(...)   # search
    index.aggregate(since, week_ns)   # stats
    index.plan_rows()            # cleanup's planner
    index.check() -> list[str]   # problems: [] when consistent (or when there is no index)
    index.rebuild()              # delete and build again from the files
    index.status() -> dict       # path, size, sessions, messages, stale entries
"""

from taurus_ops.store.index.build import RefreshReport
from taurus_ops.store.index.core import Index, IndexProblem, Places
from taurus_ops.store.index.queries import (
    Aggregate,
    Child,
    IndexedSession,
    ListedSession,
    PlanRow,
    SearchRow,
)
from taurus_ops.store.index.schema import (
    INDEX_NAME,
    SCHEMA_VERSION,
    USAGE_KEYS,
    IndexBusy,
    IndexFailure,
    disk_path,
    stored_path,
)
from taurus_ops.store.index.text import exact_word

_FACTS = ("SessionFacts", "block_text", "extract", "message_text", "read_facts", "usage_by_model")


def __getattr__(name: str) -> object:
    """The reading of session files (``facts``), loaded when first asked for: a command
    that only reads the index never needs it."""
    if name in _FACTS:
        from taurus_ops.store.index import facts

        return getattr(facts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INDEX_NAME",
    "SCHEMA_VERSION",
    "USAGE_KEYS",
    "Aggregate",
    "Child",
    "Index",
    "IndexBusy",
    "IndexFailure",
    "IndexProblem",
    "IndexedSession",
    "ListedSession",
    "Places",
    "PlanRow",
    "RefreshReport",
    "SearchRow",
    "SessionFacts",
    "block_text",
    "disk_path",
    "exact_word",
    "extract",
    "message_text",
    "read_facts",
    "stored_path",
    "usage_by_model",
]
