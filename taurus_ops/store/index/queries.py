"""The index's answers, as typed rows: every SELECT the readers need lives here.

Each function takes an open connection and the folder keys to keep to; ``Index``
wraps them (rebuilding a damaged index first) for ``search``, ``stats``, ``list``,
cleanup, the picker and the web viewer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from taurus_ops.store.index.schema import USAGE_KEYS, USAGE_KINDS, disk_path
from taurus_ops.store.index.text import any_of, matching_words, phrase_query, term_words

if TYPE_CHECKING:  # the list's rows: loaded by the list, not by a search
    from taurus_ops.store.summary import SessionSummary

_KIND_KEY = dict(zip(USAGE_KINDS, USAGE_KEYS, strict=True))


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values))


@dataclass
class IndexedSession:
    """One row of the index, as the readers see it."""

    key: int
    path: str
    archived: bool
    size: int
    mtime_ns: int
    id: str
    created: str
    updated: str
    title: str
    messages: int
    tool_calls: int
    error: str | None


@dataclass
class ListedSession(IndexedSession):
    """One session as a listing shows it: its index columns and its token counts by model."""

    tools: frozenset[str]  # toolCalls and tool_use names
    cwd: str
    parent: str
    usage: dict[str, dict[str, int]]  # model -> token counts


@dataclass
class SearchRow:
    """A session search may return: what a hit shows."""

    key: int
    id: str
    path: str
    archived: bool
    created: str
    updated: str
    title: str
    messages: int
    parent: str | None
    forked_at: int | None


class PlanRow(NamedTuple):
    """What cleanup's planner needs of an indexed file (its stamp says whether it is current;
    a tuple: a folder's 100,000 of them are made in one go)."""

    stamp: tuple[int, int, int]  # (size, mtime_ns, inode)
    updated_us: int | None  # the session's own ``updated`` (None: the file's mtime stands)
    error: str | None  # why it is not a session at all
    bad_messages: bool


@dataclass
class Aggregate:
    """The statistics of one folder's indexed sessions (``ops.stats`` words them)."""

    total: int = 0
    damaged: int = 0
    this_week: int = 0
    messages: int = 0  # summed over readable sessions
    readable: int = 0
    tools: dict[str, int] = field(default_factory=dict)
    modified: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)  # local day -> sessions


@dataclass
class Child:
    """A session made from another (a fork or a /compact successor), for a listing."""

    id: str
    parent: str
    shown_created: str
    shown_updated: str
    list_us: int
    path: str


# -- rows -------------------------------------------------------------------------------------
_INDEXED = (
    "key, path, archived, size, mtime_ns, id, created, updated, title, messages, tool_calls, error"
)


def _indexed(r: tuple[Any, ...]) -> dict[str, Any]:
    """The fields of an ``IndexedSession`` from a row that starts with the ``_INDEXED`` columns."""
    return {
        "key": r[0],
        "path": disk_path(r[1]),
        "archived": bool(r[2]),
        "size": r[3],
        "mtime_ns": r[4],
        "id": r[5],
        "created": r[6],
        "updated": r[7],
        "title": r[8],
        "messages": r[9],
        "tool_calls": r[10],
        "error": r[11],
    }


def rows(conn: sqlite3.Connection, folders: list[str]) -> list[IndexedSession]:
    return [
        IndexedSession(**_indexed(r))
        for r in conn.execute(
            f"SELECT {_INDEXED} FROM sessions WHERE folder IN ({_marks(folders)})", folders
        )
    ]


def listing(conn: sqlite3.Connection, folders: list[str]) -> list[ListedSession]:
    usage: dict[int, dict[str, dict[str, int]]] = {}
    for key, model, *counts in conn.execute(
        "SELECT u.key, u.model, u.input, u.output, u.cache_read, u.cache_creation"
        f" FROM usage u JOIN sessions s ON s.key = u.key WHERE s.folder IN ({_marks(folders)})",
        folders,
    ):
        usage.setdefault(key, {})[model] = {
            k: int(c or 0) for k, c in zip(USAGE_KEYS, counts, strict=True)
        }
    return [
        ListedSession(
            **_indexed(r),
            tools=frozenset(r[12].split()),
            cwd=r[13] or "",
            parent=r[14] or "",
            usage=usage.get(r[0], {}),
        )
        for r in conn.execute(
            f"SELECT {_INDEXED}, tools, cwd, parent FROM sessions"
            f" WHERE folder IN ({_marks(folders)})",
            folders,
        )
    ]


