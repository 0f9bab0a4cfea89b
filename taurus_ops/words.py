"""Counted words and sizes for messages a person reads: ``1 file``, ``2 files``, never
``1 files``; ``1.5K`` in a terminal column, ``1.5 KB`` in a page."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None, grouped: bool = False) -> str:
    """``"1 file"`` / ``"3 files"``; ``many`` for an irregular plural (``"entries"``);
    ``grouped`` writes the count with thousands separators (``"10,002 sessions"``)."""
    number = f"{count:,}" if grouped else str(count)
    if count == 1:
        return f"{number} {word}"
    return f"{number} {many if many is not None else word + 's'}"


def human_size(size: float, spaced: bool = False) -> str:
    """``"512B"``, ``"1.5K"``, ``"20M"`` (as ``ls -h`` writes them); ``spaced`` gives the
    page form ``"512 B"``, ``"1.5 KB"``, ``"20 MB"``."""
    units = ("B", "KB", "MB", "GB", "TB") if spaced else ("B", "K", "M", "G", "T")
    gap = " " if spaced else ""
    for unit in units[:-1]:
        if size < 1024 or unit == units[-2]:
            shown = f"{size:.0f}" if unit == "B" or size >= 10 else f"{size:.1f}"
            return f"{shown}{gap}{unit}"
        size /= 1024
    return f"{size:.1f}{gap}{units[-1]}"  # pragma: no cover
