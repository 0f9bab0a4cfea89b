"""Session files as the index's rows, made in batches where they are read.

A worker (or this process, for a few files) reads a batch of files and turns each into
plain row tuples for keys the writer handed out; the writer then adds a batch with one
``executemany`` a table. So nothing but tuples crosses between processes and the
writer, which SQLite allows only one of, does no work per file in Python.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.index.facts import SessionFacts, read_facts
from taurus_ops.store.index.schema import USAGE_KEYS, USAGE_KINDS, stored_path

SESSION_COLUMNS = (
    "key, path, folder, archived, size, mtime_ns, inode, id, created, updated, title, messages,"
    " tool_calls, tools, error, parent, forked_at, cwd, shown_created, shown_updated, list_us,"
    " plan_us, bad_messages"
)
BATCH = 64  # files a worker reads before handing their rows over


@dataclass
class Batch:
    """The rows of some session files, for the writer."""

    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    counts: list[tuple[int, str, str, int]] = field(default_factory=list)
    usage: list[tuple[Any, ...]] = field(default_factory=list)
    texts: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # key, head, body
    words: list[tuple[int, str]] = field(default_factory=list)  # (key, the word table's text)
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, name) -> n
    stamps: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # path -> as read
    gone: list[str] = field(default_factory=list)  # vanished before they could be read


def add(batch: Batch, key: int, folder: str, archived: bool, facts: SessionFacts) -> None:
    """One file's rows, under ``key``."""
    tools = " " + " ".join(sorted(facts.used_tools)) + " " if facts.used_tools else ""
    batch.sessions.append(
        (
            key,
            stored_path(facts.path),
            folder,
            int(archived),
            *facts.stamp,
            facts.id,
            facts.created,
            facts.updated,
            facts.title,
            facts.messages,
            facts.tool_calls,
            tools,
            facts.error,
            facts.parent,
            facts.forked_at,
            facts.cwd,
            facts.shown_created,
            facts.shown_updated,
            facts.list_us,
            facts.plan_us,
            int(facts.bad_messages),
        )
    )
    batch.stamps[facts.path] = facts.stamp
    batch.totals.update(session_totals(facts.error, facts.messages, facts.created, facts.updated))
    for kind, found in (("tool", facts.tools), ("modified", facts.modified)):
        for name, n in found.items():
            batch.counts.append((key, kind, name, n))
            batch.totals[kind, name] += n
    for model, tokens in facts.usage.items():
        batch.usage.append((key, model, *(tokens[k] for k in USAGE_KEYS)))
        for kind, usage_key in zip(USAGE_KINDS, USAGE_KEYS, strict=True):
            batch.totals[kind, model] += tokens[usage_key]
    if facts.text is not None:
        batch.texts.append((key, facts.text.head, facts.text.body))
        batch.words.append((key, facts.text.words))


def quarter(created: str, updated: str) -> str | None:
    """The quarter hour (UTC) a session counts in, for sessions per day: each local day
    is made of whole quarter hours in every time zone there is, so the day of its start
    is the session's day (None when it has no time)."""
    moment = fmt.parse_time(created or updated)
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return fmt.format_time(
        moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    )


def session_totals(
    error: str | None, messages: int, created: str, updated: str
) -> Counter[tuple[str, str]]:
    """What one session adds to its folder's totals besides its tools and tokens."""
    out: Counter[tuple[str, str]] = Counter({("sessions", ""): 1})
    if error is not None:
        out["damaged", ""] += 1
        return out
    out["messages", ""] += messages
    day = quarter(created, updated)
    if day is not None:
        out["quarter", day] += 1
    return out


def read_batch(job: tuple[list[tuple[int, str]], str, bool, int]) -> Batch:
    """The rows of the files ``(key, path)`` of one folder (its key; archived or not),
    their text compressed with the dictionary of that id (0: none)."""
    files, folder, archived, dictionary = job
    batch = Batch()
    for key, path in files:
        facts = read_facts(path, dictionary)
        if facts is None:
            batch.gone.append(path)
        else:
            add(batch, key, folder, archived, facts)
    return batch


def write(conn: sqlite3.Connection, batch: Batch) -> None:
    """Add a batch's rows (its ``totals`` are the caller's to add, for all batches at once:
    the folder's totals are few rows, each added to by most batches)."""
    conn.executemany(
        f"INSERT INTO sessions({SESSION_COLUMNS}) VALUES ({','.join('?' * 23)})", batch.sessions
    )
    conn.executemany("INSERT INTO counts(key, kind, name, n) VALUES (?,?,?,?)", batch.counts)
    conn.executemany(
        "INSERT INTO usage(key, model, input, output, cache_read, cache_creation)"
        " VALUES (?,?,?,?,?,?)",
        batch.usage,
    )
    conn.executemany("INSERT INTO texts(key, head, body) VALUES (?, ?, ?)", batch.texts)
    conn.executemany("INSERT INTO words(rowid, text) VALUES (?, ?)", batch.words)


def add_totals(conn: sqlite3.Connection, folder: str, totals: Counter[tuple[str, str]]) -> None:
    """Add to (or, with negative counts, take from) the folder's running totals; a total
    holds only what some session counts, so one that reaches zero goes."""
    changes = [(folder, kind, name, n) for (kind, name), n in totals.items() if n]
    conn.executemany(
        "INSERT INTO totals(folder, kind, name, n) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(folder, kind, name) DO UPDATE SET n = n + excluded.n",
        changes,
    )
    if any(n < 0 for *_, n in changes):
        conn.executemany(
            "DELETE FROM totals WHERE folder = ? AND kind = ? AND name = ? AND n = 0",
            [c[:3] for c in changes if c[3] < 0],
        )
