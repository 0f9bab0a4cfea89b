"""`taurus-ops search` on 10,000 sessions vs the tutorial's `grep -l`.

    python -m benchmarks.bench_search [--count 10000] [--repeat 3]

Recipe ("Finding Session IDs", method 2): `grep -l "authentication" ~/.taurus/sessions/*.json`.
Taurus: `taurus-ops search -l authentication`, timed cold (no index: the first run
builds it) and warm (the index is only refreshed). Words: one in many first messages
(grep stops early in each file), one that occurs nowhere (grep reads every byte),
and a phrase. The in-process query time (no Python start-up, no config load) is
printed too.
"""

from __future__ import annotations

import os

from benchmarks.common import corpus_bench, report, time_call, time_shell

WORDS = ["authentication", "walrus", "connection pool"]


def main() -> None:
    args, bench = corpus_bench(repeat=3)
    home, sessions, env = bench.home, bench.sessions, bench.env
    ops = bench.ops
    os.environ.update(env)
    from taurus_ops.config import load_config
    from taurus_ops.ops.search import SearchQuery, parse_terms, search
    from taurus_ops.store.index import Index

    rows = []
    for word in WORDS:
        (home / "index.sqlite").unlink(missing_ok=True)
        cold = time_shell(f"{ops} search -l '{word}' > /dev/null || true", 1, env)
        warm = time_shell(f"{ops} search -l '{word}' > /dev/null || true", args.repeat, env)
        ranked = time_shell(f"{ops} search '{word}' > /dev/null || true", args.repeat, env)
        grep = time_shell(f"grep -l '{word}' {sessions}/*.json > /dev/null || true", args.repeat)
        with Index(load_config()) as index:
            query = SearchQuery(parse_terms(f'"{word}"'))
            inproc = time_call(lambda q=query, ix=index: search(ix, q), args.repeat)
        rows.append((f"search -l {word!r}: cold index", cold, grep))
        rows.append((f"search -l {word!r}: warm index", warm, grep))
        rows.append((f"search {word!r} (ranked, snippets): warm", ranked, grep))
        rows.append((f"search {word!r}: in-process query", inproc, grep))
    size = sum(p.stat().st_size for p in sessions.iterdir()) / 1e6
    index_size = (home / "index.sqlite").stat().st_size / 1e6
    print(f"{args.count} sessions, {size:.0f} MB; index {index_size:.0f} MB")
    report(rows)
    bench.close()


if __name__ == "__main__":
    main()
