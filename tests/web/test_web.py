"""The web viewer's ASGI app through Starlette's test client: every route, status, filter,
page, the token and Host checks, and that nothing from a URL reaches the file system."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers.web import HOSTILE, long_document, populate, rich_document
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write

TOKEN = "test-token-0123456789"
PORT = 8765
COOKIE = f"taurus_ops_{PORT}"
BASE = f"http://127.0.0.1:{PORT}"


def make_client(token: str | None = TOKEN, host: str = "127.0.0.1") -> TestClient:
    from taurus_ops.config import load_config
    from taurus_ops.web.app import create_app

    app = create_app(load_config(), token=token, host=host, port=PORT)
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    if token:
        client.cookies.set(COOKIE, token)
    return client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """One populated home for the tests that only read (built once per module)."""
    from taurus_ops.store import SessionStore

    home = tmp_path_factory.mktemp("shared") / "taurus-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAURUS_HOME", str(home))
        populate(SessionStore(home / "sessions", home / "archive"))
        shared = make_client()
    shared.get("/")  # builds the index
    return shared


def guarded(shared: TestClient, token: str | None = TOKEN, host: str = "127.0.0.1") -> TestClient:
    """The shared pages behind a guard of their own (another token, another bound address)."""
    from taurus_ops.web.security import Guard, HostRule

    app = Guard(shared.app.app, token, HostRule(host), COOKIE)  # type: ignore[attr-defined]
    return TestClient(app, base_url=BASE, follow_redirects=False)


@pytest.fixture
def home(store) -> dict[str, Path]:
    return populate(store, extra=0)


@pytest.fixture
def own(home) -> TestClient:
    """A client on this test's own home, for tests that add or change files."""
    return make_client()


def ids_in(html: str) -> list[str]:
    return re.findall(r'<td class="id"><a href="/s/([\w-]+)">', html)


def message_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'\bid="m(\d+)"', html)]


# -- the token ----------------------------------------------------------------------------
def test_every_page_needs_the_token(client) -> None:
    anonymous = guarded(client)
    for path in ("/", "/s/rich0001", "/search?q=login", "/stats", "/s/rich0001/export"):
        page = anonymous.get(path)
        assert page.status_code == 403, path
        assert "access token" in page.text
        assert "rich0001" not in page.text and "login" not in page.text.split("<body", 1)[1]
    assert anonymous.get("/?token=wrong").status_code == 403
    anonymous.cookies.set(COOKIE, "wrong")
    assert anonymous.get("/").status_code == 403
    anonymous.cookies.clear()
    assert anonymous.get("/", headers={"authorization": "Bearer wrong"}).status_code == 403
    assert anonymous.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert anonymous.get("/static/app.css").status_code == 200  # the package's own files


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address(client) -> None:
    anonymous = guarded(client)
    first = anonymous.get(f"/search?q=login&token={TOKEN}&role=user")
    assert first.status_code == 303
    assert first.headers["location"] == "/search?q=login&role=user"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert anonymous.get("/search?q=login&role=user").status_code == 200  # the cookie now


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/", "///evil.example"])
def test_the_token_redirect_never_leaves_the_server(client, path: str) -> None:
    anonymous = guarded(client)
    answer = anonymous.get(BASE + path.replace("\\", "%5C") + f"?token={TOKEN}")
    location = answer.headers["location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))


def test_no_token_serves_without_one(client) -> None:
    open_client = guarded(client, token=None)
    assert open_client.get("/").status_code == 200


# -- the Host header ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bound", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8765", True),
        ("127.0.0.1", "localhost:8765", True),
        ("127.0.0.1", "localhost:9000", True),  # an SSH tunnel on another local port
        ("127.0.0.1", "LOCALHOST.", True),
        ("127.0.0.1", "[::1]:8765", True),
        ("127.0.0.1", "127.0.0.2", True),
        ("127.0.0.1", "evil.example", False),  # DNS rebinding: the attacker's name
        ("127.0.0.1", "evil.example:8765", False),
        ("127.0.0.1", "127.0.0.1.evil.example", False),
        ("127.0.0.1", "localhost.evil.example", False),
        ("127.0.0.1", "192.168.1.5:8765", False),
        ("127.0.0.1", "", False),
        ("192.168.1.5", "192.168.1.5:8765", True),
        ("192.168.1.5", "192.168.1.6:8765", False),
        ("0.0.0.0", "10.1.2.3:8765", True),
        ("0.0.0.0", "[fe80::1]:8765", True),
        ("0.0.0.0", "evil.example:8765", False),
    ],
)
def test_the_host_header_must_name_this_server(
    client, bound: str, host: str, allowed: bool
) -> None:
    answer = guarded(client, token=None, host=bound).get("/", headers={"host": host})
    assert (answer.status_code == 200) is allowed, (bound, host, answer.status_code)
    if not allowed:
        assert answer.status_code == 400 and "rich0001" not in answer.text


