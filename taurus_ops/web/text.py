"""Small text helpers for the pages (sizes, counts, project names)."""

from __future__ import annotations

import os

from taurus_ops import words


def human_size(size: float) -> str:
    return words.human_size(size, spaced=True)


def short_project(cwd: str) -> str:
    """A working directory as a column shows it: ``~/work/app`` or its last two parts."""
    if not cwd:
        return ""
    home = os.path.expanduser("~")
    if home not in ("", "/") and (cwd == home or cwd.startswith(home + os.sep)):
        cwd = "~" + cwd[len(home) :]
    parts = cwd.rstrip("/").split("/")
    return cwd if len(parts) <= 3 else "…/" + "/".join(parts[-2:])


def tokens(value: int) -> str:
    for unit, size in (("M", 1_000_000), ("K", 1_000)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)
