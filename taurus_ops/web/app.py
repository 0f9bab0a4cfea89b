"""The viewer's Starlette application: its routes and pages.

========================================  ==========================================
``/``                                     the sessions (filters, sort, pages)
``/s/{ref}``                              one session (``?at=N`` opens at message N,
                                          ``?at=last`` at the end, ``?from=N``)
``/s/{ref}/turns?from=N`` / ``?before=N``  the next or previous chunk (lazy loading)
``/s/{ref}/events``                       server-sent events when the file changes
``/s/{ref}/raw/{message}/{block}``        one block's whole text, as plain text
``/s/{ref}/export?format=F&redact=1``     a download in an ``export`` format
``/search``                               ``taurus-ops search`` with snippets
``/stats``                                the ``stats`` figures with charts
``/static/{name}``                        the package's CSS, script and icon
========================================  ==========================================

Anything else is the viewer's own 404 page.
``{ref}`` is a session id, a unique prefix or a name (``[A-Za-z0-9_-]{1,64}``): the
store resolves it, so no part of a URL is ever used as a path. Only GET and HEAD.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from taurus_ops.web import charts, listing, render, text
from taurus_ops.web import data as D
from taurus_ops.web.security import Guard, HostRule, cookie_name
from taurus_ops.web.transcript import Transcript, block_text, cards
from taurus_ops.words import plural

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SEARCH_PER_PAGE = 20
POLL_SECONDS = 1.0  # how often the events stream looks at a session file
STREAM_SECONDS = 600  # an events stream ends after this; the browser reconnects
HEARTBEAT_SECONDS = 15
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
DAY_CHOICES = (14, 30, 90, 365)

STATUS = {
    D.InvalidReference: (404, "No such session"),
    D.SessionNotFound: (404, "No such session"),
    D.AmbiguousReference: (409, "More than one session matches"),
    D.SessionFormatError: (422, "This session file cannot be read"),
    D.IndexBusy: (503, "The index is busy"),
    D.IndexFailure: (503, "The index cannot be used"),
    D.UsageError: (400, "That request cannot be answered"),
}


def _url(path: str, params: dict[str, Any] | None = None, fragment: str = "") -> str:
    """A URL on this server with an encoded query string (empty values left out)."""
    query = {k: v for k, v in (params or {}).items() if v not in (None, "", False)}
    out = path + ("?" + urlencode(query) if query else "")
    return out + (f"#{fragment}" if fragment else "")


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) in ("1", "on", "true", "yes")


def _number(request: Request, name: str, low: int = 0, high: int = 10**9) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise D.UsageError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise D.UsageError(f"{name} must be between {low} and {high}")
    return number


class Site:
    """The pages, over one ``Viewer``."""

    def __init__(self, viewer: D.Viewer) -> None:
        self.viewer = viewer
        self.stopping = threading.Event()  # set on shutdown: open event streams end
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static = self._load_static()
        self.asset_version = hashlib.sha256(
            b"".join(body for body, _ in self.static.values())
        ).hexdigest()[:12]
        self.env.filters.update(
            local_time=D.local_time,
            money=charts.money,
            short_number=charts.short_number,
            human_size=text.human_size,
            project=text.short_project,
            tokens=text.tokens,
        )
        self.env.globals.update(
            url=_url,
            plural=functools.partial(plural, grouped=True),
            version=D.VERSION,
            asset=lambda name: f"/static/{name}?v={self.asset_version}",
            session_dir=str(viewer.session_dir),
        )
        # (path, file signature, a chat writing it) -> its transcript, the most recent last
        self._transcripts: OrderedDict[tuple[str, tuple[int, int, int], bool], Transcript] = (
            OrderedDict()
        )
        self._transcripts_lock = threading.Lock()

    def warm(self) -> None:
        """Do the one-off work before the first visit: the index refresh (or build),
        and loading the Markdown parser and Pygments' table of file types."""
        try:
            self.viewer.refresh()
            render.markdown("*warm*")
            render.code_lines("x = 1", filename="warm.py")
        except Exception as exc:  # the first page will say what is wrong
            print(f"taurus-ops serve: {exc}", file=sys.stderr)

    # -- plumbing --------------------------------------------------------------------------
    @staticmethod
    def _load_static() -> dict[str, tuple[bytes, str]]:
        files = {}
        for path in sorted(STATIC.iterdir()):
            if path.suffix in STATIC_TYPES:
                files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
        files["pygments.css"] = (render.pygments_css().encode(), STATIC_TYPES[".css"])
        return files

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("behind", self.viewer.behind())
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status)

    def error_page(self, exc: Exception, ref: str | None = None) -> HTMLResponse:
        status, headline = 500, "Something went wrong"
        for kind, answer in STATUS.items():
            if isinstance(exc, kind):
                status, headline = answer
                break
        hint = ""
        if isinstance(exc, D.SessionFormatError) and ref:
            hint = f"taurus-ops doctor {ref} --fix"
        message = str(exc) if isinstance(exc, D.TaurusError) else "see the server's output"
        return self.page(
            "error.html.j2",
            status=status,
            page="error",
            headline=headline,
            message=message,
            hint=hint,
        )

    def routes(self) -> list[Route]:
        def guarded(handler: Callable[..., Response]) -> Callable[[Request], Response]:
            @functools.wraps(handler)
            def run(request: Request) -> Response:
                try:
                    return handler(request)
                except D.TaurusError as exc:
                    return self.error_page(exc, request.path_params.get("ref"))
                except Exception as exc:  # a bug: one line on the console, a page for the reader
                    print(
                        f"taurus-ops serve: error on {request.url.path}: "
                        f"{type(exc).__name__}: {exc}",
                        file=sys.stderr,
                    )
                    return self.error_page(exc)

            return run

        return [
            Route("/", guarded(self.sessions_page)),
            Route("/s/{ref}", guarded(self.session_page)),
            Route("/s/{ref}/turns", guarded(self.session_turns)),
            Route("/s/{ref}/events", self.session_events),
            Route("/s/{ref}/raw/{number:int}/{block:int}", guarded(self.session_raw)),
            Route("/s/{ref}/export", guarded(self.session_export)),
            Route("/search", guarded(self.search_page)),
            Route("/stats", guarded(self.stats_page)),
            Route("/static/{name}", self.static_file),
        ]

    # -- sessions --------------------------------------------------------------------------
    def sessions_page(self, request: Request) -> Response:
        error = ""
        try:
            query = listing.parse_query(request.query_params)
        except D.UsageError as exc:
            query, error = listing.ListQuery(), str(exc)
        rows = self.viewer.sessions(archived=query.archived)
        try:
            result = listing.apply(rows, query)
        except D.UsageError as exc:
            error = str(exc)
            query = listing.ListQuery(archived=query.archived, sort=query.sort, order=query.order)
            result = listing.apply(rows, query)
        return self.page(
            "sessions.html.j2",
            status=400 if error else 200,
            page="sessions",
            query=query,
            result=result,
            error=error,
            projects=self.viewer.memo(
                ("projects", query.archived), lambda _: listing.projects(rows)[:300]
            ),
            tools=self.viewer.tool_names(),
            sorts=listing.SORTS,
            per_choices=listing.PER_PAGE_CHOICES,
            pager_links=listing.pager(
                result.page, result.pages, lambda n: _url("/", query.params(page=n))
            ),
        )

    # -- one session -----------------------------------------------------------------------
    def transcript(self, loaded: D.LoadedSession) -> Transcript:
        running = loaded.chat_pid is not None
        key = (str(loaded.path), loaded.signature, running)
        with self._transcripts_lock:
            found = self._transcripts.get(key)
            if found is not None:
                self._transcripts.move_to_end(key)
                return found
        built = Transcript(loaded.data, running=running)
        with self._transcripts_lock:
            self._transcripts[key] = built
            while len(self._transcripts) > 8:
                self._transcripts.popitem(last=False)
        return built

    def _chunk(
        self, loaded: D.LoadedSession, transcript: Transcript, start: int, end: int
    ) -> dict[str, Any]:
        base = f"/s/{loaded.id}"
        shown = transcript.units_read[start:end]
        first, following = transcript.unit(start), transcript.unit(end)
        return {
            "base": base,
            "cards": cards(shown),
            "start": start,
            "end": end,
            "last_number": shown[-1].numbers[-1] if shown else 0,
            "message_total": len(transcript.messages),
            "first_number": first.number if first is not None else 0,
            "next_number": following.number if following is not None else 0,
            "render_block": lambda block: render.render_block(block, base),
        }

    @staticmethod
    def _previous(transcript: Transcript, start: int) -> int:
        """The first message of the chunk before the one starting at unit ``start`` (0: none)."""
        if start <= 0:
            return 0
        return transcript.units_read[transcript.backward(start)[0]].number

    def session_page(self, request: Request) -> Response:
        ref = request.path_params["ref"]
        loaded = self.viewer.load(ref)
        transcript = self.transcript(loaded)
        at = request.query_params.get("at")
        target = 0
        if at == "last":
            start = transcript.backward(len(transcript.units))[0]
        elif at is not None:
            target = _number(request, "at", 1) or 1
            start = transcript.unit_for(target)
        else:
            start = transcript.unit_for(_number(request, "from", 1) or 1)
        start, end = transcript.forward(start)
        records = loaded.data.get("toolCalls")
        records = [c for c in records if isinstance(c, dict)] if isinstance(records, list) else []
        tools = Counter(str(c["tool"]) for c in records if c.get("tool"))
        chunk = self._chunk(loaded, transcript, start, end)
        return self.page(
            "session.html.j2",
            page="session",
            s=loaded,
            data=loaded.data,
            tools=tools.most_common(),
            tool_count=len(records),
            message_count=len(transcript.messages),
            chat_command=f"taurus chat -s {loaded.id}",
            formats=[("markdown", "Markdown"), ("html", "HTML"), ("json", "JSON")],
            events=_url(f"/s/{loaded.id}/events"),
            target=target,
            terms=request.query_params.get("q", "")[:200],
            prev_number=self._previous(transcript, start),
            **chunk,
        )

    def session_turns(self, request: Request) -> Response:
        loaded = self.viewer.load(request.path_params["ref"], context=False)
        transcript = self.transcript(loaded)
        before = _number(request, "before", 1)
        if before is not None:
            start, end = transcript.backward(transcript.unit_for(before))
        else:
            start, end = transcript.forward(transcript.unit_for(_number(request, "from", 1) or 1))
        chunk = self._chunk(loaded, transcript, start, end)
        chunk["prev_number"] = self._previous(transcript, start)
        chunk["direction"] = "before" if before is not None else "after"
        response = self.page("_chunk.html.j2", **chunk)
        response.headers["x-taurus-messages"] = str(len(transcript.messages))
        return response

    def session_raw(self, request: Request) -> Response:
        loaded = self.viewer.load(request.path_params["ref"], context=False)
        body = block_text(loaded.data, request.path_params["number"], request.path_params["block"])
        if body is None:
            raise D.SessionNotFound("that message or block is not in the session")
        return Response(
            body,
            media_type="text/plain; charset=utf-8",
            headers={"content-security-policy": "default-src 'none'; sandbox"},
        )

    def session_export(self, request: Request) -> Response:
        fmt_name = request.query_params.get("format", "markdown")
        done = self.viewer.export(request.path_params["ref"], fmt_name, _flag(request, "redact"))
        headers = {
            "content-disposition": f'attachment; filename="{done.file_name}"',
            "content-security-policy": "default-src 'none'; sandbox",
        }
        if done.redacted is not None:
            headers["x-taurus-redacted"] = str(done.redacted)
        return Response(done.text, media_type=done.media_type, headers=headers)

    async def session_events(self, request: Request) -> Response:
        ref = request.path_params["ref"]
        try:
            first, path = await anyio.to_thread.run_sync(self.viewer.signature, ref)
        except D.TaurusError as exc:
            return self.error_page(exc, ref)
        if first is None:
            return self.error_page(D.SessionNotFound(f"no session {ref!r}"), ref)

        async def stream() -> AsyncIterator[str]:
            nonlocal path
            yield "retry: 3000\n\n"
            last: tuple[int, int, int] | None = first
            began = quiet = time.monotonic()
            while time.monotonic() - began < STREAM_SECONDS and not self.stopping.is_set():
                await anyio.sleep(POLL_SECONDS)
                now, path = await anyio.to_thread.run_sync(self.viewer.signature, ref, path)
                if now != last:
                    last, quiet = now, time.monotonic()
                    event = "gone" if now is None else "change"
                    yield f"event: {event}\ndata: {json.dumps({'size': now[0] if now else 0})}\n\n"
                    if now is None:
                        return
                elif time.monotonic() - quiet > HEARTBEAT_SECONDS:
                    quiet = time.monotonic()
                    yield ": still here\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    # -- search ----------------------------------------------------------------------------
    def search_page(self, request: Request) -> Response:
        params = request.query_params
        role = params.get("role") or None
        search = D.SearchRequest(
            text=(params.get("q") or "").strip()[:500],
            role=role,
            tool=(params.get("tool") or "").strip()[:64] or None,
            since=(params.get("since") or "").strip()[:64] or None,
            archived=_flag(request, "archived"),
            case_sensitive=_flag(request, "case"),
        )
        hits: list[D.SearchHit] = []
        error = ""
        page_number, pages, total = 1, 1, 0
        took = 0.0
        if search.text:
            began = time.perf_counter()
            try:
                hits = self.viewer.search(search)
                total = len(hits)
                pages = max(1, -(-total // SEARCH_PER_PAGE))
                page_number = min(_number(request, "page", 1) or 1, pages)
                hits = hits[(page_number - 1) * SEARCH_PER_PAGE : page_number * SEARCH_PER_PAGE]
                self.viewer.snippets(search, hits)
            except D.UsageError as exc:
                error, hits = str(exc), []
            took = time.perf_counter() - began
        return self.page(
            "search.html.j2",
            status=400 if error else 200,
            page="search",
            search=search,
            hits=hits,
            total=total,
            error=error,
            took=took,
            page_number=page_number,
            pages=pages,
            pager_links=listing.pager(
                page_number,
                pages,
                lambda n: _url("/search", {**dict(request.query_params), "page": n}),
            ),
            tools=self.viewer.tool_names(),
            roles=D.SEARCH_ROLES,
            marked=self._marked,
        )

    @staticmethod
    def _marked(hit: D.SearchHit) -> Markup:
        out: list[Markup] = []
        last = 0
        for start, end in hit.highlights:
            out.append(Markup.escape(hit.snippet[last:start]))
            out.append(Markup("<mark>{}</mark>").format(hit.snippet[start:end]))
            last = end
        out.append(Markup.escape(hit.snippet[last:]))
        return Markup("").join(out)

    # -- stats -----------------------------------------------------------------------------
    def stats_page(self, request: Request) -> Response:
        since = (request.query_params.get("since") or "").strip()[:64]
        days = _number(request, "days", 1, 3660) or 30
        error = ""
        try:
            figures, moment = self.viewer.stats(since or None)
        except D.UsageError as exc:
            error, since = str(exc), ""
            figures, moment = self.viewer.stats(None)
        usage, projects = self.viewer.memo(
            ("stats", since, int(time.time() // 60) if since else 0),
            lambda rows: self._per_day_and_project(rows, moment),
        )
        labels, shifted = chart_days(figures["sessionsPerDay"], days)
        return self.page(
            "stats.html.j2",
            status=400 if error else 200,
            page="stats",
            f=figures,
            since=since,
            days=days,
            day_choices=DAY_CHOICES,
            error=error,
            **day_charts(labels, figures["sessionsPerDay"], usage),
            **top_charts(figures, projects),
            total_tokens=sum(
                sum(v for k, v in t.items() if k in D.USAGE_KEYS)
                for t in figures["tokens"].values()
            ),
            window=(labels[0], labels[-1]),
            shifted=shifted,
            price_note=D.PRICE_NOTE,
        )

    @staticmethod
    def _per_day_and_project(
        rows: list[D.SessionRow], since: datetime | None
    ) -> tuple[dict[str, dict[str, float]], list[tuple[str, int]]]:
        scope = listing.in_scope(rows, since)
        return listing.per_day(scope), listing.per_project(scope)

    # -- static ----------------------------------------------------------------------------
    async def static_file(self, request: Request) -> Response:
        found = self.static.get(request.path_params["name"])
        if found is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        body, media = found
        return Response(body, media_type=media, headers={"cache-control": "private, max-age=86400"})


TOKEN_SERIES = (
    ("input", "inputTokens"),
    ("output", "outputTokens"),
    ("cache read", "cacheReadTokens"),
    ("cache write", "cacheCreationTokens"),
)


def chart_days(per_day: dict[str, int], days: int) -> tuple[list[str], bool]:
    """The ``days`` local days the charts show, oldest first, ending today, or, when no
    session was made in them, on the last day that had one (then True)."""
    last_day = datetime.now(UTC).astimezone().date()
    newest = max(per_day, default="")
    shifted = bool(newest) and newest < (last_day - timedelta(days=days - 1)).isoformat()
    if shifted:  # nothing in the last days: show the last days that had sessions
        last_day = datetime.fromisoformat(newest).date()
    return [(last_day - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)], shifted


def day_charts(
    labels: list[str], per_day: dict[str, int], usage: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The stats page's charts by day (sessions, tokens, cost) and the window's totals."""
    days = len(labels)
    ticks = [datetime.fromisoformat(d).strftime("%b %-d") for d in labels]
    token_series = [
        (name, [usage.get(d, {}).get(key, 0) for d in labels]) for name, key in TOKEN_SERIES
    ]
    return {
        "sessions_chart": charts.column_chart(
            f"Sessions per day, last {days} days",
            labels,
            [("sessions", [per_day.get(d, 0) for d in labels])],
            tick_labels=ticks,
        ),
        "tokens_chart": charts.column_chart(
            f"Tokens per day, last {days} days", labels, token_series, tick_labels=ticks
        ),
        "token_legend": charts.legend([name for name, _ in token_series]),
        "cost_chart": charts.column_chart(
            f"Estimated cost per day (USD), last {days} days",
            labels,
            [("cost", [usage.get(d, {}).get("cost", 0.0) for d in labels])],
            value_text=charts.money,
            tick_labels=ticks,
        ),
        "window_tokens": sum(sum(values) for _, values in token_series),
        "window_cost": sum(usage.get(d, {}).get("cost", 0.0) for d in labels),
    }


def top_charts(figures: dict[str, Any], projects: list[tuple[str, int]]) -> dict[str, Markup]:
    """The stats page's top lists: tools used, files most modified, sessions per project."""
    return {
        "tools_chart": charts.bar_list(
            "Tools used",
            [(n, c, _url("/", {"tool": n})) for n, c in list(figures["tools"].items())[:12]],
        ),
        "files_chart": charts.bar_list(
            "Most modified files",
            [(n, c, None) for n, c in list(figures["modifiedFiles"].items())[:12]],
            css="c1",
        ),
        "projects_chart": charts.bar_list(
            "Sessions per project",
            [
                (text.short_project(p) or "(no folder recorded)", c, _url("/", {"project": p}))
                for p, c in projects[:12]
            ],
            css="c2",
        ),
    }


def create_app(
    config: D.Config, token: str | None = None, host: str = "127.0.0.1", port: int = 0
) -> Guard:
    """The viewer of ``config``'s sessions as an ASGI app, behind its guard (see
    ``taurus_ops.web.security``).

    ``token=None`` turns the token check off (``--no-token``); the Host check stays.
    The pages' ``Site`` is ``app.app.state.site``.
    """
    return site_app(Site(D.Viewer(config)), token, host, port)


def site_app(site: Site, token: str | None, host: str, port: int) -> Guard:
    """``site``'s pages as an ASGI app, behind its guard."""

    def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return Response("only GET and HEAD\n", status_code=405, media_type="text/plain")
        return site.page(
            "error.html.j2",
            status=404,
            page="error",
            headline="No such page",
            message=f"{request.url.path} is not a page of this viewer.",
            hint="",
        )

    app = Starlette(routes=site.routes(), exception_handlers={404: not_found, 405: not_found})
    app.state.site = site
    return Guard(app, token, HostRule(host), cookie_name(port))
