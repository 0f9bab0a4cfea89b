"""`taurus-ops serve` on 10,000 sessions: time to first byte and full load of each page.

    python -m benchmarks.bench_serve [--count 10000] [--repeat 5]

A real `taurus-ops serve` subprocess (uvicorn) on 127.0.0.1 serves the corpus plus a
session of 2,000 messages and one of 20 MB; a real HTTP client (`http.client`, a new
connection per request) times each page: time to first byte (the status line and
headers arrived) and full load (the page, then its stylesheets and script, as a
browser without a cache fetches them). Best of ``--repeat`` runs, with the median.
Beside each page: the command that shows the same data in a terminal
(`taurus-ops list`, `show`, `search`, `stats`), as a whole process.

Three cases are timed apart: the 20 MB session right after its file changed (it is
parsed again), the sessions page right after a chat saved a session (the index is
refreshed), and the first page after start-up (the index is refreshed, or built).
"""

from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_chat import big_document
from benchmarks.common import BenchHome, corpus_bench, time_shell
from benchmarks.corpus import TOPICS
from taurus_ops.store import Session, SessionStore

ASSETS = ("app.css", "pygments.css", "app.js")
BIG_MB = 20


@dataclass
class Timing:
    ttfb: float
    full: float
    size: int


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.cookie = f"taurus_ops_{port}={token}"
        self.assets: list[str] = []

    def get(self, path: str) -> tuple[int, bytes, float, float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            start = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": self.cookie, "Accept": "text/html"})
            response = conn.getresponse()
            first = time.perf_counter() - start
            body = response.read()
            return response.status, body, first, time.perf_counter() - start
        finally:
            conn.close()

    def load(self, path: str) -> Timing:
        """One page as a browser without a cache loads it: the HTML, then its assets."""
        status, body, ttfb, full = self.get(path)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
        size = len(body)
        for asset in re.findall(rb"(/static/[\w.]+\?v=\w+)", body):
            began = time.perf_counter()
            _, data, _, _ = self.get(asset.decode())
            full += time.perf_counter() - began
            size += len(data)
        return Timing(ttfb, full, size)


def measure(client: Client, path: str, repeat: int, before: object = None) -> list[Timing]:
    out = []
    for _ in range(repeat):
        if callable(before):
            before()
        out.append(client.load(path))
    return out


def add_sessions(bench: BenchHome) -> tuple[Path, Path]:
    """A 2,000-message session and a 20 MB one, saved into the corpus copy."""
    store = SessionStore(bench.sessions, bench.home / "archive")
    paths = []
    for sid, messages, result in (("msgs2000", 2000, 2000), ("big20mb0", 4000, 4000)):
        doc = big_document(sid, messages, result_size=result)
        if sid == "big20mb0":  # scale to the size wanted
            probe = len(Session(doc).to_bytes())
            doc = big_document(sid, int(messages * BIG_MB * 1e6 / probe) // 4 * 4, result)
        session = Session(doc)
        session.path = store.path_for(sid, doc["created"])
        store.save(session, touch=False)
        paths.append(session.path)
    return paths[0], paths[1]


def start_server(bench: BenchHome) -> tuple[subprocess.Popen[str], int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "taurus_ops.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **bench.env},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"http://[^:]+:(\d+)/\?token=(\S+)", line)
        if found:
            return proc, int(found.group(1)), found.group(2)
    raise SystemExit(f"serve did not start: {proc.communicate()[1]}")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def main() -> None:
    args, bench = corpus_bench(repeat=5)
    repeat = args.repeat
    mid, big = add_sessions(bench)
    ops, env = bench.ops, bench.env
    built = time_shell(f"{ops} index rebuild", 1, env)
    count = sum(1 for _ in bench.sessions.iterdir())
    big_messages = len(SessionStore(bench.sessions).load(big).messages)
    print(
        f"{count:,} sessions; the 2,000-message session {mid.stat().st_size / 1e6:.1f} MB,"
        f" the big one {big.stat().st_size / 1e6:.1f} MB ({big_messages:,} messages);"
        f" index built in {built:.1f} s"
    )
    began = time.perf_counter()
    proc, port, token = start_server(bench)
    client = Client(port, token)
    while True:
        try:
            client.get("/static/app.css")
            break
        except OSError:
            time.sleep(0.02)
    started = time.perf_counter() - began
    first = client.load("/")
    print(f"serve answers {started:.2f} s after starting; first sessions page {first.full:.3f} s")

    pages = [
        ("sessions page (newest 50)", "/", f"{ops} list --limit 50"),
        ("sessions, sorted by cost, page 100", "/?sort=cost&page=100", f"{ops} list"),
        ("sessions, text filter", "/?q=oauth", f"{ops} list"),
        ("session of 2,000 messages", "/s/msgs2000", f"{ops} show msgs2000"),
        ("  ... at its last message", "/s/msgs2000?at=last", f"{ops} show msgs2000 --last 40"),
        (f"session of {BIG_MB} MB", "/s/big20mb0", f"{ops} show big20mb0"),
        ("  ... its next chunk (lazy load)", "/s/big20mb0/turns?from=200", ""),
        ("search 'authentication', again", "/search?q=authentication",
         f"{ops} search authentication"),
        ("stats, again", "/stats", f"{ops} stats"),
    ]  # fmt: skip
    rows = []
    for label, path, command in pages:
        client.load(path)  # warm: the parse cache, the index connection of this thread
        times = measure(client, path, repeat)
        cli = time_shell(f"{command} > /dev/null", repeat, env) if command else None
        rows.append((label, times, cli, command.replace(ops, "taurus-ops")))

    # a query or a stats window not asked for before: nothing is kept from an earlier page
    topics = iter(TOPICS[1:])  # each in about 1 session in 14, as "authentication"
    fresh = [
        client.load("/search?q=" + urllib.parse.quote(f'"{next(topics)}"')) for _ in range(repeat)
    ]
    cli = time_shell(f"{ops} search 'rate limiting' > /dev/null", repeat, env)
    rows.append(("search, a new topic each time", fresh, cli, "taurus-ops search 'rate limiting'"))
    words = iter(["token", "handler", "session", "config", "module", "import", "request",
                  "response", "cache", "index", "update", "user", "value", "query", "loop"])  # fmt: skip
    fresh = [client.load(f"/search?q={next(words)}") for _ in range(repeat)]
    cli = time_shell(f"{ops} search token > /dev/null", repeat, env)
    rows.append(("search, a word in every session", fresh, cli, "taurus-ops search token"))
    fresh = [client.load(f"/stats?since={days}d") for days in range(2, 2 + repeat)]
    cli = time_shell(f"{ops} stats --since 30d > /dev/null", repeat, env)
    rows.append(("stats, a new --since each time", fresh, cli, "taurus-ops stats --since 30d"))

    def touch_big() -> None:  # a chat saved the big session: parsed again on the next view
        stamp = time.time()
        os.utime(big, (stamp, stamp))

    rows.append(
        (f"session of {BIG_MB} MB, file just changed", measure(client, "/s/big20mb0", 3, touch_big),
         None, "")
    )  # fmt: skip
    store = SessionStore(bench.sessions, bench.home / "archive")
    saved = store.load(mid)

    def chat_saves() -> None:  # a save renames a new file into the folder: the index refreshes
        saved.messages.append({"role": "user", "content": "one more"})
        store.save(saved, durable=False)

    rows.append(
        ("sessions page, a chat just saved", measure(client, "/", repeat, chat_saves), None, "")
    )
    proc.terminate()
    proc.wait(timeout=30)

    print()
    head = f"{'page':<38} {'first byte ms':>13} {'full load ms':>12} {'median ms':>9} {'KB':>6}"
    print(head + f"  {'CLI s':>6}  same data in a terminal")
    for label, times, cli, command in rows:
        best_first = min(t.ttfb for t in times)
        best_full = min(t.full for t in times)
        median = statistics.median(t.full for t in times)
        kb = times[0].size / 1024
        cli_text = f"{cli:6.3f}" if cli is not None else " " * 6
        print(
            f"{label:<38} {fmt_ms(best_first):>13} {fmt_ms(best_full):>12} {fmt_ms(median):>9}"
            f" {kb:6.0f}  {cli_text}  {command}"
        )
    slow = [label for label, times, _, _ in rows if min(t.full for t in times) > 0.2]
    print()
    print("every page under 200 ms" if not slow else f"over 200 ms: {', '.join(slow)}")
    bench.close()


if __name__ == "__main__":
    main()
