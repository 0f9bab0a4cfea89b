"""`taurus-ops export` of one session against the tutorial's export-session.sh.

    python -m benchmarks.bench_export [--count 10k] [--repeat 5]

The script (``recipes/export-session.sh``, verbatim from the tutorial: two ``jq``
calls) writes FILE.md next to FILE, so it runs on a copy in a scratch folder. Timed
on the median-sized and on the largest session of the corpus; Taurus finds the
session by id among all of them, as a user names it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.common import BenchHome, Row, bench_main, best, row

SCRIPT = Path(__file__).parent / "recipes" / "export-session.sh"


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    by_size = sorted(bench.files(), key=lambda p: p.stat().st_size)
    scratch = bench.base / "scratch"
    scratch.mkdir(exist_ok=True)
    out: list[Row] = []
    try:
        for label, path in (("median", by_size[len(by_size) // 2]), ("largest", by_size[-1])):
            copy = scratch / path.name
            shutil.copy(path, copy)
            sid = path.stem.split("_", 1)[1]
            size = path.stat().st_size
            shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
            script = ("`export-session.sh`", best(f"bash {SCRIPT} {copy}", repeat), "", True)
            md = best(f"{ops} export {sid} -o {scratch}/o.md --force", repeat, env)
            html = best(f"{ops} export {sid} -f html -o {scratch}/o.html --force", repeat, env)
            print(f"{label} session: {shown}")
            out.append(row(f"`export` markdown, {label} session", md, *script))
            out.append(row(f"`export -f html`, {label} session", html, *script))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def main() -> None:
    bench_main(rows, __doc__, repeat=5)


if __name__ == "__main__":
    main()