@dataclass
class RecentSession:
    """One session as the resume picker lists it (newest ``updated`` first)."""

    key: int
    id: str
    path: str
    updated: str
    title: str
    messages: int
    parent: str | None
    forked_at: int | None
    cwd: str | None
    error: str | None


def recent(conn: sqlite3.Connection, folder: str) -> list[RecentSession]:
    return [
        RecentSession(r[0], r[1], disk_path(r[2]), *r[3:])
        for r in conn.execute(
            "SELECT key, id, path, updated, title, messages, parent, forked_at, cwd, error"
            " FROM sessions WHERE folder = ? ORDER BY updated DESC",
            [folder],
        )
    ]


_SUMMARY = (
    "id, path, shown_created, shown_updated, messages, tool_calls, title, size, archived,"
    " error, parent, forked_at, cwd"
)


def _summary(r: tuple[Any, ...], summary: type[SessionSummary]) -> SessionSummary:
    return summary(
        id=r[0],
        path=disk_path(r[1]),
        created=r[2],
        updated=r[3],
        messages=r[4],
        tool_calls=r[5],
        title=r[6],
        size=r[7],
        archived=bool(r[8]),
        error=r[9],
        parent=r[10],
        forked_at=r[11],
        cwd=r[12],
    )


def summaries(
    conn: sqlite3.Connection, folders: list[str], limit: int | None = None
) -> list[SessionSummary]:
    """What ``summarize()`` made of each file, in list order (newest ``updated`` first,
    ties by stored path, descending), at most ``limit`` of them: each folder's first
    ``limit`` along its index, merged."""
    found: list[tuple[Any, ...]] = []
    for folder in folders:
        sql = (
            f"SELECT list_us, path, {_SUMMARY} FROM sessions INDEXED BY sessions_order"
            " WHERE folder = ? ORDER BY list_us DESC, path DESC"
        )
        params: list[Any] = [folder]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        found += conn.execute(sql, params)
    found.sort(key=lambda r: (r[0], r[1]), reverse=True)
    if limit is not None:
        found = found[:limit]
    from taurus_ops.store.summary import SessionSummary

    return [_summary(r[2:], SessionSummary) for r in found]


def children(conn: sqlite3.Connection, folders: list[str], parents: list[str]) -> list[Child]:
    """The sessions whose parent is one of ``parents``, in list order."""
    if not parents:
        return []
    return [
        Child(r[0], r[1], r[2], r[3], r[4], disk_path(r[5]))
        for r in conn.execute(
            "SELECT id, parent, shown_created, shown_updated, list_us, path"
            " FROM sessions INDEXED BY sessions_parent"
            " WHERE parent IS NOT NULL AND parent IN (SELECT value FROM json_each(?))"
            f" AND folder IN ({_marks(folders)}) ORDER BY list_us DESC, path DESC",
            [_json_list(parents), *folders],
        )
    ]


# -- search ------------------------------------------------------------------------------------
def _filters(
    folders: list[str], since: str | None, tool: str | None
) -> tuple[list[str], list[Any]]:
    where = [f"folder IN ({_marks(folders)})", "error IS NULL"]
    params: list[Any] = list(folders)
    if since is not None:
        where.append("updated >= ?")
        params.append(since)
    if tool:
        where.append("instr(tools, ?) > 0")
        params.append(f" {tool} ")
    return where, params


_SEARCH_ROW = (
    "s.key, s.id, s.path, s.archived, s.created, s.updated, s.title, s.messages, s.parent,"
    " s.forked_at"
)


def _search_row(r: tuple[Any, ...]) -> SearchRow:
    return SearchRow(r[0], r[1], disk_path(r[2]), bool(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])


