"""Counted words for messages a person reads: ``1 file``, ``2 files``, never ``1 files``."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 file"`` / ``"3 files"``; ``many`` for an irregular plural (``"entries"``)."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many if many is not None else word + 's'}"
