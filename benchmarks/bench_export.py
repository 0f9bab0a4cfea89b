"""`taurus-ops export` of one session vs the tutorial's export-session.sh.

    python -m benchmarks.bench_export [--count 10000] [--repeat 5]

The script (benchmarks/recipes/export-session.sh, verbatim from the tutorial)
writes FILE.md next to FILE, so it runs on a copy in a scratch folder. Timed on
a median-sized and on the largest session of the corpus, Markdown and HTML.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.common import corpus_bench, report, time_shell

SCRIPT = Path(__file__).parent / "recipes" / "export-session.sh"


def main() -> None:
    args, bench = corpus_bench(repeat=5)
    base, sessions, env = bench.base, bench.sessions, bench.env
    ops = bench.ops
    by_size = sorted(sessions.iterdir(), key=lambda p: p.stat().st_size)
    scratch = base / "scratch"
    scratch.mkdir()
    rows = []
    for label, path in (("median", by_size[len(by_size) // 2]), ("largest", by_size[-1])):
        copy = scratch / path.name
        shutil.copy(path, copy)
        sid = path.stem.split("_", 1)[1]
        kb = path.stat().st_size / 1024
        script = time_shell(f"bash {SCRIPT} {copy}", args.repeat)
        md = time_shell(f"{ops} export {sid} -o {scratch}/o.md --force", args.repeat, env)
        html = time_shell(
            f"{ops} export {sid} -f html -o {scratch}/o.html --force", args.repeat, env
        )
        rows.append((f"export markdown, {label} ({kb:.0f} KB)", md, script))
        rows.append((f"export html, {label} ({kb:.0f} KB)", html, script))
    report(rows)
    bench.close()


if __name__ == "__main__":
    main()