# -- headers on every answer ------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/s/rich0001",
        "/s/rich0001/turns?from=1",
        "/s/rich0001/raw/1/0",
        "/s/rich0001/export?format=html",
        "/s/nope",
        "/s/broken01",
        "/search?q=login",
        "/stats",
        "/static/app.js",
        "/no/such/page",
        "/?sort=bogus",
    ],
)
def test_every_answer_carries_the_security_headers(client, path: str) -> None:
    answer = client.get(path)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp or "sandbox" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    if not path.startswith("/static/"):
        assert answer.headers["cache-control"] == "no-store"


def test_refused_answers_carry_them_too(client) -> None:
    stranger = guarded(client)
    stranger.cookies.set(COOKIE, "x")
    for answer in (guarded(client).get("/", headers={"host": "evil.example"}), stranger.get("/")):
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_only_get_and_head(client) -> None:
    assert client.post("/").status_code == 405
    assert client.delete("/s/rich0001").status_code == 405
    assert client.head("/").status_code == 200


# -- nothing from a URL reaches the file system ----------------------------------------------
TRAVERSALS = [  # a literal ../ is normalised by the client: the server test sends it raw
    "%2e%2e",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%2E%2E%2Fsessions",
    "~root",
    ".rich0001",
    "2025-01-18_rich0001.json",
    "rich0001.json",
    "rich0001%00",
    "a" * 65,
    "%C3%A9t%C3%A9",
]


@pytest.mark.parametrize("ref", TRAVERSALS)
@pytest.mark.parametrize(
    "tail", ["", "/turns?from=1", "/raw/1/0", "/export?format=json", "/events"]
)
def test_paths_and_odd_references_are_refused(client, ref: str, tail: str) -> None:
    answer = client.get(f"/s/{ref}{tail}")
    assert answer.status_code == 404, (ref, tail)
    assert "root:" not in answer.text and '"sessionId"' not in answer.text


def test_a_name_leading_outside_the_session_folder_is_refused(own, store, tmp_path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"sessionId": "x", "messages": [], "password": "hunter2"}))
    os.symlink(secret, store.session_dir / "evil.json")
    answer = own.get("/s/evil")
    assert answer.status_code == 404
    assert "hunter2" not in answer.text
    assert "hunter2" not in own.get("/s/evil/export?format=json").text


