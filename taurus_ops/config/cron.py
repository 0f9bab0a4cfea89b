"""Cron expressions for ``schedule.cleanup`` and ``schedule.backup``.

Accepted: the classic five fields ``minute hour day-of-month month day-of-week``
(``*``, numbers, ``a-b`` ranges, ``*/n`` and ``a-b/n`` steps, comma lists, month
and weekday names, 0 or 7 for Sunday); the aliases ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``); and
six fields whose first is the second (``*/10 * * * * *``), for schedules finer
than a minute. Giving both a day of month and a day of week is refused: cron
runs on either, systemd timers only on both, so the meaning would differ.

Parsing is pure and light (no scheduler import), so config validation stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

# name, low, high, names (index 0 maps to `low`)
FIELDS = {
    "second": (0, 59, None),
    "minute": (0, 59, None),
    "hour": (0, 23, None),
    "day": (1, 31, None),
    "month": (1, 12, MONTHS),
    "day_of_week": (0, 7, WEEKDAYS),
}


class CronError(ValueError):
    """A cron expression that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    """A parsed expression: each field's text (lower case) and its expanded values."""

    expression: str
    second: str
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    values: dict[str, tuple[int, ...]]

    def field(self, name: str) -> str:
        return str(getattr(self, name))

    def is_star(self, name: str) -> bool:
        return self.field(name) in ("*", "?")


def _number(text: str, name: str) -> int:
    low, high, names = FIELDS[name]
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise CronError(f"{name.replace('_', '-')} value {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name.replace('_', '-')} value {value} is outside {low}-{high}")
    return value


def _expand(text: str, name: str) -> tuple[int, ...]:
    low, high, _ = FIELDS[name]
    if not text:
        raise CronError(f"empty {name.replace('_', '-')} field")
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"step {step_text!r} in {part!r} is not a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _number(first, name), _number(last, name)
            if start > stop:
                raise CronError(f"range {base!r} runs backwards")
        else:
            start = _number(base, name)
            stop = high if step_text else start
        out.update(range(start, stop + 1, step))
    if name == "day_of_week":
        out = {v % 7 for v in out}  # 0 and 7 are both Sunday
    return tuple(sorted(out))


def parse_cron(expression: str) -> Cron:
    """Parse and check ``expression``; raises CronError with a one-line reason."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("empty cron expression")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise CronError(f"unknown alias {text!r} (use one of {', '.join(sorted(ALIASES))})")
    parts = text.split(" ")
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise CronError(
            f"{len(parts)} fields; a cron expression has 5 (minute hour day month weekday) "
            "or 6 (second first)"
        )
    names = list(FIELDS)
    values = {name: _expand(part, name) for name, part in zip(names, parts, strict=True)}
    second, minute, hour, day, month, day_of_week = (p.lower() for p in parts)
    cron = Cron(text, second, minute, hour, day, month, day_of_week, values=values)
    if not cron.is_star("day") and not cron.is_star("day_of_week"):
        raise CronError(
            "both a day of month and a day of week are given; cron runs on either, "
            "systemd on both: use one of them"
        )
    return cron


def validate_cron(expression: str) -> str:
    """Return ``expression`` normalised (single spaces) if valid, else raise CronError."""
    parse_cron(expression)
    return " ".join(expression.split())
