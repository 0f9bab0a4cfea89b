"""`taurus-ops search` against `rg`, `grep -r` and the tutorial's `grep -l`.

    python -m benchmarks.bench_search [--count 10k] [--repeat 3]

Taurus matches message text ignoring case, so the baselines ignore case too:
``rg -il WORD DIR`` (ripgrep; skipped, with the reason printed, when it is not
installed: ``apt-get install -y ripgrep``), ``grep -ril WORD DIR``, and the tutorial's
"Finding Session IDs" recipe ``grep -l WORD ~/.taurus/sessions/*.json`` verbatim
(case-sensitive; at 100k sessions the shell cannot start it: argument list too long).
Words: one in the first message of one session in 28 (``authentication``), one that
occurs nowhere (``walrus``: every byte is read), and a phrase.

Taurus is timed cold (no index: the first search builds it), warm (nothing changed),
and right after one session changed (a chat saved it: the index refreshes that one
file); the difference between the last two is the incremental refresh. Also: the
index's size beside the sessions'.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time

import orjson

from benchmarks.common import BenchHome, Row, attempt, bench_main, best
from benchmarks.corpus import ABSENT_WORD
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write

WORDS = ["authentication", ABSENT_WORD, "connection pool"]
NO_MATCH = (0, 1)  # grep, rg and search -l exit 1 when nothing matched


def change_one(bench: BenchHome) -> None:
    """Append a message to one session as a chat would (a new file, ``updated`` now)."""
    files = bench.files()
    path = files[len(files) // 2]
    doc = orjson.loads(path.read_bytes())
    now = fmt.now_iso()
    doc["messages"].append({"role": "user", "content": "One more question.", "timestamp": now})
    doc["updated"] = now
    atomic_write(path, fmt.dumps(doc))  # a new inode: the corpus behind the hard link is untouched
    os.chmod(path, 0o600)
    stamp = time.time()
    os.utime(path, (stamp, stamp))


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    folder = shlex.quote(str(bench.sessions))
    rg = shutil.which("rg")
    out: list[Row] = []

    def baselines(word: str) -> dict[str, tuple[float | None, str]]:
        quoted = shlex.quote(word)
        found = {
            "`grep -ril`": attempt(f"grep -ril {quoted} {folder}", repeat, ok=NO_MATCH),
            "`grep -l *.json`": attempt(
                f"grep -l {quoted} ~/.taurus/sessions/*.json", repeat, env=env, ok=NO_MATCH
            ),
        }
        if rg:
            found["`rg -il`"] = attempt(f"{rg} -il {quoted} {folder}", repeat, ok=NO_MATCH)
        else:
            found["`rg -il`"] = (None, "ripgrep not installed")
        return found

    word = WORDS[0]
    quoted = shlex.quote(word)
    first = baselines(word)
    rg_time, rg_note = first["`rg -il`"]
    bench.drop_index()
    cold = best(f"{ops} search -l {quoted}", 1, env, ok=NO_MATCH)
    out.append(
        Row(
            f"`search -l {word}`, cold (builds the index)",
            cold.seconds,
            "`rg -il`",
            rg_time,
            rg_note,
            memory=cold.memory,
        )
    )
    size = bench.index_bytes() / 1e6
    out.append(Row("index size", size, "the sessions", bench.session_bytes / 1e6, unit="MB"))
    for word in WORDS:
        quoted = shlex.quote(word)
        base = first if word == WORDS[0] else baselines(word)
        warm = best(f"{ops} search -l {quoted}", repeat, env, ok=NO_MATCH)
        for label in ("`rg -il`", "`grep -ril`", "`grep -l *.json`"):
            seconds, note = base[label]
            if word != WORDS[0] and label == "`grep -ril`":
                continue
            out.append(Row(f"`search -l {word}`, warm", warm.seconds, label, seconds, note,
                           tutorial=label == "`grep -l *.json`", memory=warm.memory))  # fmt: skip
    word = WORDS[0]
    quoted = shlex.quote(word)
    rg_time, rg_note = first["`rg -il`"]
    ranked = best(f"{ops} search {quoted}", repeat, env, ok=NO_MATCH)
    out.append(
        Row(
            f"`search {word}` (ranked, snippets), warm",
            ranked.seconds,
            "`rg -il`",
            rg_time,
            rg_note,
            memory=ranked.memory,
        )
    )
    warm = best(f"{ops} search -l {quoted}", repeat, env, ok=NO_MATCH)
    changed = best(
        f"{ops} search -l {quoted}", repeat, env, ok=NO_MATCH, setup=lambda: change_one(bench)
    )
    out.append(
        Row(
            f"`search -l {word}`, one session changed",
            changed.seconds,
            "`rg -il`",
            rg_time,
            rg_note,
            memory=changed.memory,
        )
    )
    out.append(
        Row("  incremental refresh (the difference)", max(changed.seconds - warm.seconds, 0.0))
    )
    return out


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