def test_static_files_come_from_a_fixed_list(client) -> None:
    for name in ("app.css", "app.js", "pygments.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    for name in ("..%2Fapp.py", "%2E%2E%2Fdata.py", "app.py", "data.py", "%2e%2e", "nope.css"):
        assert client.get(f"/static/{name}").status_code == 404


# -- the sessions page -------------------------------------------------------------------------
def test_sessions_newest_first_with_the_archive_on_a_toggle(client) -> None:
    page = client.get("/").text
    shown = ids_in(page)
    assert "parent01" not in shown and "rich0001" in shown
    assert len(shown) == 50  # the first page
    assert "65 sessions" in page
    archived = client.get("/?archived=1").text
    assert "parent01" in ids_in(client.get("/?archived=1&q=parent01").text)
    assert "66 sessions" in archived and "(archive included)" in archived


def test_sessions_pages_hold_every_session_once(client) -> None:
    seen: list[str] = []
    for number in (1, 2):
        seen += ids_in(client.get(f"/?page={number}").text)
    assert len(seen) == len(set(seen)) == 65
    assert ids_in(client.get("/?page=99").text) == ids_in(client.get("/?page=2").text)
    assert len(ids_in(client.get("/?per=25&page=3").text)) == 15


@pytest.mark.parametrize(
    "sort", ["id", "names", "title", "project", "created", "updated", "messages", "tools",
             "tokens", "cost", "size"],
)  # fmt: skip
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_any_column(client, sort: str, order: str) -> None:
    from taurus_ops.web import listing

    page = client.get(f"/?sort={sort}&order={order}&per=200&archived=1")
    assert page.status_code == 200
    shown = ids_in(page.text)
    rows = {r.id: r for r in client.app.app.state.site.viewer.sessions(archived=True)}
    key = listing.SORTS[sort][0]
    values = [key(rows[i]) for i in shown]
    assert values == sorted(values, reverse=order == "desc")


def test_sorting_by_messages_puts_the_long_session_first(client) -> None:
    assert ids_in(client.get("/?sort=messages").text)[0] == "long0001"
    assert ids_in(client.get("/?sort=messages&order=asc").text)[0] == "broken01"


def test_filters(client) -> None:
    assert ids_in(client.get("/?q=login-fix").text) == ["rich0001"]
    assert ids_in(client.get("/?q=RATE+limiter").text) == ["child001"]
    api = ids_in(client.get("/?project=/srv/api&per=200").text)
    rows = {r.id: r for r in client.app.app.state.site.viewer.sessions()}
    assert api and all(rows[i].cwd == "/srv/api" for i in api)
    assert len(api) == sum(1 for r in rows.values() if r.cwd == "/srv/api")
    writers = ids_in(client.get("/?tool=write&per=200").text)
    assert writers and all("write" in rows[i].tools for i in writers)
    days = ids_in(client.get("/?since=2025-01-18&until=2025-01-18&per=200").text)
    assert "rich0001" in days and "hostile1" not in days
    assert all(rows[i].updated[:10] in ("2025-01-17", "2025-01-18", "2025-01-19") for i in days)
    assert "No session matches" in client.get("/?q=nothing-like-this").text


@pytest.mark.parametrize(
    "query", ["sort=bogus", "order=up", "page=0", "page=x", "per=0", "since=yesterdayish",
              "since=2025-02-01&until=2025-01-01"],
)  # fmt: skip
def test_bad_list_parameters_get_one_line_and_400(client, query: str) -> None:
    page = client.get(f"/?{query}")
    assert page.status_code == 400
    assert page.text.count('class="error"') == 1
    assert "Traceback" not in page.text


def test_an_empty_folder(taurus_home) -> None:
    page = make_client().get("/")
    assert page.status_code == 200 and "No sessions in" in page.text


# -- one session ----------------------------------------------------------------------------
def test_a_session_with_every_kind_of_block(client) -> None:
    page = client.get("/s/rich0001")
    assert page.status_code == 200
    html = page.text
    assert "<table>" in html and "<strong>login</strong>" in html  # Markdown
    assert 'class="d-del">-    if not user:</span>' in html  # edit as a diff
    assert 'class="d-add">+    if not user or not password:</span>' in html
    assert "exit 1" in html and "1 failed, 1 passed" in html  # bash with its status
    assert 'data-n="10"' in html and "lines 10–13" in html  # read with its lines
    assert '<details class="thinking">' in html and "details open" not in html
    assert "reply interrupted" in html  # message 8
    assert "Interrupted: the tool did not finish" in html  # the dangling grep
    assert "no result was saved" in html
    assert "taurus chat -s rich0001" in html
    assert 'class="name">login-fix<' in html
    assert "1.4 s" in html and "3 ms" in html  # durations from toolCalls
    # every message has its anchor, a folded result message too, in file order
    assert sorted(set(message_ids(html))) == list(range(1, 13))
    assert 'href="/s/rich0001?at=4#m4"' in html
    for fmt_name in ("markdown", "html", "json"):
        assert f'<option value="{fmt_name}">' in html


def test_a_session_by_name_or_prefix_is_the_same_page(client) -> None:
    by_id = client.get("/s/rich0001").text
    assert client.get("/s/login-fix").text == by_id
    assert client.get("/s/rich").text == by_id


def test_parent_and_child_links(client) -> None:
    child = client.get("/s/child001").text
    assert 'href="/s/parent01"' in child and "Continues" in child
    parent = client.get("/s/parent01").text
    assert "archived" in parent and 'href="/s/child001"' in parent and "Continued in" in parent


def test_problem_sessions(client) -> None:
    broken = client.get("/s/broken01")
    assert broken.status_code == 422 and "taurus-ops doctor broken01 --fix" in broken.text
    assert client.get("/s/nope").status_code == 404
    ambiguous = client.get("/s/s00000")
    assert ambiguous.status_code == 409 and "type more of the id" in ambiguous.text


def test_doctor_repairs_are_marked(own, store, taurus_home) -> None:
    folder = taurus_home / "quarantine" / "2025-01-20"
    folder.mkdir(parents=True)
    entry = {"time": "2025-01-20T10:00:00.000Z", "original": str(store.session_dir / "2025-01-18_rich0001.json"),
             "quarantined": str(folder / "2025-01-18_rich0001.json"), "reason": "cut off mid-write"}  # fmt: skip
    (folder / "MANIFEST.jsonl").write_text(json.dumps(entry) + "\n")
    html = own.get("/s/rich0001").text
    assert "Repaired by" in html and "cut off mid-write" in html
    assert "Repaired by" not in own.get("/s/child001").text


def test_unreadable_bytes_are_marked(own, store) -> None:
    doc = rich_document("fffd0001")
    doc["messages"][0]["content"] = "caf\ufffd au lait"
    atomic_write(store.session_dir / "2025-01-18_fffd0001.json", fmt.dumps(doc))
    assert "repaired text" in own.get("/s/fffd0001").text


# -- long sessions load in chunks ---------------------------------------------------------------
def chunk_links(html: str) -> tuple[str | None, str | None]:
    more = re.search(r'class="more" href="[^"]*" data-src="([^"]+)"', html)
    earlier = re.search(r'class="earlier" href="[^"]*" data-src="([^"]+)"', html)
    return (more.group(1).replace("&amp;", "&") if more else None,
            earlier.group(1).replace("&amp;", "&") if earlier else None)  # fmt: skip


def test_a_long_session_loads_chunk_by_chunk_and_shows_every_message_once(client) -> None:
    page = client.get("/s/long0001").text
    seen = message_ids(page)
    more, earlier = chunk_links(page)
    assert more and earlier is None
    fetched = 0
    while more:
        fragment = client.get(more)
        assert fragment.status_code == 200 and "<html" not in fragment.text
        seen += message_ids(fragment.text)
        assert chunk_links(fragment.text)[1] is None  # a chunk loaded below adds no "earlier"
        more = chunk_links(fragment.text)[0]
        fetched += 1
    assert fetched >= 3
    assert sorted(seen) == list(range(1, 301))


def test_a_permalink_opens_the_chunk_holding_the_message(client) -> None:
    page = client.get("/s/long0001?at=250").text
    assert 250 in message_ids(page) and 1 not in message_ids(page)
    earlier = chunk_links(page)[1]
    assert earlier is not None
    before = client.get(earlier).text
    assert max(message_ids(before)) < min(message_ids(page))
    assert chunk_links(before)[0] is None  # a chunk loaded above adds no "more"
    last = client.get("/s/long0001?at=last").text
    assert 300 in message_ids(last) and chunk_links(last)[0] is None
    assert client.get("/s/long0001?at=abc").status_code == 400
    assert client.get("/s/long0001?at=0").status_code == 400


def test_a_big_session_sends_a_bounded_first_page(own, store) -> None:
    doc = long_document("big00001", 2400, result_size=1600)  # 2.7 MB on disk
    path = store.session_dir / "2025-01-16_big00001.json"
    atomic_write(path, fmt.dumps(doc))
    assert path.stat().st_size > 2_500_000
    page = own.get("/s/big00001")
    assert page.status_code == 200
    assert len(page.content) < 400_000
    assert chunk_links(page.text)[0] is not None


def test_long_output_is_cut_with_the_whole_text_on_request(own, store) -> None:
    doc = rich_document("huge0001")
    huge = "\n".join(f"line {n} <b>bold</b>" for n in range(20_000))
    doc["messages"][6]["content"][0]["content"] = huge
    atomic_write(store.session_dir / "2025-01-18_huge0001.json", fmt.dumps(doc))
    page = own.get("/s/huge0001").text
    assert "more characters" in page and "/s/huge0001/raw/7/0" in page
    assert len(page) < 120_000
    raw = own.get("/s/huge0001/raw/7/0")
    assert raw.status_code == 200 and raw.text == huge
    assert raw.headers["content-type"].startswith("text/plain")
    assert "sandbox" in raw.headers["content-security-policy"]
    assert own.get("/s/huge0001/raw/99/0").status_code == 404
    assert own.get("/s/huge0001/raw/7/9").status_code == 404


# -- downloads ------------------------------------------------------------------------------------
SECRET = "sk-ant-api03-" + "A" * 40


@pytest.mark.parametrize(
    ("fmt_name", "suffix"), [("markdown", ".md"), ("html", ".html"), ("json", ".json")]
)
def test_downloads_in_the_export_formats_with_redaction(
    own, store, fmt_name: str, suffix: str
) -> None:
    from taurus_ops.ops.export import render

    doc = rich_document("keys0001")
    doc["messages"][0]["content"] = f"my key is {SECRET}"
    atomic_write(store.session_dir / "2025-01-18_keys0001.json", fmt.dumps(doc))
    plain = own.get(f"/s/keys0001/export?format={fmt_name}")
    assert plain.status_code == 200
    assert (
        plain.headers["content-disposition"]
        == f'attachment; filename="2025-01-18_keys0001{suffix}"'
    )
    assert SECRET in plain.text and "x-taurus-redacted" not in plain.headers
    redacted = own.get(f"/s/keys0001/export?format={fmt_name}&redact=1")
    assert SECRET not in redacted.text and "[REDACTED:anthropic-key]" in redacted.text
    session = store.load_ref("keys0001")
    done = render(session, fmt_name, redact_secrets=True, names=[])
    assert redacted.headers["x-taurus-redacted"] == str(done.redaction.total) != "0"
    expected = done.text
    if fmt_name != "html":  # the HTML export stamps its own time
        assert redacted.text == expected
    assert own.get("/s/keys0001/export?format=pdf").status_code == 400


# -- search ---------------------------------------------------------------------------------------
def test_search_with_snippets_linking_to_the_message(client) -> None:
    page = client.get("/search?q=empty+passwords").text
    assert "<mark>" in page
    assert 'href="/s/rich0001?at=4&amp;q=empty%20passwords#m4"' in page
    assert "No session matches" in client.get("/search?q=walrus-never-said").text


def test_search_uses_the_engines_syntax_and_filters(client) -> None:
    from taurus_ops.ops.search import SearchQuery, parse_terms, search
    from taurus_ops.store.index import Index

    def hit_ids(html: str) -> list[str]:
        return re.findall(r'<p class="hit-head"><a href="/s/([\w-]+)\?', html)

    def every_hit(query: str) -> set[str]:
        found: set[str] = set()
        for number in range(1, 10):
            found |= set(hit_ids(client.get(f"/search?{query}&page={number}").text))
        return found

    assert hit_ids(client.get('/search?q="rate+limiter"').text) == ["child001"]
    with Index(client.app.app.state.site.viewer.config) as index:
        expected = {h.id for h in search(index, SearchQuery(parse_terms("login")))}
    assert every_hit("q=login") == expected and len(expected) > 20  # over several pages
    assert hit_ids(client.get("/search?q=NOTES.md&tool=write").text) == ["rich0001"]
    assert hit_ids(client.get("/search?q=Help+me+debug&role=assistant").text) == []
    assert "rich0001" in hit_ids(client.get("/search?q=Help+me+debug&role=user").text)
    assert "parent01" not in every_hit("q=step+0")
    assert "parent01" in every_hit("q=step+0&archived=1")
    assert hit_ids(client.get('/search?q="DEBUG+the+**login**"').text) == ["rich0001"]
    assert hit_ids(client.get('/search?q="DEBUG+the+**login**"&case=1').text) == []
    assert hit_ids(client.get('/search?q="debug+the+**login**"&case=1').text) == ["rich0001"]
    assert hit_ids(client.get("/search?q=login&since=2099-01-01").text) == []


@pytest.mark.parametrize("query", ["q=%22%22", "q=x&since=someday", "q=x&role=robot"])
def test_bad_searches_get_one_line_and_400(client, query: str) -> None:
    page = client.get(f"/search?{query}")
    assert page.status_code == 400 and page.text.count('class="error"') == 1


def test_the_search_page_without_a_query(client) -> None:
    page = client.get("/search")
    assert page.status_code == 200 and 'name="q"' in page.text and "match" not in page.text


# -- stats -------------------------------------------------------------------------------------------
def test_stats_figures_and_charts(client) -> None:
    from taurus_ops.ops.stats import session_stats
    from taurus_ops.store.index import Index

    page = client.get("/stats")
    assert page.status_code == 200
    with Index(client.app.app.state.site.viewer.config) as index:
        figures = session_stats(index).as_json()
    html = page.text
    assert f'<span class="big">{figures["totalSessions"]}</span>' in html
    assert html.count('<svg class="chart"') == 6
    assert "<title>read: " in html  # a bar's tooltip
    assert "Sessions per project" in html and "/srv/api" in html
    assert "No session was created in the last 30 days" in html  # the sample is from 2025
    assert client.get("/stats?since=2025-01-18&days=14").status_code == 200
    assert client.get("/stats?since=never").status_code == 400
    assert client.get("/stats?days=0").status_code == 400


# -- hostile content, as strings (the browser test runs it for real) -------------------------------
PAGES = [
    "/",
    "/s/hostile1",
    "/s/hostile1/turns?from=1",
    "/search?q=script",
    "/stats",
    "/?q=hostile",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_session_text_becomes_markup(client, path: str) -> None:
    html = client.get(path).text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert len(scripts) <= 1 and all(
        s.startswith('<script src="/static/app.js?v=') for s in scripts
    )
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", html, re.IGNORECASE)  # no handlers
    assert not re.search(r"<[a-z][^>]*\sstyle\s*=", html, re.IGNORECASE)  # CSP: no inline style
    assert not re.search(r"""href\s*=\s*["']?\s*(javascript|data|vbscript):""", html, re.IGNORECASE)
    body = html.split("<main>", 1)[-1]  # the head has the page's own meta tags
    own_charts = body.replace('<svg class="chart"', "")
    assert not re.search(r"<(iframe|img|svg|meta|style|object|embed)\b", own_charts, re.IGNORECASE)


def test_the_hostile_session_shows_its_text(client) -> None:
    html = client.get("/s/hostile1").text
    assert "&lt;script&gt;window.__pwned" in html
    assert "&lt;img src=x onerror=" in html


# -- the pieces ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("http://example.com", True), ("https://example.com/a?b#c", True), ("mailto:a@b.c", True),
        ("HTTPS://EXAMPLE.COM", True), ("javascript:alert(1)", False), ("JaVaScRiPt:alert(1)", False),
        ("java\tscript:alert(1)", False), ("java\nscript:alert(1)", False), (" javascript:x", False),
        ("\x01javascript:x", False), ("data:text/html,x", False), ("vbscript:x", False),
        ("file:///etc/passwd", False), ("/s/other", False), ("//evil.example", False),
        ("relative/link", False), ("#frag", False),
    ],
)  # fmt: skip
def test_only_web_and_mail_links_are_kept(url: str, safe: bool) -> None:
    from taurus_ops.web.render import safe_url

    assert safe_url(url) is safe


