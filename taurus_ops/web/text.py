"""Small text helpers for the pages (sizes, counts, project names)."""

from __future__ import annotations

import os


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


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