def _search_source(
    folders: list[str], since: str | None, tool: str | None, keys: set[int] | None, join: str = ""
) -> tuple[str, list[Any]]:
    """FROM (with ``join``) and WHERE of the readable sessions (among ``keys``) the
    filters allow."""
    where, params = _filters(folders, since, tool)
    source = "sessions AS s"
    if keys is not None:  # a few: looked up by key, not found by walking the folder
        source = "json_each(?) AS wanted CROSS JOIN sessions AS s ON s.key = wanted.value"
        params.insert(0, _json_list(keys))
    return f"{source}{join} WHERE {' AND '.join(where)}", params


def search_rows(
    conn: sqlite3.Connection,
    folders: list[str],
    since: str | None,
    tool: str | None,
    keys: set[int] | None = None,
) -> dict[int, SearchRow]:
    """key -> row of the readable sessions (among ``keys``) updated since ``since`` that
    used ``tool``."""
    if keys is not None and not keys:
        return {}
    source, params = _search_source(folders, since, tool, keys)
    return {
        r[0]: _search_row(r) for r in conn.execute(f"SELECT {_SEARCH_ROW} FROM {source}", params)
    }


def search_rows_with_head(
    conn: sqlite3.Connection,
    folders: list[str],
    since: str | None,
    tool: str | None,
    keys: set[int] | None = None,
) -> Iterator[tuple[SearchRow, bytes]]:
    """``search_rows`` with the first bytes of each session's text (``texts.head``)."""
    if keys is not None and not keys:
        return
    source, params = _search_source(folders, since, tool, keys, " JOIN texts AS t ON t.key = s.key")
    for r in conn.execute(f"SELECT {_SEARCH_ROW}, t.head FROM {source}", params):
        yield _search_row(r), r[10]


def count_allowed(
    conn: sqlite3.Connection, folders: list[str], since: str | None, tool: str | None
) -> int:
    """How many sessions ``search_rows`` allows (from the running totals when it can)."""
    if since is None and not tool:
        counts = dict.fromkeys(("sessions", "damaged"), 0)
        for kind, n in conn.execute(
            f"SELECT kind, sum(n) FROM totals WHERE folder IN ({_marks(folders)})"
            " AND kind IN ('sessions', 'damaged') AND name = '' GROUP BY kind",
            folders,
        ):
            counts[kind] = n
        return counts["sessions"] - counts["damaged"]
    where, params = _filters(folders, since, tool)
    count: int = conn.execute(
        f"SELECT count(*) FROM sessions WHERE {' AND '.join(where)}", params
    ).fetchone()[0]
    return count


def vocabulary(conn: sqlite3.Connection) -> bytes:
    """Every word of the word table, as ``text.matching_words`` looks in it."""
    return b"".join(r[0] for r in conn.execute("SELECT words FROM vocab ORDER BY n"))


def word_keys(conn: sqlite3.Connection, term: str, vocab: bytes | None = None) -> set[int] | None:
    """The sessions that may hold ``term``: its words one right after another (a
    phrase), or else, for each of its words, a word of the vocabulary that holds it
    there (see ``text``); None: any may."""
    words = term_words(term)
    if not words:
        return None
    if vocab is None:
        vocab = vocabulary(conn)
    phrase = phrase_query(vocab, words)
    if phrase is not None:
        if not phrase:
            return set()
        return {
            r[0] for r in conn.execute("SELECT rowid FROM words WHERE words MATCH ?", (phrase,))
        }
    keys: set[int] | None = None
    for part, how in sorted(words, key=lambda w: w[1] != "whole"):  # the narrowest first
        found = matching_words(vocab, part, how)
        if found is None:
            continue
        if not found:
            return set()
        rows = conn.execute("SELECT rowid FROM words WHERE words MATCH ?", (any_of(found),))
        held = {r[0] for r in rows}
        keys = held if keys is None else keys & held
        if not keys:
            return set()
    return keys


def bodies(conn: sqlite3.Connection, keys: set[int] | None) -> Iterator[tuple[int, bytes]]:
    """(key, stored text) of the sessions ``keys`` (all with text when None)."""
    if keys is None:
        yield from conn.execute("SELECT key, body FROM texts")
        return
    if not keys:
        return
    yield from conn.execute(
        "SELECT key, body FROM texts WHERE key IN (SELECT value FROM json_each(?))",
        (_json_list(keys),),
    )


