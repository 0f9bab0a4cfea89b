"""Searching message text through the index (``taurus-ops search``).

A query is one or more terms; a term is a word or a "quoted phrase". A session
matches when every term occurs, as a substring, somewhere in its message text
(see ``taurus_ops.store.index.facts`` for what message text is), in any message. So for
one plain word the sessions found are exactly those ``grep -il WORD`` finds in
message text; with ``case_sensitive`` exactly those of ``grep -l WORD``. Matching
ignores the case of ASCII letters only (as SQLite's LIKE and grep in the C locale).

Hits are ranked by how often and how widely the terms occur (rarer terms weigh more;
a term in the first message counts extra), newest first on ties.
"""

from __future__ import annotations

import math
import re
import shlex
import string
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from taurus_ops.errors import UsageError
from taurus_ops.store import format as fmt
from taurus_ops.store.index import Index, SearchRow, exact_word

SNIPPET_WIDTH = 160
ROLES = ("user", "assistant")


# -- dates ---------------------------------------------------------------------------
_RELATIVE = re.compile(r"^(\d+)\s*([hdwm])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A --since value: ``2025-01-18``, an ISO time, ``today``, ``yesterday``, ``7d``, ``2w``, ``12h``."""
    now = now or datetime.now(UTC)
    value = text.strip().lower()
    local_midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "today":
        return local_midnight.astimezone(UTC)
    if value == "yesterday":
        return (local_midnight - timedelta(days=1)).astimezone(UTC)
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7, "m": 24 * 30}[unit] * amount
        try:
            return now - timedelta(hours=hours)
        except OverflowError:  # further back than any date: every session is newer
            raise UsageError(f"--since {text!r}: that age goes back past the year 1") from None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.fromisoformat(value).astimezone().astimezone(UTC)  # local midnight
    except ValueError:
        pass
    except OverflowError:
        raise UsageError(f"--since {text!r}: out of the range of dates") from None
    moment = fmt.parse_time(text.strip())
    if moment is None:
        raise UsageError(
            f"--since {text!r}: use a date (2025-01-18), an ISO time, today, yesterday, "
            "or an age such as 7d, 2w, 12h"
        )
    try:
        return moment.astimezone(UTC)  # 0001-01-01T00:00+01:00 has no UTC time
    except OverflowError:
        raise UsageError(f"--since {text!r}: out of the range of dates") from None


# -- queries -------------------------------------------------------------------------
def terms_of(args: tuple[str, ...] | list[str]) -> list[str]:
    """The terms of a query given as command-line arguments: an argument holding a
    space is one phrase, as if quoted."""
    return parse_terms(" ".join(_quote(arg) for arg in args))


def _quote(word: str) -> str:
    if any(c.isspace() for c in word) and not (word.startswith('"') and word.endswith('"')):
        return '"' + word.replace('"', '\\"') + '"'
    return word


def parse_terms(query: str) -> list[str]:
    """Split a query into terms: words, and "quoted phrases" kept whole."""
    try:
        terms = shlex.split(query)
    except ValueError:
        terms = query.split()
    terms = [t for t in terms if t.strip()]
    if not terms:
        raise UsageError("give something to search for")
    return terms


@dataclass
class SearchQuery:
    terms: list[str]
    role: str | None = None
    tool: str | None = None
    since: datetime | None = None
    archived: bool = False
    case_sensitive: bool = False
    limit: int | None = None
    ranked: bool = True  # off: the matching sessions in path order, unscored (``search -l``)


@dataclass
class Hit:
    id: str
    path: str
    archived: bool
    created: str
    updated: str
    title: str
    score: float
    matches: int  # messages holding a term
    message: int = 0  # index of the message the snippet comes from
    role: str = ""
    snippet: str = ""
    highlights: list[tuple[int, int]] = field(default_factory=list)
    key: int = 0  # the index row
    parent: str | None = None  # the branch: the session it was forked (or compacted) from
    forked_at: int | None = None  # where it was forked (None for a /compact successor)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["key"]
        out["parentSession"] = out.pop("parent")
        out["forkedAt"] = out.pop("forked_at")
        out["highlights"] = [list(span) for span in self.highlights]
        out["score"] = round(self.score, 4)
        return out


ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """Lower-case ASCII letters only (as SQLite's LIKE does); the length never changes."""
    return text.translate(ASCII_FOLD)


def contains(text: str, term: str, case_sensitive: bool) -> bool:
    if case_sensitive:
        return term in text
    return fold(term) in fold(text)


def search(index: Index, query: SearchQuery, refresh: bool = True) -> list[Hit]:
    """Sessions matching every term, best first (all of them unless ``query.limit``).

    With ``query.ranked`` off (``search -l``) the hits are not scored, and each
    session's text is read only until every term is found."""
    if query.role is not None and query.role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}")
    if refresh:
        index.refresh()
    for _ in range(3):
        generation = index.generation
        hits = _search(index, query)
        if index.generation == generation:  # not rebuilt (new keys) while reading
            return hits
    return hits


