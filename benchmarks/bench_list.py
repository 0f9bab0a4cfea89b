"""`taurus-ops list` on 10,000 sessions vs the tutorial's recipe.

    python -m benchmarks.bench_list [--count 10000]

The recipe is "Finding Session IDs": `ls -lt ~/.taurus/sessions/ | head -10` for the
newest sessions, and the loop printing each session's first user message with
`jq -r '.messages[0].content'`. Taurus gives both (newest first, with titles) in one
command. Also shown: `taurus-ops --help` start-up, `list` before and after the
search index exists (the first `search` or `stats` builds it; `list` then reads
summaries from it), and a single `jq` over all files (faster than the tutorial's
loop, still not sorted by `updated`).
"""

from __future__ import annotations

from benchmarks.common import corpus_bench, report, time_shell


def main() -> None:
    args, bench = corpus_bench(repeat=3)
    sessions, env, ops = bench.sessions, bench.env, bench.ops
    loop = (
        f'for file in {sessions}/*.json; do echo "Session: $(basename $file)"; '
        "jq -r '.messages[0].content' \"$file\"; echo ---; done"
    )
    rows = []
    help_time = time_shell(f"{ops} --help", args.repeat, env)
    ours_cold = time_shell(f"{ops} list --limit 10", 1, env)
    ours_files = time_shell(
        f"{ops} list --limit 10", args.repeat, env
    )  # no index yet: reads every file
    time_shell(f"{ops} index rebuild", 1, env)  # what the first search or stats does
    ours = time_shell(f"{ops} list --limit 10", args.repeat, env)
    ours_all = time_shell(f"{ops} list", args.repeat, env)
    ls_head = time_shell(f"ls -lt {sessions}/ | head -10", args.repeat)
    single_jq = time_shell(f"ls -t {sessions}/*.json | xargs jq -r '.messages[0].content'", 1)
    recipe = time_shell(loop, 1)
    rows.append(("list --limit 10 (first run) vs ls|head + jq loop", ours_cold, ls_head + recipe))
    rows.append(("list --limit 10 (no index) vs ls|head + jq loop", ours_files, ls_head + recipe))
    rows.append(("list --limit 10 (index) vs ls -lt | head + jq loop", ours, ls_head + recipe))
    rows.append(("list (all) vs ls -lt | head + jq loop", ours_all, ls_head + recipe))
    rows.append(("list (all) vs one jq over all files", ours_all, single_jq))
    rows.append(("list --limit 10 vs ls -lt | head (no titles)", ours, ls_head))
    print(
        f"{args.count} sessions, {sum(p.stat().st_size for p in sessions.iterdir()) / 1e6:.0f} MB"
    )
    print(f"taurus-ops --help start-up: {help_time:.3f} s")
    report(rows)
    bench.close()


if __name__ == "__main__":
    main()
