"""Session statistics (``taurus-ops stats``), read from the index.

The figures are the tutorial's ``session-stats.sh``, computed on the session
directory's own session files, plus token use, an estimated cost and sessions per day.
How they relate to the script's, on the same directory:

- Total sessions: real session files (damaged ones included, as ``ls`` counts them).
  The script's ``ls *.json`` also counts every name symlink, so
  ``script total = total + names``; Taurus counts a named session once.
- This week: session files modified in the last 7×24 hours (the script's
  ``find -mtime -7``; find also descends into subfolders and counts name symlinks
  made this week, Taurus does neither).
- Most used tools / most modified files: ``toolCalls[].tool`` counts and the
  ``file`` of ``edit``/``write`` calls, summed over readable sessions; the script
  counts a named session again through each name (and prints ``null`` for a call
  without a file, which Taurus leaves out).
- Average messages per session: ``messages`` length averaged over readable sessions
  (the script's jq skips unreadable files the same way).

Token use: per-message ``usage`` summed by model; a session without per-message
usage contributes its top-level ``usage``. The cost is an ESTIMATE from the list
prices in ``PRICES`` (USD per million tokens); unknown models have no price.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.index import USAGE_KEYS, Index
from taurus_ops.words import plural

WEEK_SECONDS = 7 * 24 * 3600

# USD per million tokens: (input, output, cache read, cache write). List prices as
# published by Anthropic in 2025; an estimate, not a bill. Matched by model family.
PRICES: dict[str, tuple[float, float, float, float]] = {
    "opus-4-5": (5.0, 25.0, 0.50, 6.25),
    "opus": (15.0, 75.0, 1.50, 18.75),  # Claude 3 Opus, Opus 4 and 4.1
    "sonnet": (3.0, 15.0, 0.30, 3.75),  # Claude 3.5/3.7 Sonnet, Sonnet 4 and 4.5
    "haiku-4-5": (1.0, 5.0, 0.10, 1.25),
    "3-5-haiku": (0.80, 4.0, 0.08, 1.0),
    "3-haiku": (0.25, 1.25, 0.03, 0.30),
}
PRICE_NOTE = "estimated from Anthropic list prices (USD per million tokens, 2025); not a bill"


def price_family(model: str) -> str | None:
    """The PRICES key for a model name, or None when Taurus does not know its price."""
    name = model.lower().replace(".", "-")
    if "opus" in name:
        return "opus-4-5" if "opus-4-5" in name else "opus"
    if "sonnet" in name:
        return "sonnet"
    if "haiku" in name:
        if "haiku-4-5" in name:
            return "haiku-4-5"
        if "3-5-haiku" in name or "haiku-3-5" in name:
            return "3-5-haiku"
        if "3-haiku" in name or "haiku-3" in name:
            return "3-haiku"
        return "haiku-4-5"
    return None


def estimate_cost(model: str, tokens: dict[str, int]) -> float | None:
    family = price_family(model)
    if family is None:
        return None
    prices = PRICES[family]
    counts = [tokens.get(k, 0) for k in USAGE_KEYS]
    return sum(c * p for c, p in zip(counts, prices, strict=True)) / 1_000_000


@dataclass
class Stats:
    total: int = 0
    names: int = 0
    damaged: int = 0
    this_week: int = 0
    tools: Counter[str] = field(default_factory=Counter)
    average_messages: float | None = None
    modified: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)
    since: str | None = None
    checkpoint_bytes: int | None = None  # ~/.taurus/checkpoints (all sessions)
    checkpoint_limit: int | None = None  # checkpoints.maxBytes

    def cost_by_model(self) -> dict[str, float | None]:
        return {m: estimate_cost(m, t) for m, t in self.tokens.items()}

    def total_cost(self) -> float:
        return sum(c for c in self.cost_by_model().values() if c is not None)

    def as_json(self) -> dict[str, Any]:
        costs = self.cost_by_model()
        return {
            "totalSessions": self.total,
            "names": self.names,
            "damaged": self.damaged,
            "thisWeek": self.this_week,
            "tools": dict(self.tools.most_common()),
            "averageMessages": self.average_messages,
            "modifiedFiles": dict(self.modified.most_common()),
            "tokens": {
                m: {**t, "estimatedCostUsd": None if cost is None else round(cost, 4)}
                for m, t in sorted(self.tokens.items())
                for cost in [costs[m]]
            },
            "estimatedCostUsd": round(self.total_cost(), 4),
            "costNote": PRICE_NOTE,
            "sessionsPerDay": self.per_day,
            "since": self.since,
            "checkpointBytes": self.checkpoint_bytes,
            "checkpointMaxBytes": self.checkpoint_limit,
        }


def count_names(folder: os.PathLike[str] | str) -> int:
    """Name symlinks (``NAME.json``) in the session directory."""
    try:
        with os.scandir(folder) as it:
            return sum(
                1
                for e in it
                if e.name.endswith(".json") and not e.name.startswith(".") and e.is_symlink()
            )
    except (FileNotFoundError, NotADirectoryError):
        return 0


def compute(
    index: Index,
    since: datetime | None = None,
    now: datetime | None = None,
    names: int = 0,
) -> Stats:
    """The statistics of the indexed sessions of the session directory (no refresh).

    Aggregated by the index (running totals per folder; with ``since``, inside SQLite
    over the sessions that qualify), so 100,000 sessions take milliseconds.
    """
    now = now or datetime.now(UTC)
    stats = Stats(names=names, since=fmt.format_time(since) if since else None)
    week_ns = int(now.timestamp() * 1_000_000_000) - WEEK_SECONDS * 1_000_000_000
    found = index.aggregate(stats.since, week_ns)
    stats.total, stats.damaged, stats.this_week = found.total, found.damaged, found.this_week
    stats.average_messages = found.messages / found.readable if found.readable else None
    stats.tools = Counter(found.tools)
    stats.modified = Counter(found.modified)
    stats.tokens = found.tokens
    stats.per_day = dict(sorted(found.per_day.items()))
    return stats


def session_stats(
    index: Index, since: datetime | None = None, now: datetime | None = None
) -> Stats:
    """Refresh the index and compute the statistics of the active session directory."""
    index.refresh()
    links = index.links()  # as the refresh found them: no second listing of the folder
    names = (
        count_names(index.session_dir)
        if links is None
        else sum(1 for name, _ in links if not name.startswith("."))
    )
    return compute(index, since=since, now=now, names=names)


def _top(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    """The n largest, ties in descending name order (as the script's ``sort -rn`` leaves them)."""
    return sorted(counter.items(), key=lambda kv: (kv[1], kv[0].encode()), reverse=True)[:n]


def _size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def tokens_short(value: int) -> str:
    for unit, size in (("M", 1_000_000), ("K", 1_000)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def render_text(stats: Stats, days: int = 14, now: datetime | None = None) -> list[str]:
    """The report in the layout of session-stats.sh, then tokens, cost and activity."""
    lines = ["📊 Taurus Session Statistics", "============================"]
    if stats.since:
        lines.append(f"(sessions updated since {stats.since})")
    lines.append(f"Total sessions: {stats.total}")
    lines.append(f"This week: {stats.this_week}")
    lines += ["", "Most used tools:"]
    lines += [f"{count:>7} {fmt.printable(tool)}" for tool, count in _top(stats.tools, 5)]
    lines += ["", "Average messages per session:"]
    lines.append("n/a" if stats.average_messages is None else f"{stats.average_messages:.6g}")
    lines += ["", "Most modified files:"]
    lines += [f"{count:>7} {fmt.printable(path)}" for path, count in _top(stats.modified, 10)]
    if stats.names or stats.damaged:
        extra = []
        if stats.names:
            extra.append(f"{plural(stats.names, 'name link')} not counted as sessions")
        if stats.damaged:
            extra.append(f"{plural(stats.damaged, 'damaged file')} (run taurus-ops doctor)")
        lines += ["", "Note: " + "; ".join(extra)]
    lines += ["", "Tokens by model (estimated cost):"]
    if not stats.tokens:
        lines.append("  no token usage recorded")
    costs = stats.cost_by_model()
    width = max((len(m) for m in stats.tokens), default=0)
    for model, t in sorted(stats.tokens.items()):
        cost = costs[model]
        lines.append(
            f"  {model:<{width}}  in {tokens_short(t['inputTokens']):>7}"
            f"  out {tokens_short(t['outputTokens']):>7}"
            f"  cache read {tokens_short(t['cacheReadTokens']):>7}"
            f"  cache write {tokens_short(t['cacheCreationTokens']):>7}"
            f"  {f'≈ ${cost:.2f}' if cost is not None else 'price unknown'}"
        )
    if stats.tokens:
        lines.append(f"  Total ≈ ${stats.total_cost():.2f} ({PRICE_NOTE})")
    if stats.checkpoint_bytes is not None:
        limit = (
            f" of checkpoints.maxBytes {_size(stats.checkpoint_limit)}"
            if stats.checkpoint_limit
            else ""
        )
        lines += ["", f"File checkpoints (/rewind): {_size(stats.checkpoint_bytes)}{limit}"]
    now = now or datetime.now(UTC)
    today = now.astimezone().date()
    recent = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    counts = [stats.per_day.get(d, 0) for d in recent]
    peak = max(counts, default=0) or 1
    lines += ["", f"Sessions per day (last {plural(days, 'day')}):"]
    for day, count in zip(recent, counts, strict=True):
        bar = "█" * round(30 * count / peak) if count else ""
        lines.append(f"  {day}  {count:>4} {bar}")
    return lines
