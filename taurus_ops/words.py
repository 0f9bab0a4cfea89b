"""Counted words for messages a person reads: ``1 file``, ``2 files``, never ``1 files``."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None, grouped: bool = False) -> str:
    """``"1 file"`` / ``"3 files"``; ``many`` for an irregular plural (``"entries"``);
    ``grouped`` writes the count with thousands separators (``"10,002 sessions"``)."""
    number = f"{count:,}" if grouped else str(count)
    if count == 1:
        return f"{number} {word}"
    return f"{number} {many if many is not None else word + 's'}"