def body(conn: sqlite3.Connection, key: int) -> bytes | None:
    row = conn.execute("SELECT body FROM texts WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


# -- statistics --------------------------------------------------------------------------------
def aggregate(conn: sqlite3.Connection, folder: str, since: str | None, week_ns: int) -> Aggregate:
    """The figures of ``stats`` for one folder (sessions updated since ``since``)."""
    out = Aggregate()
    (out.this_week,) = conn.execute(
        "SELECT count(*) FROM sessions WHERE folder = ? AND mtime_ns > ?"
        + (" AND updated >= ?" if since is not None else ""),
        [folder, week_ns] + ([since] if since is not None else []),
    ).fetchone()
    if since is None:  # the whole folder: its running totals
        _totals(conn, folder, out)
        return out
    where = "folder = ? AND updated >= ?"
    params: list[Any] = [folder, since]
    out.total, out.damaged, out.messages = conn.execute(
        "SELECT count(*), count(error), coalesce(sum(CASE WHEN error IS NULL THEN messages END), 0)"
        f" FROM sessions WHERE {where}",
        params,
    ).fetchone()
    out.readable = out.total - out.damaged
    _totals_since(conn, f"SELECT key FROM sessions WHERE {where} AND error IS NULL", params, out)
    for day, count in conn.execute(
        "SELECT date(CASE WHEN created != '' THEN created ELSE updated END, 'localtime') AS d,"
        f" count(*) FROM sessions WHERE {where} AND error IS NULL GROUP BY d",
        params,
    ):
        if day:
            out.per_day[day] = out.per_day.get(day, 0) + count
    return out


def _totals(conn: sqlite3.Connection, folder: str, out: Aggregate) -> None:
    for kind, name, n in conn.execute(
        "SELECT kind, name, n FROM totals WHERE folder = ? AND kind != 'quarter' AND n != 0"
        " ORDER BY kind, name",
        (folder,),
    ):
        if kind == "tool":
            out.tools[name] = n
        elif kind == "modified":
            out.modified[name] = n
        elif kind in _KIND_KEY:
            out.tokens.setdefault(name, dict.fromkeys(USAGE_KEYS, 0))[_KIND_KEY[kind]] = n
        elif kind == "sessions":
            out.total = n
        elif kind == "damaged":
            out.damaged = n
        elif kind == "messages":
            out.messages = n
    out.readable = out.total - out.damaged
    out.tokens = dict(sorted(out.tokens.items()))
    for day, count in conn.execute(
        "SELECT date(name, 'localtime') AS d, sum(n) FROM totals"
        " WHERE folder = ? AND kind = 'quarter' GROUP BY d",
        (folder,),
    ):
        if day:
            out.per_day[day] = count


def _totals_since(conn: sqlite3.Connection, keys: str, params: list[Any], out: Aggregate) -> None:
    for kind, name, n in conn.execute(
        f"SELECT kind, name, sum(n) FROM counts WHERE key IN ({keys}) GROUP BY kind, name",
        params,
    ):
        (out.tools if kind == "tool" else out.modified)[name] = int(n)
    for model, *counts in conn.execute(
        "SELECT model, sum(input), sum(output), sum(cache_read), sum(cache_creation)"
        f" FROM usage WHERE key IN ({keys}) GROUP BY model",
        params,
    ):
        out.tokens[model] = {k: int(c or 0) for k, c in zip(USAGE_KEYS, counts, strict=True)}


# -- cleanup -----------------------------------------------------------------------------------
def plan_rows(conn: sqlite3.Connection, folder: str) -> dict[str, PlanRow]:
    """path -> what cleanup plans with, for every indexed file of one folder."""
    return {
        disk_path(r[0]): PlanRow((r[1], r[2], r[3]), r[4], r[5], bool(r[6]))
        for r in conn.execute(
            "SELECT path, size, mtime_ns, inode, plan_us, error, bad_messages FROM sessions"
            " WHERE folder = ?",
            (folder,),
        )
    }
