"""Run every corpus benchmark at several sizes and print one Markdown table.

    python -m benchmarks.run --sizes 1k,10k,100k [--only NAME[,NAME]] [--repeat 3] [--out FILE]
    python -m benchmarks.run --tables FIRST.json LATER.json ...   # the tables of saved rows

For each size the cached corpus is made if needed (``benchmarks.corpus``), linked into
one scratch home, and each benchmark's ``rows`` run on it in turn: list, search,
stats, doctor, cleanup, backup, export, chat (``--only search,stats`` picks some).
Each benchmark's own table is printed as it finishes; at the end comes the table for
benchmarks/README.md (operation | 1k | 10k | 100k | baseline | ratio), with the
baseline's times and the ratio (baseline / Taurus) per size, and how long each part
took. ``bench_sync``, ``bench_serve``, ``bench_branch`` and ``bench_s3_clients`` need
servers or tools of their own and are run on their own.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmarks.common import BenchHome, Row, corpus_home, figure, machine, ratio_text, report
from benchmarks.corpus import corpus_record, ensure_corpus, parse_count, size_label

BENCHES = ["list", "search", "stats", "doctor", "cleanup", "backup", "export", "chat"]


@dataclass
class SizeRun:
    count: int
    session_bytes: int = 0
    corpus_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    load: str = ""


def load_bench(name: str) -> Callable[[BenchHome, int], list[Row]]:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    rows: Callable[[BenchHome, int], list[Row]] = module.rows
    return rows


def run_size(count: int, names: list[str], repeat: int) -> SizeRun:
    run = SizeRun(count)
    record = corpus_record(ensure_corpus(count)) or {}
    run.corpus_seconds = float(record.get("seconds", 0.0))  # when it was made, maybe earlier
    bench = corpus_home(count)
    run.session_bytes = bench.session_bytes
    try:
        for name in names:
            print(f"\n## {name}, {count:,} sessions ({machine()})", flush=True)
            started = time.perf_counter()
            try:
                found = load_bench(name)(bench, repeat)
            except Exception as exc:  # one failing benchmark does not stop the others
                traceback.print_exc()
                run.errors[name] = f"{type(exc).__name__}: {exc}"
                found = []
            run.seconds[name] = time.perf_counter() - started
            report(found)
            print(f"({name}: {run.seconds[name]:.0f} s)", flush=True)
            run.rows += found
    finally:
        bench.close()
    run.load = machine()
    return run


def _key(row: Row) -> tuple[str, str]:
    return row.operation, row.label


def markdown(runs: list[SizeRun], cpu: bool = False) -> str:
    """The table: one line per (operation, baseline), a column per size.

    With ``cpu``, CPU seconds (user + system) instead of wall-clock seconds, and their
    ratio: the steadier figure on a machine shared with other work.
    """
    sizes = [size_label(r.count) for r in runs]
    keys: list[tuple[str, str]] = []
    by_size: list[dict[tuple[str, str], Row]] = []
    for run in runs:
        found: dict[tuple[str, str], Row] = {}
        for row in run.rows:
            found.setdefault(_key(row), row)
            if _key(row) not in keys:
                keys.append(_key(row))
        by_size.append(found)
    lines = [
        "| operation | " + " | ".join(sizes) + " | baseline | ratio |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " | --- | --- |",
    ]
    for key in keys:
        cells = [found.get(key) for found in by_size]
        if cpu:
            cells = [_as_cpu(c) for c in cells]
        sample = next(c for c in cells if c is not None)
        ours = [_ours(c) for c in cells]
        baseline = ratio = ""
        if sample.baseline:
            theirs = " / ".join(_theirs(c) for c in cells)
            baseline = f"{sample.label} {theirs}"
            ratio = " / ".join(ratio_text(c) if c is not None else "" for c in cells)
        texts = [key[0], *ours, baseline, ratio]
        lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
    return "\n".join(lines)


def _as_cpu(row: Row | None) -> Row | None:
    """The row with CPU seconds in place of wall-clock ones (sizes stay as they are)."""
    if row is None or row.unit != "s":
        return row
    ours, theirs = row.cpu, row.theirs_cpu
    note = row.note or ("not measured" if row.taurus is not None else "")
    return replace(row, taurus=ours, theirs=theirs, note=note)


def _ours(row: Row | None) -> str:
    if row is None:
        return ""
    return figure(row.taurus, row.unit) if row.taurus is not None else row.note


def _theirs(row: Row | None) -> str:
    if row is None:
        return ""
    return figure(row.theirs, row.unit) if row.theirs is not None else row.note


def timings(runs: list[SizeRun]) -> str:
    """How long each size took: the corpus, each benchmark, in all."""
    names = list(runs[0].seconds) if runs else []
    lines = [
        "| size | sessions | corpus made in | " + " | ".join(names) + " | whole run |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for run in runs:
        total = run.corpus_seconds + sum(run.seconds.values())
        cells = [f"{run.seconds[n]:.0f} s" for n in names]
        lines.append(
            f"| {size_label(run.count)} | {run.session_bytes / 1e6:,.0f} MB | "
            f"{run.corpus_seconds:.0f} s | " + " | ".join(cells) + f" | {total / 60:.1f} min |"
        )
    return "\n".join(lines)


def saved_runs(files: list[Path]) -> list[SizeRun]:
    """The runs the ``--out`` rows of ``files`` hold, a row of a later file taking the
    place of the same row (operation and baseline) of an earlier one: a benchmark run
    again after a change, with ``--only``, replaces its rows and keeps the others."""
    from benchmarks.corpus import parse_count

    runs: dict[str, SizeRun] = {}
    for file in files:
        for size, rows in json.loads(file.read_text()).items():
            run = runs.setdefault(size, SizeRun(parse_count(size)))
            place = {_key(row): n for n, row in enumerate(run.rows)}
            for data in rows:
                row = Row(**data)
                if _key(row) in place:
                    run.rows[place[_key(row)]] = row
                else:
                    run.rows.append(row)
    return sorted(runs.values(), key=lambda r: r.count)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1k,10k", help="comma-separated: 1k,10k,100k")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHES)}")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (slow ones once)")
    parser.add_argument("--out", type=Path, help="also write the tables (and rows as .json) here")
    parser.add_argument(
        "--tables", type=Path, nargs="+", help="print the tables of saved rows (--out's .json)"
    )
    args = parser.parse_args()
    if args.tables:
        saved = saved_runs(args.tables)
        print(f"Wall-clock:\n\n{markdown(saved)}\n\nCPU seconds (user + system):\n")
        print(markdown(saved, cpu=True))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # scratch homes are still removed
    try:
        counts = [parse_count(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    names = args.only.split(",") if args.only else BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    print(f"Python {sys.version.split()[0]}; {machine()}", flush=True)
    runs = [run_size(count, names, args.repeat) for count in counts]
    text = f"Wall-clock:\n\n{markdown(runs)}\n\nCPU seconds (user + system):\n\n"
    text += f"{markdown(runs, cpu=True)}\n\n{timings(runs)}\n"
    errors = [f"{size_label(r.count)} {n}: {e}" for r in runs for n, e in r.errors.items()]
    if errors:
        text += "\nFailed: " + "; ".join(errors) + "\n"
    text += "\n" + "; ".join(f"{size_label(r.count)}: {r.load}" for r in runs) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
        rows = {size_label(r.count): [asdict(row) for row in r.rows] for r in runs}
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
