"""Debian's Chromium under Playwright, as this machine (and CI) can run it: no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# no background traffic, no first-run work; the profile is a fresh folder each time
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Any, profile: Path, **options: Any) -> Any:
    """A persistent context (its own fresh ``--user-data-dir``) in Debian's Chromium."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, **options
    )
