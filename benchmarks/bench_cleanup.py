"""Cleanup vs the tutorial's recipes, on the 10,000-session corpus.

    python -m benchmarks.bench_cleanup [--count 10000] [--repeat 3]

Each timed run gets a fresh copy of the corpus in a temporary home (cleanup moves
files; the copy is not timed). Rows:

* retentionDays=30 vs ``find ~/.taurus/sessions/ -name "*.json" -mtime +30 -exec mv {} ~/.taurus/archive/ \\;``
* maxSessions=20 vs ``ls -t *.json | tail -n +21 | xargs -I {} mv {} ../archive/``
* ``cleanup --dry-run`` vs ``find ... -mtime +30`` (listing only)

Taurus runs as the installed command (start-up included). It reads every session
to use its ``updated`` time (the recipes trust mtimes), checks locks and names,
and fsyncs each move; ``find -exec mv`` starts one ``mv`` per file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from benchmarks.corpus import ensure_corpus

FIND_MV = (
    'mkdir -p ~/.taurus/archive && find ~/.taurus/sessions/ -name "*.json" -mtime +30 '
    "-exec mv {} ~/.taurus/archive/ \\;"
)
LS_TAIL = (
    "mkdir -p ~/.taurus/archive && cd ~/.taurus/sessions/ && "
    "ls -t *.json | tail -n +21 | xargs -I {} mv {} ../archive/"
)
FIND_LIST = 'find ~/.taurus/sessions/ -name "*.json" -mtime +30'
TAURUS = f"{sys.executable} -m taurus_ops.cli"


def timed(corpus: Path, command: str, config: str, repeat: int) -> tuple[float, int]:
    """Best seconds of ``command`` over ``repeat`` fresh copies; and the files archived."""
    best, moved = float("inf"), 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-cleanup-") as tmp:
            home = Path(tmp)
            taurus = home / ".taurus"
            taurus.mkdir(mode=0o700)
            subprocess.run(["cp", "-a", str(corpus), str(taurus / "sessions")], check=True)
            (taurus / "config.yaml").write_text(config)
            env = {**os.environ, "HOME": str(home), "TAURUS_HOME": str(taurus)}
            start = time.perf_counter()
            subprocess.run(
                command, shell=True, check=True, stdout=subprocess.DEVNULL, env=env,
                executable="/bin/bash",
            )  # fmt: skip
            best = min(best, time.perf_counter() - start)
            archive = taurus / "archive"
            moved = len(list(archive.iterdir())) if archive.exists() else 0
    return best, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpus = ensure_corpus(args.count)
    retention = "sessions:\n  retentionDays: 30\n"
    keep20 = "sessions:\n  maxSessions: 20\n"
    ours_ret, n_ours = timed(corpus, f"{TAURUS} cleanup", retention, args.repeat)
    theirs_ret, n_theirs = timed(corpus, FIND_MV, retention, args.repeat)
    ours_max, m_ours = timed(corpus, f"{TAURUS} cleanup", keep20, args.repeat)
    theirs_max, m_theirs = timed(corpus, LS_TAIL, keep20, args.repeat)
    ours_dry, _ = timed(corpus, f"{TAURUS} cleanup --dry-run", retention, args.repeat)
    theirs_dry, _ = timed(corpus, FIND_LIST, retention, args.repeat)
    print(f"{args.count} sessions over 90 days")
    print(f"archived: retentionDays=30 {n_ours} (find -mtime +30: {n_theirs}); "
          f"maxSessions=20 {m_ours} (ls -t | tail: {m_theirs})")  # fmt: skip
    report(
        [
            ("cleanup, retentionDays=30 (archive)", ours_ret, theirs_ret),
            ("cleanup, maxSessions=20 (archive)", ours_max, theirs_max),
            ("cleanup --dry-run (plan only)", ours_dry, theirs_dry),
        ]
    )


if __name__ == "__main__":
    main()
