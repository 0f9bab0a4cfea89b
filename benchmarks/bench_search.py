"""`taurus-ops search` against `rg`, `grep -r` and the tutorial's `grep -l`.

    python -m benchmarks.bench_search [--count 10k] [--repeat 3]

Taurus matches message text ignoring case, so the baselines ignore case too:
``rg -il WORD DIR`` (ripgrep; skipped, with the reason printed, when it is not
installed: ``apt-get install -y ripgrep``), ``grep -ril WORD DIR``, and the tutorial's
"Finding Session IDs" recipe ``grep -l WORD ~/.taurus/sessions/*.json`` verbatim
(case-sensitive; at 100k sessions the shell cannot start it: argument list too long).
Words: one in the first message of one session in 28 (``authentication``), one that
occurs nowhere (``walrus``: every byte is read), and a phrase.

Taurus is timed cold (no index: the first search builds it; the best of the runs, each
from no index), warm (nothing changed), and right after one session changed (a chat
saved it: the index refreshes that one file); the difference between the last two,
taken in alternating runs (seven of each) so that both meet the same load, is the
incremental refresh. Also: the index's size beside the sessions'.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable

from benchmarks.common import BenchHome, Row, Timing, attempt, bench_main, best, row
from benchmarks.corpus import ABSENT_WORD
from taurus_ops.store import format as fmt
from taurus_ops.store.store import SessionStore

WORDS = ["authentication", ABSENT_WORD, "connection pool"]
NO_MATCH = (0, 1)
REFRESH_RUNS = 7  # the refresh is a small difference of two times: more runs of each  # grep, rg and search -l exit 1 when nothing matched


def change_one(bench: BenchHome) -> None:
    """Add a message to one session as a chat does: under the session's lock, through the
    store (a new file, ``updated`` now, the change in the journal)."""
    files = bench.files()
    path = files[len(files) // 2]
    store = SessionStore(bench.sessions)
    store.index_home = bench.home
    with store.lock(path):
        session = store.load(path)
        session.data["messages"].append(
            {"role": "user", "content": "One more question.", "timestamp": fmt.now_iso()}
        )
        store.save(session)  # a new inode: the corpus behind the hard link is untouched


RG, GREP_R, GREP_GLOB = "`rg -il`", "`grep -ril`", "`grep -l … ~/.taurus/sessions/*.json`"


def alternating(
    command: str, env: dict[str, str], runs: int, change: Callable[[], None]
) -> tuple[Timing, Timing]:
    """Best of ``runs`` of ``command`` with nothing changed and, in turn, after ``change``.

    Taking turns puts both under the same load, so their difference is the refresh.
    """
    still: Timing | None = None
    moved: Timing | None = None
    for _ in range(runs):
        plain = best(command, 1, env, ok=NO_MATCH)
        after = best(command, 1, env, ok=NO_MATCH, setup=change)
        still = plain if still is None or plain.seconds < still.seconds else still
        moved = after if moved is None or after.seconds < moved.seconds else moved
    assert still is not None and moved is not None
    return still, moved


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    folder = shlex.quote(str(bench.sessions))
    rg = shutil.which("rg")

    def baselines(word: str) -> dict[str, tuple[Timing | None, str]]:
        quoted = shlex.quote(word)
        glob = f"grep -l {quoted} ~/.taurus/sessions/*.json"
        found = {
            GREP_R: attempt(f"grep -ril {quoted} {folder}", repeat, ok=NO_MATCH),
            GREP_GLOB: attempt(glob, repeat, env=env, ok=NO_MATCH),
            RG: (None, "ripgrep not installed"),
        }
        if rg:
            found[RG] = attempt(f"{rg} -il {quoted} {folder}", repeat, ok=NO_MATCH)
        return found

    def search(args: str, **kwargs: object) -> Timing:
        return best(f"{ops} search {args}", repeat, env, ok=NO_MATCH, **kwargs)  # type: ignore[arg-type]

    word = shlex.quote(WORDS[0])
    first = baselines(WORDS[0])
    rg_first = (RG, *first[RG])
    # best of ``repeat`` builds, each from no index (one when a build is slow)
    cold = best(f"{ops} search -l {word}", repeat, env, ok=NO_MATCH, setup=bench.drop_index)
    out = [row(f"`search -l {WORDS[0]}`, cold (builds the index)", cold, *rg_first)]
    size = bench.index_bytes() / 1e6
    out.append(row("index size", size, "the sessions", bench.session_bytes / 1e6, unit="MB"))
    for term in WORDS:
        base = first if term == WORDS[0] else baselines(term)
        warm = search(f"-l {shlex.quote(term)}")
        for label in (RG, GREP_R, GREP_GLOB):
            if term != WORDS[0] and label == GREP_R:
                continue
            found, note = base[label]
            tutorial = label == GREP_GLOB
            out.append(row(f"`search -l {term}`, warm", warm, label, found, note, tutorial))
    ranked = search(word)
    out.append(row(f"`search {WORDS[0]}` (ranked, snippets), warm", ranked, *rg_first))
    warm, changed = alternating(
        f"{ops} search -l {word}", env, max(repeat, REFRESH_RUNS), lambda: change_one(bench)
    )
    out.append(row(f"`search -l {WORDS[0]}`, one session changed", changed, *rg_first))
    cpu = changed.cpu - warm.cpu if changed.cpu is not None and warm.cpu is not None else None
    refresh = Timing(max(changed.seconds - warm.seconds, 0.0), 0.0, 1, cpu)
    out.append(row("  incremental refresh (the difference)", refresh))
    return out


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