FRAGMENTS = [*HOSTILE, "<", ">", "&", '"', "'", "`", "```", "[a](", ")", "![", "javascript:",
             "\n", "*", "|", "<b>", "onerror=", "style=", "\x00", "\ufffd"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12).map("".join))
def test_markdown_never_produces_markup_from_text(text: str) -> None:
    from taurus_ops.web.render import markdown

    html = str(markdown(text))
    assert not re.search(r"<(script|img|iframe|svg|style|meta|object|embed|details)\b", html)
    assert not re.search(r"<[a-z][^>]*\s(on[a-z]+|style)\s*=", html, re.IGNORECASE)
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.lower().startswith(("http://", "https://", "mailto:"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 200_000), min_size=0, max_size=120), st.integers(0, 130))
def test_chunks_cover_every_unit_once_in_either_direction(weights: list[int], start: int) -> None:
    from taurus_ops.web.transcript import MAX_UNITS, Transcript

    transcript = Transcript({"messages": []})
    transcript.units_read = [type("U", (), {"weight": w})() for w in weights]  # type: ignore[misc]
    covered: list[int] = []
    at = 0
    while at < len(weights):
        s, e = transcript.forward(at)
        assert s == at and at < e <= at + MAX_UNITS
        covered += range(s, e)
        at = e
    assert covered == list(range(len(weights)))
    end = min(start, len(weights))
    back: list[int] = []
    while end > 0:
        s, e = transcript.backward(end)
        assert e == end and s < e
        back = list(range(s, e)) + back
        end = s
    assert back == list(range(min(start, len(weights))))


