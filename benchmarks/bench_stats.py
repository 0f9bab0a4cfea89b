"""`taurus-ops stats` against the tutorial's session-stats.sh and a one-pass version of it.

    python -m benchmarks.bench_stats [--count 10k] [--repeat 3]

``recipes/session-stats.sh`` is the tutorial's script verbatim: three ``jq`` passes
over ``~/.taurus/sessions/*.json``. Past ARG_MAX (about 40,000 sessions here) the
shell cannot start them and the script prints zeros without a word (its errors go
to /dev/null), so it is reported as "argument list too long" instead of timed.
``recipes/session-stats-find.sh`` prints the same figures from one pass of
``find -exec jq {} +`` counted in awk: what a competent user would write.
Taurus is timed cold (no index: ``stats`` builds it) and warm.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks.common import BenchHome, Row, Timing, Unrunnable, bench_main, best, row

RECIPES = Path(__file__).parent / "recipes"
TUTORIAL = RECIPES / "session-stats.sh"
ONE_PASS = RECIPES / "session-stats-find.sh"


def glob_fits(bench: BenchHome) -> bool:
    """Whether ``jq ... ~/.taurus/sessions/*.json`` fits in the kernel's argument limit."""
    folder = str(bench.sessions)
    names = sum(len(folder) + 2 + len(p.name) + 8 for p in bench.files())  # text, NUL, pointer
    environment = sum(len(k) + len(v) + 10 for k, v in {**os.environ, **bench.env}.items())
    return names + environment + 4096 < os.sysconf("SC_ARG_MAX")


def checked(command: str, bench: BenchHome) -> None:
    """Run a stats script once and check it counted every session."""
    env = {**os.environ, **bench.env}
    text = subprocess.run(command, shell=True, env=env, capture_output=True, text=True).stdout
    if f"Total sessions: {bench.count}" not in text:
        raise Unrunnable(f"wrong answer ({text.splitlines()[2:3]})")


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    tutorial: Timing | None = None
    note = ""
    try:
        if not glob_fits(bench):
            raise Unrunnable("argument list too long")
        checked(f"bash {TUTORIAL}", bench)
        tutorial = best(f"bash {TUTORIAL}", repeat, env)
    except Unrunnable as exc:
        note = str(exc)
    one_pass_command = f"bash {ONE_PASS} {bench.sessions}"
    checked(one_pass_command, bench)
    one_pass = ("the same from one `find -exec jq {} +`", best(one_pass_command, repeat, env))
    script = ("`session-stats.sh`", tutorial, note, True)
    bench.drop_index()
    cold = best(f"{ops} stats", 1, env)
    warm = best(f"{ops} stats", repeat, env)
    as_json = best(f"{ops} stats --json", repeat, env)
    return [
        row("`stats`, cold (builds the index)", cold, *one_pass),
        row("`stats`, cold (builds the index)", cold, *script),
        row("`stats`, warm", warm, *one_pass),
        row("`stats`, warm", warm, *script),
        row("`stats --json`, warm", as_json, *one_pass),
    ]


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
