"""`taurus-ops list` against what a user would run instead.

    python -m benchmarks.bench_list [--count 10k] [--repeat 3]

Baselines (each a whole shell pipeline, run in bash):

* ``list --limit 10``: ``ls -t DIR | head -10`` and one ``jq`` over those ten files
  for the id, date and first message (trusts mtimes, as ``ls -t`` does); and the
  tutorial's "Finding Session IDs": ``ls -lt | head -10`` plus its loop running
  ``jq -r '.messages[0].content'`` once per file (timed on 200 files and scaled
  when there are more; labelled as the tutorial's).
* ``list`` and ``list --json``: one ``jq`` process per ARG_MAX of files
  (``find DIR -name '*.json' -exec jq ... {} +``) printing the same fields, sorted
  by ``updated`` (``sort -r``, or ``jq -s 'sort_by(.updated)'`` for JSON).

Taurus runs warm (index current), with no index (deleted before each run), and with a
retention rule configured (``sessions.retentionDays: 30``, which adds the "a rule will
remove N sessions" warning to every ``list``).
"""

from __future__ import annotations

import shlex

from benchmarks.common import BenchHome, Row, attempt, bench_main, best, find_all, row

RETENTION = "sessions:\n  retentionDays: 30\n"
FIELDS = "[.updated, .sessionId, (.messages | length), (.messages[0].content | tostring | .[0:70])]"
SAMPLE = 200


def newest_ten(bench: BenchHome) -> str:
    folder = shlex.quote(str(bench.sessions))
    return f"cd {folder} && ls -t | head -10 | xargs jq -r '{FIELDS} | @tsv'"


def tutorial_loop(bench: BenchHome) -> tuple[str, float]:
    """The tutorial's loop over every file (over the first 200 when there are more) and its scale."""
    folder = shlex.quote(str(bench.sessions))
    files = f"$(ls {folder} | head -{SAMPLE})" if bench.count > SAMPLE else "*.json"
    loop = (
        f'cd {folder} && ls -lt {folder}/ | head -10 && for file in {files}; do echo "Session: $(basename $file)"; '
        "jq -r '.messages[0].content' \"$file\"; echo ---; done"
    )
    return loop, max(bench.count / SAMPLE, 1.0)


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    ten = ("`ls -t | head` + `jq` on 10", best(newest_ten(bench), repeat))
    scan = find_all(bench.sessions, f"jq -r '{FIELDS} | @tsv'") + " | sort -r"
    every = ("one `jq` over all files, sorted", best(scan, repeat))
    objects = "jq -c '{id: .sessionId, updated, messages: (.messages | length)}'"
    scan_json = find_all(bench.sessions, objects) + " | jq -s 'sort_by(.updated) | reverse'"
    every_json = ("one `jq` over all files, `jq -s` sort", best(scan_json, repeat))
    loop, scale = tutorial_loop(bench)
    sample, _ = attempt(loop, 1)
    scaled = sample.scaled(scale) if sample is not None else None
    label = "`ls -lt | head` + one `jq` per file" + (
        f" ({SAMPLE} timed, scaled)" if scale > 1 else ""
    )

    out = [row("`taurus-ops --help` (start-up)", best(f"{ops} --help", repeat, env))]
    bench.drop_index()
    first = best(f"{ops} list --limit 10", repeat, env, setup=bench.drop_index)
    out.append(row("`list --limit 10`, no index", first, *ten))
    bench.build_index()
    warm = best(f"{ops} list --limit 10", repeat, env)
    out.append(row("`list --limit 10`, warm", warm, *ten))
    out.append(row("`list --limit 10`, warm", warm, label, scaled, tutorial=True))
    out.append(row("`list` (all), warm", best(f"{ops} list", repeat, env), *every))
    out.append(row("`list --json`, warm", best(f"{ops} list --json", repeat, env), *every_json))
    cold_json = best(f"{ops} list --json", repeat, env, setup=bench.drop_index)
    out.append(row("`list --json`, no index", cold_json, *every_json))
    bench.build_index()
    with bench.config(RETENTION):
        ruled = best(f"{ops} list --limit 10", repeat, env)
        out.append(row("`list --limit 10`, warm, retentionDays set", ruled, *ten))
        ruled_all = best(f"{ops} list", repeat, env)
        out.append(row("`list` (all), warm, retentionDays set", ruled_all, *every))
    return out


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