def test_transcript_numbers_follow_the_file() -> None:
    from taurus_ops.web.transcript import Transcript

    transcript = Transcript(rich_document())
    assert [u.number for u in transcript.units] == [1, 2, 4, 6, 8, 9, 10, 12]
    assert transcript.units[1].folded == [3]
    read = transcript.units[1].blocks[2].call
    assert read.name == "read" and read.result.number == 3 and read.result.anchor
    grep = transcript.units[-1].blocks[1].call
    assert grep.result.interrupted and grep.result.number == 0 and grep.outcome == "interrupted"
    assert all(
        transcript.unit_for(n) == i for i, u in enumerate(transcript.units) for n in u.numbers
    )


def test_a_tool_still_running_in_an_open_chat_is_not_called_interrupted(own, store) -> None:
    from taurus_ops.store.lock import lock_path

    path = store.session_dir / "2025-01-18_rich0001.json"
    closed = own.get("/s/rich0001").text
    assert "Interrupted: the tool did not finish" in closed and "open in a chat" not in closed
    lock_path(path).write_text(f"{os.getpid()}\n")  # what a running chat's lock file holds
    running = own.get("/s/rich0001").text
    assert "open in a chat" in running and "Waiting for the result" in running
    assert "Interrupted: the tool did not finish" not in running
    lock_path(path).write_text("999999999\n")  # left by a chat that crashed
    assert "Interrupted: the tool did not finish" in own.get("/s/rich0001").text


