"""`taurus-ops stats` on 10,000 sessions vs the tutorial's session-stats.sh.

    python -m benchmarks.bench_stats [--count 10000] [--repeat 3]

The script is benchmarks/recipes/session-stats.sh, copied verbatim from the
tutorial, run with HOME pointing at a folder whose .taurus/sessions holds the
corpus (hard links, so the mtimes `find -mtime -7` looks at are the corpus's).
Taurus is timed warm (index up to date), cold (no index yet) and in-process.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.common import corpus_bench, report, time_call, time_shell

SCRIPT = Path(__file__).parent / "recipes" / "session-stats.sh"


def main() -> None:
    args, bench = corpus_bench(repeat=3)
    sessions, env = bench.sessions, bench.env
    os.environ.update(env)
    ops = bench.ops
    script = time_shell(f"bash {SCRIPT}", args.repeat, env)
    cold = time_shell(f"{ops} stats", 1, env)
    warm = time_shell(f"{ops} stats", args.repeat, env)
    warm_json = time_shell(f"{ops} stats --json", args.repeat, env)

    from taurus_ops.config import load_config
    from taurus_ops.ops.stats import session_stats
    from taurus_ops.store.index import Index

    with Index(load_config()) as index:
        inproc = time_call(lambda: session_stats(index), args.repeat)
    print(
        f"{args.count} sessions, {sum(p.stat().st_size for p in sessions.iterdir()) / 1e6:.0f} MB"
    )
    report(
        [
            ("stats: cold (builds the index)", cold, script),
            ("stats: warm", warm, script),
            ("stats --json: warm", warm_json, script),
            ("stats: in-process (refresh + figures)", inproc, script),
        ]
    )
    bench.close()


if __name__ == "__main__":
    main()
