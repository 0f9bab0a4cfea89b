"""The sessions page: filtering, sorting and paging the session list (in memory, from the index)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taurus_ops.web.data import (
    USAGE_KEYS,
    SessionRow,
    UsageError,
    iso,
    parse_day_end,
    parse_since,
)

PER_PAGE = 50
PER_PAGE_CHOICES = (25, 50, 100, 200)

# column -> (sort key, default order)
SORTS: dict[str, tuple[Callable[[SessionRow], Any], str]] = {
    "id": (lambda r: r.id, "asc"),
    "names": (lambda r: (",".join(r.names), r.id), "asc"),
    "title": (lambda r: r.title.lower(), "asc"),
    "project": (lambda r: r.cwd.lower(), "asc"),
    "created": (lambda r: r.created, "desc"),
    "updated": (lambda r: r.updated, "desc"),
    "messages": (lambda r: r.messages, "desc"),
    "tools": (lambda r: r.tool_calls, "desc"),
    "tokens": (lambda r: r.total_tokens, "desc"),
    "cost": (lambda r: r.cost if r.cost is not None else -1.0, "desc"),
    "size": (lambda r: r.size, "desc"),
}


@dataclass
class ListQuery:
    text: str = ""
    project: str = ""
    tool: str = ""
    since: str = ""  # updated on or after (a date, or 7d ...)
    until: str = ""  # updated on or before this day
    archived: bool = False
    sort: str = "updated"
    order: str = "desc"
    page: int = 1
    per: int = PER_PAGE

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string for this view with ``changes`` (defaults left out)."""
        values = {**self.__dict__, **changes}
        out = {}
        for key, value in values.items():
            default = ListQuery.__dataclass_fields__[key].default
            if key == "order" and value == SORTS.get(values["sort"], (None, "desc"))[1]:
                continue
            if value != default and value not in ("", None, False):
                out[key] = "1" if value is True else str(value)
        return out


def _int(value: str | None, name: str, low: int, high: int, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise UsageError(f"{name} must be between {low} and {high}")
    return number


def parse_query(params: Mapping[str, str]) -> ListQuery:
    """The list view asked for in a query string; UsageError (one line) for a bad value."""
    sort = params.get("sort") or "updated"
    if sort not in SORTS:
        raise UsageError(f"cannot sort by {sort!r}: use one of {', '.join(SORTS)}")
    order = params.get("order") or SORTS[sort][1]
    if order not in ("asc", "desc"):
        raise UsageError("order must be asc or desc")
    per = _int(params.get("per"), "per", 1, 1000, PER_PAGE)
    return ListQuery(
        text=(params.get("q") or params.get("text") or "").strip()[:200],
        project=(params.get("project") or "")[:4096],
        tool=(params.get("tool") or "")[:64],
        since=(params.get("since") or "").strip()[:64],
        until=(params.get("until") or "").strip()[:64],
        archived=params.get("archived") in ("1", "on", "true", "yes"),
        sort=sort,
        order=order,
        page=_int(params.get("page"), "page", 1, 10_000_000, 1),
        per=per,
    )


@dataclass
class Page:
    rows: list[SessionRow]
    total: int  # sessions matching the filters
    everything: int  # sessions in the list before filtering
    page: int
    pages: int


def _matcher(query: ListQuery) -> Callable[[SessionRow], bool]:
    words = query.text.lower().split()
    low = iso(parse_since(query.since)) if query.since else None
    high: str | None = None
    if query.until:
        moment: datetime = parse_day_end(query.until)
        high = iso(moment)
    if low and high and low > high:
        raise UsageError("the date range is empty: 'since' is after 'until'")

    def keep(row: SessionRow) -> bool:
        if query.project and row.cwd != query.project:
            return False
        if query.tool and query.tool not in row.tools:
            return False
        if low is not None and row.updated < low:
            return False
        if high is not None and row.updated >= high:
            return False
        if words:
            return all(word in row.text for word in words)
        return True

    return keep


def apply(rows: list[SessionRow], query: ListQuery) -> Page:
    """The page of rows the query asks for (rows come newest first)."""
    keep = _matcher(query)
    chosen = [r for r in rows if keep(r)]
    key, _ = SORTS[query.sort]
    if query.sort != "updated" or query.order != "desc":
        chosen.sort(key=key, reverse=query.order == "desc")
    pages = max(1, math.ceil(len(chosen) / query.per))
    page = min(query.page, pages)
    start = (page - 1) * query.per
    return Page(chosen[start : start + query.per], len(chosen), len(rows), page, pages)


def projects(rows: list[SessionRow]) -> list[tuple[str, int]]:
    """Working directories with their session counts, most first."""
    counts = Counter(r.cwd for r in rows if r.cwd)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def in_scope(rows: list[SessionRow], since: datetime | None) -> list[SessionRow]:
    """The sessions ``taurus-ops stats`` counts: readable, in the session folder, updated since."""
    low = iso(since) if since is not None else ""
    return [r for r in rows if not r.archived and r.error is None and r.updated >= low]


def per_project(rows: list[SessionRow]) -> list[tuple[str, int]]:
    """Sessions by working directory (``""``: none recorded), most first."""
    counts = Counter(r.cwd for r in rows)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def per_day(rows: list[SessionRow]) -> dict[str, dict[str, float]]:
    """Tokens and estimated cost by the local day each session was created, as ``stats`` dates it."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        day = row.day
        if not day:
            continue
        entry = out.setdefault(day, {**dict.fromkeys(USAGE_KEYS, 0), "cost": 0.0})
        for key in USAGE_KEYS:
            entry[key] += row.tokens[key]
        entry["cost"] += row.cost or 0.0
    return out


def page_numbers(page: int, pages: int) -> list[int | None]:
    """Page links to show: the first, the last and a few around ``page`` (None: a gap)."""
    wanted = {1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)}
    out: list[int | None] = []
    last = 0
    for number in sorted(wanted):
        if number - last > 1:
            out.append(None)
        out.append(number)
        last = number
    return out


def _link(label: str = "", href: str = "", rel: str = "", current: bool = False) -> dict[str, Any]:
    return {"label": label, "href": href, "rel": rel, "current": current, "gap": not label}


def pager(page: int, pages: int, href: Callable[[int], str]) -> list[dict[str, Any]]:
    """The links of a pager (empty for a single page): previous, numbers with gaps, next."""
    if pages <= 1:
        return []
    links = [_link("← Previous", href(page - 1) if page > 1 else "", "prev")]
    for number in page_numbers(page, pages):
        if number is None:
            links.append(_link())
        else:
            links.append(_link(str(number), href(number), current=number == page))
    links.append(_link("Next →", href(page + 1) if page < pages else "", "next"))
    return links
