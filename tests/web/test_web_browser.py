"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright.

A real ``taurus-ops serve`` subprocess serves a populated home; the browser loads the
sessions, opens a session, expands a tool call, searches, looks at the charts, follows
a live session, and reads a hostile session, which must not run a line of script.
Screenshots go to ``tests/artifacts/web/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.chromium import CHROMIUM, launch
from helpers.paths import ARTIFACTS
from helpers.served import Served, start
from helpers.web import populate

from taurus_ops.store import SessionStore

SCREENSHOTS = ARTIFACTS / "web"
# Recorded in every page before its own script runs: CSP violations, and dialogs.
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (/usr/bin/chromium); .ci/run installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("browser") / "taurus-home"
    populate(SessionStore(home / "sessions", home / "archive"), extra=60)
    running = start(home)
    yield running
    running.stop()


class Browser:
    """One Chromium with a fresh profile; every page's dialogs and errors recorded."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        context.add_init_script(WATCH)
        context.on("request", lambda request: self.requests.append(request.url))

    def page(self) -> Any:
        page = self.context.new_page()

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        return page


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    profile = tempfile.mkdtemp(prefix="taurus-chromium-")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = launch(
            playwright,
            Path(profile),
            viewport={"width": 1280, "height": 860},
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.set_default_timeout(15_000)
        try:
            yield Browser(context)
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Any]:
    page = browser.page()
    page.goto(served.url)  # the printed address: the token becomes a cookie
    yield page
    page.close()


def shoot(page: Any, name: str, tmp_path: Path, full: bool = False) -> None:
    for folder in (SCREENSHOTS, tmp_path):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=full)


def assert_clean(browser: Browser, page: Any) -> None:
    """No dialog, no error, no CSP violation, and nothing fetched from anywhere but the viewer."""
    assert browser.dialogs == []
    assert browser.errors == []
    assert page.evaluate("window.__violations") == []
    elsewhere = [
        u for u in browser.requests if not u.startswith(("http://localhost:", "http://127.0.0.1:"))
    ]
    assert elsewhere == []


def test_the_sessions_page(page: Any, browser: Browser, served: Served, tmp_path: Path) -> None:
    assert page.url == f"http://127.0.0.1:{served.port}/"  # the token left the address
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 50
    assert page.locator(".count").inner_text().startswith("65 sessions")
    shoot(page, "sessions", tmp_path)
    page.click("th >> text=Msgs")
    assert page.locator("td.id").first.inner_text() == "long0001"
    page.select_option("select[name=project]", "/srv/api")  # applies at once
    page.wait_for_url("**project=%2Fsrv%2Fapi**")
    projects = page.locator("td.project a").all_inner_texts()
    assert projects and set(projects) == {"/srv/api"}
    assert_clean(browser, page)


def test_a_session_with_its_tool_calls(
    page: Any, browser: Browser, served: Served, tmp_path: Path
) -> None:
    page.fill("form.filters input[name=q]", "login-fix")
    page.press("form.filters input[name=q]", "Enter")
    page.click("td.title a")
    page.wait_for_url("**/s/rich0001")
    bash = page.locator("details.t-bash")
    assert bash.get_attribute("open") is None  # tool calls start collapsed
    output = bash.locator(".tool-output")
    assert not output.is_visible()
    bash.locator("summary").click()
    assert output.is_visible() and "1 failed, 1 passed" in output.inner_text()
    assert "exit 1" in bash.locator("summary").inner_text()
    edit = page.locator("details.t-edit")
    edit.locator("summary").click()
    assert edit.locator(".d-add").inner_text().startswith("+    if not user or not password")
    page.click("button[data-copy]")
    assert page.evaluate("navigator.clipboard.readText()") == "taurus chat -s rich0001"
    shoot(page, "session", tmp_path, full=True)
    page.click("button[data-expand=open]")
    assert page.locator("details.tool:not([open])").count() == 0
    assert_clean(browser, page)


def test_search_leads_to_the_message(
    page: Any, browser: Browser, served: Served, tmp_path: Path
) -> None:
    page.keyboard.press("/")  # focuses the search box
    page.keyboard.type('"empty passwords"')
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=**")
    hits = page.locator("li.hit")
    assert hits.count() == 1
    assert hits.locator("mark").first.inner_text().lower() == "empty passwords"
    shoot(page, "search", tmp_path)
    hits.locator(".hit-head a").click()
    page.wait_for_url("**/s/rich0001?at=4**#m4")
    target = page.locator(".msg.target")
    assert target.get_attribute("id") == "m4"
    assert target.locator("mark.hit-mark").first.inner_text().lower() == "empty passwords"
    assert_clean(browser, page)


def test_stats_charts(page: Any, browser: Browser, served: Served, tmp_path: Path) -> None:
    page.click("nav >> text=Stats")
    charts = page.locator("svg.chart")
    assert charts.count() == 6
    for index in range(6):
        box = charts.nth(index).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 60
    assert page.locator("svg.chart rect.bar").count() > 20
    fill = page.locator("svg.chart rect.bar.c0").first.evaluate("e => getComputedStyle(e).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")  # coloured by the stylesheet
    shoot(page, "stats", tmp_path, full=True)
    assert_clean(browser, page)


def test_a_long_session_loads_as_it_scrolls(page: Any, browser: Browser, served: Served) -> None:
    page.goto(f"{served.base}/s/long0001")
    first = page.locator(".msg").count()
    assert 0 < first < 150
    for _ in range(40):
        if page.locator("a.more").count() == 0:
            break
        page.mouse.wheel(0, 40_000)
        page.wait_for_timeout(150)
    assert page.locator("a.more").count() == 0
    numbers = page.eval_on_selector_all("[id^=m]", "els => els.map(e => e.id)")
    assert sorted(int(n[1:]) for n in numbers if n[1:].isdigit()) == list(range(1, 301))
    assert_clean(browser, page)


def test_a_live_session_shows_new_messages(page: Any, browser: Browser, served: Served) -> None:
    store = SessionStore(served.home / "sessions", served.home / "archive")
    page.goto(f"{served.base}/s/child001")
    page.wait_for_selector(".live:not([hidden])")
    count = page.locator(".msg").count()
    session = store.load_ref("child001")
    session.messages.append({"role": "user", "content": "A **new** question, asked just now."})
    store.save(session)
    number = len(session.messages)
    page.wait_for_selector(f"#m{number}", timeout=10_000)
    assert page.locator(f"#m{number} strong").inner_text() == "new"
    assert page.locator(".msg").count() == count + 1
    assert_clean(browser, page)


@pytest.mark.parametrize(
    "path",
    ["/s/hostile1", "/s/hostile1?at=4#m5", "/search?q=script", "/?q=hostile", "/stats"],
)
def test_a_hostile_session_runs_no_script(
    page: Any, browser: Browser, served: Served, path: str, tmp_path: Path
) -> None:
    page.goto(served.base + path)
    for button in page.locator("button[data-expand=open]").all():
        button.click()  # every tool call and thinking block open
    for link in page.locator(".md a, a.image-link").all():
        link.hover()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 1  # the viewer's own
    handlers = page.evaluate(
        "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".filter(a => a.name.startsWith('on') || a.name === 'style').map(a => a.name))"
    )
    assert handlers == []
    assert (
        page.locator("iframe, img, object, embed, main svg:not(.chart), meta[http-equiv]").count()
        == 0
    )
    hrefs = page.eval_on_selector_all(
        "a[href]", "els => els.map(e => new URL(e.getAttribute('href'), location.href).href)"
    )
    assert all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs)
    if path.startswith("/s/"):
        text = page.locator("main").inner_text()
        assert "<script>window.__pwned" in text  # shown as text, not run
        shoot(page, "hostile", tmp_path, full=True)
    assert_clean(browser, page)