def files_with_matches(index: Index, query: SearchQuery) -> list[str]:
    """``search -l``: the paths of the sessions matching every term, in file-name order
    (the first ``query.limit`` of them, if given)."""
    paths = sorted(hit.path for hit in search(index, replace(query, limit=None, ranked=False)))
    return paths[: query.limit] if query.limit else paths


def _search(index: Index, query: SearchQuery) -> list[Hit]:
    since = fmt.format_time(query.since) if query.since is not None else None
    candidates = [index.term_keys(term) for term in query.terms]  # None: any session may
    if not query.ranked and query.role is None:
        return _unranked(index, query, since, candidates)
    union: set[int] | None = set()
    for found in candidates:
        union = None if union is None or found is None else union | found
    allowed = index.search_rows(query.archived, since, query.tool, union)
    if not allowed:
        return []
    total = index.count_allowed(query.archived, since, query.tool)
    # term -> session key -> the numbers of its messages holding the term
    per_term = index.term_messages(query.terms, allowed, query.case_sensitive, query.role)
    keys = set(allowed)
    for holding in per_term:
        keys &= holding.keys()
    hits = []
    for key in keys:
        row = allowed[key]
        score = 0.0
        for holding in per_term:
            numbers = holding[key]
            idf = math.log(1 + total / max(len(holding), 1))
            tf = 1 + math.log(len(numbers))
            first = 1.5 if 0 in numbers else 1.0
            score += idf * tf * first
        score /= 1 + 0.1 * math.log(1 + row.messages)
        matched = set().union(*(set(f[key]) for f in per_term))
        hits.append(_hit(row, score, len(matched), min(per_term[0][key])))
    hits.sort(key=lambda h: (-h.score, _neg_time(h.updated)))
    if query.limit is not None:
        hits = hits[: query.limit]
    return hits


def _unranked(
    index: Index, query: SearchQuery, since: str | None, candidates: list[set[int] | None]
) -> list[Hit]:
    """The sessions holding every term, in path order: each text read until all are
    found (a term the word table answers exactly needs no text read)."""
    keys: set[int] | None = None
    for found in candidates:
        if found is not None:
            keys = found if keys is None else keys & found
    unsettled = [
        term
        for term, found in zip(query.terms, candidates, strict=True)
        if found is None or query.case_sensitive or not exact_word(term)
    ]
    holding = index.holding_all(
        unsettled, keys, query.archived, since, query.tool, query.case_sensitive
    )
    hits = sorted((_hit(row, 0.0, 0, 0) for row in holding.values()), key=lambda h: h.path)
    return hits[: query.limit] if query.limit is not None else hits


def _hit(row: SearchRow, score: float, matches: int, message: int) -> Hit:
    return Hit(
        id=row.id,
        path=row.path,
        archived=row.archived,
        created=row.created,
        updated=row.updated,
        title=row.title,
        score=score,
        matches=matches,
        message=message,
        key=row.key,
        parent=row.parent,
        forked_at=row.forked_at,
    )


def _neg_time(iso: str) -> float:
    moment = fmt.parse_time(iso)
    return -moment.timestamp() if moment else 0.0


def add_snippets(index: Index, hits: list[Hit], query: SearchQuery) -> None:
    """Fill each hit's snippet: the text around the first match, terms marked."""
    for hit in hits:
        found = index.message(hit.key, hit.message)
        if found is None:
            continue
        hit.role, text = found
        hit.snippet, hit.highlights = snippet(text, query.terms, query.case_sensitive)


def _find_all(text: str, term: str, case_sensitive: bool) -> list[tuple[int, int]]:
    if not term:
        return []
    hay = text if case_sensitive else fold(text)
    needle = term if case_sensitive else fold(term)
    spans = []
    start = hay.find(needle)
    while start != -1:
        spans.append((start, start + len(needle)))
        start = hay.find(needle, start + len(needle))
    return spans


def snippet(
    text: str, terms: list[str], case_sensitive: bool = False, width: int = SNIPPET_WIDTH
) -> tuple[str, list[tuple[int, int]]]:
    """A one-line window of ``text`` around the first match and the spans of every match in it."""
    flat = fmt.printable(" ".join(text.split()))  # same length: spans stay right
    spans = sorted(s for t in terms for s in _find_all(flat, t, case_sensitive))
    first = spans[0][0] if spans else 0
    start = max(0, first - width // 3)
    if start:
        space = flat.rfind(" ", 0, start + 1)
        start = space + 1 if space != -1 and first - space < width // 2 else start
    end = min(len(flat), start + width)
    window = flat[start:end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    shift = len(prefix) - start
    marks = []
    last_end = -1
    for s, e in spans:
        if s >= start and e <= end and s >= last_end:
            marks.append((s + shift, e + shift))
            last_end = e
    return prefix + window + suffix, marks


def mark(text: str, spans: list[tuple[int, int]], before: str, after: str) -> str:
    """``text`` with each span wrapped in ``before``/``after``."""
    out = []
    last = 0
    for s, e in spans:
        out.append(text[last:s])
        out.append(before + text[s:e] + after)
        last = e
    out.append(text[last:])
    return "".join(out)
