"""`taurus-ops cleanup` against `find -mtime` and `ls -t | tail`.

    python -m benchmarks.bench_cleanup [--count 10k] [--repeat 3]

Rules: ``sessions.retentionDays: 30`` (about two thirds of the corpus is older) and
``sessions.maxSessions: 20``. Baselines:

* ``cleanup --dry-run``: ``find DIR -name '*.json' -mtime +30`` (the plan, listed);
* ``cleanup`` (retentionDays): the tutorial's ``find ... -mtime +30 -exec mv {}
  ~/.taurus/archive/ \\;`` (one ``mv`` per file) and ``find ... -exec mv -t ARCHIVE {} +``;
* ``cleanup`` (maxSessions): ``ls -t | tail -n +21 | xargs mv -t ../archive/``.

A run that moves files gets its own home over the corpus (hard links, made untimed
before each run), so every run starts from the whole corpus. Taurus decides by each
session's ``updated`` time rather than the file's mtime, skips a session open in a
chat, a named one and the newest one, and makes each move durable.
"""

from __future__ import annotations

import shlex

from benchmarks.common import BUDGET, BenchHome, Row, Timing, bench_main, best, row

RETENTION = "sessions:\n  retentionDays: 30\n"
KEEP_20 = "sessions:\n  maxSessions: 20\n"
OLD = "-name '*.json' -mtime +30"


def timed_move(bench: BenchHome, config: str, command: str, repeat: int) -> tuple[Timing, int]:
    """Best run of ``command`` (``{home}`` is a fresh home's ``.taurus``); files archived.

    Each run gets a new home over the corpus (hard links, made before the clock starts).
    """
    found: Timing | None = None
    moved = 0
    for _ in range(repeat):
        home = bench.fresh_copy(config)
        try:
            timing = best(command.format(home=shlex.quote(str(home.home))), 1, home.env)
            archive = home.home / "archive"
            moved = sum(1 for _ in archive.iterdir()) if archive.exists() else 0
        finally:
            home.close()
        if found is None or timing.seconds < found.seconds:
            found = timing
        if timing.seconds > BUDGET:
            break
    assert found is not None
    return found, moved


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    folder = shlex.quote(str(bench.sessions))
    listing = best(f"find {folder} {OLD}", repeat)
    with bench.config(RETENTION):
        dry = best(f"{ops} cleanup --dry-run", repeat, env)
    out = [row("`cleanup --dry-run`, retentionDays=30", dry, "`find -mtime +30`", listing)]
    archive = "mkdir -p {home}/archive && "
    each = archive + f"find {{home}}/sessions/ {OLD} -exec mv {{{{}}}} {{home}}/archive/ \\;"
    batch = archive + f"find {{home}}/sessions/ {OLD} -exec mv -t {{home}}/archive/ {{{{}}}} +"
    tail = archive + "cd {home}/sessions && ls -t | tail -n +21 | xargs mv -t ../archive/"
    ours, moved = timed_move(bench, RETENTION, f"{ops} cleanup", repeat)
    per_file, moved_find = timed_move(bench, RETENTION, each, repeat)
    batched, _ = timed_move(bench, RETENTION, batch, repeat)
    label = "`cleanup`, retentionDays=30 (archives 2/3)"
    out.append(row(label, ours, "`find -mtime +30 -exec mv {} \\;`", per_file, tutorial=True))
    out.append(row(label, ours, "`find -mtime +30 -exec mv -t ARCHIVE {} +`", batched))
    kept, moved_max = timed_move(bench, KEEP_20, f"{ops} cleanup", repeat)
    shell, moved_tail = timed_move(bench, KEEP_20, tail, repeat)
    label = "`cleanup`, maxSessions=20 (archives all but 20)"
    out.append(row(label, kept, "`ls -t | tail -n +21 | xargs mv -t`", shell))
    print(f"archived: retentionDays=30 {moved:,} (find -mtime +30: {moved_find:,}); "
          f"maxSessions=20 {moved_max:,} (ls -t | tail: {moved_tail:,})")  # fmt: skip
    return out


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
