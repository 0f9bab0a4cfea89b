"""How well and how fast ``taurus-ops doctor`` repairs, side by side with its peers.

    python -m benchmarks.bench_doctor [--sessions 150] [--seed 1] [--skip-scan] [--count 10k]

Recovery: real-shaped sessions from the benchmark corpus are damaged each way the
doctor handles (tests/helpers/damage.py), at random places, and repaired three ways:

* taurus  - ``doctor --fix`` (in-process, the real repair path: quarantine, then rewrite);
* json_repair - ``json_repair.loads`` on the text (bytes decoded with U+FFFD);
* jq      - the tutorial's recipe ``jq '.' backup.json > session.json``; the result
            counts only if Taurus can load it (one JSON document), else the session
            is lost ("start a new session").

Counted per message against the original: *before* = messages lying wholly before the
damage that came back exactly (of how many); *intact* = messages recovered exactly;
*altered* = kept with unreadable bytes shown as U+FFFD; *lost*; *invented* = messages
not in the original (a cut message completed, a guess); *valid* = repaired files
the Messages API accepts as a history (validated like tests/helpers/fake_api.py).

Speed (``rows``, also run by ``benchmarks.run``): ``taurus-ops doctor`` through the
CLI on ``--count`` sessions, with the index current, with no index, and with a
retention rule configured, against one ``jq empty`` process per ARG_MAX of files
(``find -exec jq empty {} +``: jq checks the JSON only) and the tutorial's
``jq . FILE`` run once per file (timed on 200 files, scaled); and the salvage of one
20 MB session cut off mid-write.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.damage import DAMAGES, before
from helpers.doctoring import assert_api_accepts, compare
from helpers.jobs import run_doctor

from benchmarks.common import (
    BenchHome,
    Row,
    best,
    corpus_home,
    describe,
    find_all,
    report,
    row,
    time_call,
)
from benchmarks.corpus import ensure_corpus, make_session, parse_count
from taurus_ops.ops.doctor.salvage import salvage
from taurus_ops.store import format as fmt

TOOLS = ("taurus", "json_repair", "jq")
RETENTION = "sessions:\n  retentionDays: 30\n"
SAMPLE = 200  # the tutorial's one-jq-per-file loop is timed on this many files, then scaled


def _valid(messages: list[Any]) -> bool:
    try:
        assert_api_accepts(messages)
    except Exception:
        return False
    return True


def _messages_of(data: Any) -> list[Any] | None:
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        return data["messages"]
    return None


def _json_repair(raw: bytes) -> list[Any] | None:
    import json_repair

    try:
        data = json_repair.loads(raw.decode("utf-8", "replace"))
    except Exception:
        return None
    return _messages_of(data)


def _jq(path: Path) -> list[Any] | None:
    run = subprocess.run(["jq", ".", str(path)], capture_output=True)
    if run.returncode != 0:
        return None
    try:
        return _messages_of(orjson.loads(run.stdout))
    except orjson.JSONDecodeError:
        return None  # several documents: Taurus still cannot load the file


def recovery(count: int, seed: int) -> dict[str, dict[str, Counter[str]]]:
    corpus = ensure_corpus(10_000)
    sources = [p for p in sorted(corpus.glob("*.json")) if p.stat().st_size < 1e6][:count]
    rng = random.Random(seed)
    results: dict[str, dict[str, Counter[str]]] = {}
    for kind, damage in DAMAGES.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-doctor-{kind}-"))
        try:
            home = work / "home"
            sessions = home / "sessions"
            sessions.mkdir(parents=True)
            cases = []
            for source in sources:
                raw = source.read_bytes()
                hurt = damage(raw, rng)
                path = sessions / source.name
                path.write_bytes(hurt.data)
                os.chmod(path, 0o600)
                copy = work / f"copy-{source.name}"
                copy.write_bytes(hurt.data)
                cases.append((path, copy, raw, hurt))
            start = time.perf_counter()
            run_doctor(home, sessions, home / "archive", fix=True)
            elapsed = time.perf_counter() - start
            per_tool: dict[str, Counter[str]] = {t: Counter() for t in TOOLS}
            per_tool["taurus"]["seconds"] = elapsed  # type: ignore[assignment]
            for path, copy, raw, hurt in cases:
                original = orjson.loads(raw)["messages"]
                wanted = before(raw, min(hurt.at, len(raw)))
                got = {
                    "taurus": _messages_of(orjson.loads(path.read_bytes()))
                    if path.exists()
                    else None,
                    "json_repair": _json_repair(hurt.data),
                    "jq": _jq(copy),
                }
                for tool, messages in got.items():
                    c = per_tool[tool]
                    c["sessions"] += 1
                    c["messages"] += len(original)
                    c["wanted"] += wanted
                    recovered = messages or []
                    score = compare(recovered, original)
                    c["before"] += (
                        sum(1 for k in score["matched"] if k < wanted)
                        if score["intact"] + score["altered"]
                        else 0
                    )
                    c["before_exact"] += sum(
                        1 for a, b in zip(recovered, original[:wanted], strict=False) if a == b
                    )
                    for key in ("intact", "altered", "lost", "invented"):
                        c[key] += score[key]
                    c["valid"] += 1 if messages is not None and _valid(messages) else 0
            results[kind] = per_tool
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return results


def print_recovery(results: dict[str, dict[str, Counter[str]]]) -> None:
    head = f"{'damage':<17} {'tool':<12} {'before damage':>15} {'intact':>7} {'altered':>8} {'lost':>6} {'invented':>9} {'valid':>9}"
    print(head)
    print("-" * len(head))
    totals: dict[str, Counter[str]] = {t: Counter() for t in TOOLS}
    for kind, per_tool in results.items():
        for tool in TOOLS:
            c = per_tool[tool]
            for key, value in c.items():
                if key != "seconds":
                    totals[tool][key] += value
            _row(kind, tool, c)
        print()
    for tool in TOOLS:
        _row("ALL", tool, totals[tool])


def _row(kind: str, tool: str, c: Counter[str]) -> None:
    before_text = f"{c['before_exact']}/{c['wanted']}"
    print(
        f"{kind:<17} {tool:<12} {before_text:>15} {c['intact']:>7} {c['altered']:>8} "
        f"{c['lost']:>6} {c['invented']:>9} {c['valid']:>4}/{c['sessions']:<4}"
    )


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    """The read-only scan through the CLI against ``jq empty`` over every file."""
    ops, env = bench.ops, bench.env
    single = ("one `find -exec jq empty {} +`", best(find_all(bench.sessions, "jq empty"), repeat))
    folder = shlex.quote(str(bench.sessions))
    sample = min(bench.count, SAMPLE)
    loop = (
        f"cd {folder} && for f in $(ls | head -{sample}); do "
        'jq . "$f" > /dev/null 2>&1 || echo "$f"; done'
    )
    scale = bench.count / sample
    loop_time = best(loop, 1).scaled(scale)
    label = "`jq . FILE` per file" + (f" ({sample} timed, scaled)" if scale > 1 else "")
    bench.drop_index()
    cold = best(f"{ops} doctor", repeat, env, setup=bench.drop_index)
    bench.build_index()
    warm = best(f"{ops} doctor", repeat, env)
    with bench.config(RETENTION):
        ruled = best(f"{ops} doctor", repeat, env)
    return [
        row("`doctor`, warm (nothing changed)", warm, *single),
        row("`doctor`, warm (nothing changed)", warm, label, loop_time, tutorial=True),
        row("`doctor`, no index", cold, *single),
        row("`doctor`, warm, retentionDays set", ruled, *single),
    ]


def big_file() -> None:
    rng = random.Random(0)
    doc = make_session(rng, "big00001", datetime(2025, 1, 1, tzinfo=UTC))
    while len(fmt.dumps(doc)) < 20_000_000:
        more = make_session(rng, "big00001", datetime(2025, 1, 1, tzinfo=UTC))
        doc["messages"] += more["messages"][1:]
    raw = fmt.dumps(doc)
    cut = raw[: len(raw) * 9 // 10]
    seconds = time_call(lambda: salvage(cut), repeat=3)
    result = salvage(cut)
    kept = len(result.main.data["messages"]) if result.main else 0
    print(
        f"salvage of a {len(raw) / 1e6:.1f} MB session cut at 90%: {seconds:.2f} s, "
        f"{kept} of {before(raw, len(cut))} whole messages before the cut kept"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=150, help="sessions per kind of damage")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-scan", action="store_true", help="only the recovery table")
    parser.add_argument("--count", type=parse_count, default=10_000, help="sessions to scan")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"Recovery: {args.sessions} corpus sessions per kind of damage, seed {args.seed}\n")
    print_recovery(recovery(args.sessions, args.seed))
    if not args.skip_scan:
        print()
        bench = corpus_home(args.count)
        try:
            describe(bench)
            report(rows(bench, args.repeat))
        finally:
            bench.close()
        big_file()


if __name__ == "__main__":
    main()