@pytest.mark.parametrize(
    "doc",
    [
        rich_document(),
        long_document("lazy0001", 400),
        {"messages": [{"role": "user", "content": "x"}]},
    ],
    ids=["rich", "long", "one"],
)
def test_a_transcript_read_chunk_by_chunk_is_the_whole_transcript(doc: dict) -> None:
    from taurus_ops.web.transcript import Transcript

    def shape(units: list) -> list:
        return [
            (u.number, u.folded, u.weight,
             [(b.kind, b.call.outcome if b.call else "") for b in u.blocks])
            for u in units
        ]  # fmt: skip

    whole = Transcript(doc).units
    lazy = Transcript(doc)
    assert len(lazy.units_read) < len(whole) or len(whole) <= 2  # the first page reads little
    read: list = []
    at = 0
    while True:
        start, end = lazy.forward(at)
        if start == end:
            break
        read += lazy.units_read[start:end]
        at = end
    assert shape(read) == shape(whole)


def test_a_slow_index_never_holds_a_page_up(own, store, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from helpers.sessions import make_document, write_session

    from taurus_ops.store.index import Index

    assert "rich0001" in ids_in(own.get("/").text)  # the first list is waited for
    gate = threading.Event()
    real = Index.refresh

    def slow(self: Index, *args: object, **kwargs: object):  # a big session re-indexing
        gate.wait(10)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Index, "refresh", slow)
    write_session(store.session_dir, make_document("newone01"))
    began = time.monotonic()
    page = own.get("/")
    assert time.monotonic() - began < 2
    assert "from a moment ago" in page.text and "newone01" not in ids_in(page.text)
    gate.set()
    for _ in range(100):
        page = own.get("/")
        if "newone01" in ids_in(page.text):
            break
        time.sleep(0.05)
    assert "newone01" in ids_in(page.text) and "from a moment ago" not in page.text


def test_an_unknown_page_is_a_page_too(client) -> None:
    answer = client.get("/no/such/thing")
    assert answer.status_code == 404 and "No such page" in answer.text
    assert "/no/such/thing" in answer.text and "<script>" not in answer.text
    hostile = client.get("/%3Cscript%3Ealert(1)%3C/script%3E")
    assert hostile.status_code == 404 and "<script>alert" not in hostile.text
