"""Make the README's screenshots of ``taurus-ops serve`` (docs/serve-*.png).

    cd tests && python -m helpers.screenshots ../docs

A scratch home with a month of generated sessions (benchmarks/corpus.py) and the test
sessions of helpers/web.py moved to today; a real server; Debian's Chromium. The PNGs
are squeezed with pngquant when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.corpus import generate
from helpers.chromium import launch
from helpers.served import start
from helpers.web import long_document, rich_document
from taurus_ops.store import SessionStore
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write


def _moved(doc: dict[str, Any], created: datetime) -> dict[str, Any]:
    """``doc`` with every time shifted so that it starts at ``created``."""
    shift = created - fmt.parse_time(doc["created"])  # type: ignore[operator]

    def moved(value: str) -> str:
        return fmt.format_time(fmt.parse_time(value) + shift)  # type: ignore[operator]

    doc["created"], doc["updated"] = moved(doc["created"]), moved(doc["updated"])
    for message in doc["messages"]:
        if "timestamp" in message:
            message["timestamp"] = moved(message["timestamp"])
    return doc


def populate_recent(home: Path) -> None:
    store = SessionStore(home / "sessions", home / "archive")
    generate(store.session_dir, 240, seed=3, days=30)
    now = datetime.now(UTC)
    for doc in (
        _moved(rich_document(), now - timedelta(hours=2)),
        _moved(long_document("long0001", 300), now - timedelta(days=1)),
    ):
        name = fmt.file_name(fmt.parse_time(doc["created"]), doc["sessionId"])  # type: ignore[arg-type]
        atomic_write(store.session_dir / name, fmt.dumps(doc))
    store.name("rich0001", "login-fix")


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="taurus-shots-"))
    try:
        home = scratch / "home"
        populate_recent(home)
        served = start(home)
        try:
            with sync_playwright() as playwright:
                context = launch(
                    playwright, scratch / "profile", viewport={"width": 1200, "height": 760}
                )
                page = context.new_page()
                page.goto(served.url)
                page.screenshot(path=str(out / "serve-sessions.png"))
                page.goto(f"{served.base}/s/rich0001")
                for kind in ("edit", "bash"):
                    page.locator(f"details.t-{kind} summary").click()
                page.set_viewport_size({"width": 1200, "height": 1240})
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(out / "serve-session.png"))
                page.set_viewport_size({"width": 1200, "height": 760})
                page.goto(f'{served.base}/search?q="connection pool"')
                page.screenshot(path=str(out / "serve-search.png"))
                page.goto(f"{served.base}/stats")
                page.set_viewport_size({"width": 1200, "height": 1500})
                page.screenshot(path=str(out / "serve-stats.png"))
                context.close()
        finally:
            served.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if shutil.which("pngquant"):
        for png in out.glob("serve-*.png"):
            subprocess.run(
                ["pngquant", "--force", "--skip-if-larger", "--quality", "70-95",
                 "--output", str(png), str(png)],
                check=False,
            )  # fmt: skip
    for png in sorted(out.glob("serve-*.png")):
        print(f"{png}  {png.stat().st_size // 1024} KB")


if __name__ == "__main__":  # pragma: no cover
    main(Path(sys.argv[1]))
