"""Chat speed on a very large session: ``taurus chat -r`` to the prompt and one autosave.

    python -m benchmarks.bench_chat [--count 10k] [--mb 100] [--repeat 3] [--growth]

The cached session of ``--mb`` MB (``benchmarks.corpus.big_session``: about 107,000
messages at 100 MB) is put into a home of ``--count`` corpus sessions as the newest
one, and ``taurus chat -r`` (a real terminal, pexpect) is timed from start to its
prompt; its peak memory (VmHWM) is read there. Beside it: ``jq`` reading the file once
(``jq -r '.messages[0].content' FILE``) and rewriting it (``jq -c . FILE > NEW``). The
autosave is timed in-process (``SessionStore.save``, what the chat calls after each
message). ``--growth`` adds one autosave as a session grows from 10 to 2,000 messages.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BUDGET,
    BenchHome,
    Row,
    Timing,
    best,
    corpus_home,
    describe,
    kib_to_mb,
    report,
    row,
    time_call,
)
from benchmarks.corpus import CORPUS_VERSION, big_session, parse_count
from taurus_ops.store import Session, SessionStore
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write

TARGET_MB = 20  # the session bench_branch and bench_serve build with big_document
BIG_MB = 100
SETTLE = 2.0  # seconds at the prompt before the memory is read again (the SDK loads by then)


def big_document(session_id: str, n_messages: int, result_size: int = 2000) -> dict[str, Any]:
    """A realistic session: text turns, tool_use/tool_result pairs with sizeable outputs."""
    rng = random.Random(n_messages)
    created = datetime(2025, 1, 18, 10, 23, 45, tzinfo=UTC)
    words = [
        "the",
        "login",
        "handler",
        "checks",
        "the",
        "token",
        "before",
        "it",
        "reads",
        "the",
        "user",
        "record",
        "from",
        "the",
        "store",
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Help me debug the login issue"}]
    calls = []
    moment = created
    turn = 0
    while len(messages) < n_messages:
        turn += 1
        moment += timedelta(seconds=30)
        stamp = fmt.format_time(moment)
        tool_id = f"toolu_{turn:08d}"
        body = " ".join(rng.choice(words) for _ in range(result_size // 6))
        usage = {
            "model": "claude-sonnet-4-5",
            "inputTokens": 1000 + turn,
            "outputTokens": 80,
            "cacheReadTokens": 0,
            "cacheCreationTokens": 0,
        }
        messages += [
            {
                "role": "assistant",
                "timestamp": stamp,
                "usage": usage,
                "content": [
                    {"type": "text", "text": f"Let me read src/file{turn % 40}.ts."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "read",
                        "input": {"file": f"src/file{turn % 40}.ts"},
                    },
                ],
            },
            {
                "role": "user",
                "timestamp": stamp,
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": body}],
            },
            {
                "role": "assistant",
                "timestamp": stamp,
                "usage": usage,
                "content": f"I found the issue in src/file{turn % 40}.ts:{turn}. " + body[:300],
            },
            {"role": "user", "timestamp": stamp, "content": f"Thanks, next step {turn}."},
        ]
        calls.append(
            {
                "tool": "read",
                "file": f"src/file{turn % 40}.ts",
                "timestamp": stamp,
                "outcome": "ok",
                "durationMs": 3,
            }
        )
    messages = messages[:n_messages]
    return {
        "sessionId": session_id,
        "created": fmt.format_time(created),
        "updated": fmt.format_time(moment),
        "version": 1,
        "cwd": os.getcwd(),
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "toolCalls": calls,
    }


def place_big_session(bench: BenchHome, mb: int) -> Path:
    """Copy the cached ``mb`` MB session into the home as its newest (``updated`` now)."""
    source = big_session(mb)
    raw = bytearray(source.read_bytes())
    head = raw[:4096].decode("utf-8", "replace")
    at = head.index('"updated": "') + len('"updated": "')
    now = fmt.now_iso().encode()
    raw[at : at + len(now)] = now  # same length: the rest of the file is unchanged
    target = bench.sessions / source.name.replace(f"-0-v{CORPUS_VERSION}", "").replace(
        f"big{mb}mb", f"2025-01-18_big{mb}mb"
    )
    atomic_write(target, bytes(raw))
    return target


def time_to_prompt(
    env: dict[str, str], cwd: str, name: str, repeat: int = 5
) -> tuple[Timing, float]:
    """Best seconds from starting ``taurus chat -r`` to its prompt, with the CPU seconds
    and peak memory (MB) the process had used by then; and its peak memory ``SETTLE``
    seconds later, when the SDK has loaded behind the prompt.

    Checks that the session resumed is the file ``name`` (the banner shows its path).
    """
    import pexpect

    found: Timing | None = None
    settled = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        child = pexpect.spawn(
            sys.executable,
            ["-m", "taurus_ops.cli.chat_main", "chat", "-r"],
            env=env,
            cwd=cwd,
            encoding="utf-8",
            timeout=120,
            dimensions=(40, 120),
        )
        child.expect("taurus>")
        seconds = time.perf_counter() - start
        if name not in (child.before or ""):
            print(f"warning: the banner does not name {name}: another session was resumed?")
        timing = Timing(seconds, peak_memory(child.pid), 1, cpu_seconds(child.pid))
        if found is None or seconds < found.seconds:
            time.sleep(SETTLE)  # the SDK loads behind the prompt: the peak once it has
            found, settled = timing, peak_memory(child.pid)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        child.close()
        if seconds > BUDGET:
            break
    assert found is not None
    return found, settled


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_memory(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return kib_to_mb(int(line.split()[1]))
    return 0.0


def rows(bench: BenchHome, repeat: int, mb: int = BIG_MB) -> list[Row]:
    path = place_big_session(bench, mb)
    size = path.stat().st_size / 1e6
    env = {
        **os.environ,
        **bench.env,
        "ANTHROPIC_API_KEY": "bench",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    resumed, settled = time_to_prompt(env, str(bench.base), path.name, repeat)
    read = best(f"jq -r '.messages[0].content' {path}", repeat)
    rewrite = best(f"jq -c . {path} > {bench.base}/jq-out.json", repeat)
    (bench.base / "jq-out.json").unlink(missing_ok=True)
    store = SessionStore(bench.sessions, bench.home / "archive")
    session = store.load(path)
    save = saving(lambda: store.save(session), max(1, min(repeat, 3)))
    label = f"{size:.0f} MB session"
    python = best(f"{sys.executable} -c pass", repeat)
    path.unlink()
    autosave = f"autosave of the {label} (in-process `SessionStore.save`)"
    return [
        row(f"`chat -r` to the prompt, {label}", resumed, "`jq` reading it once", read),
        row("  peak memory of that `chat -r`", resumed.memory, "the file", size, unit="MB"),
        row(f"  and {SETTLE:g} s later (the SDK loaded)", settled, "the file", size, unit="MB"),
        row(autosave, save, "`jq -c .` rewriting it", rewrite),
        row("Python start-up alone (`python -c pass`)", python),
    ]


def saving(func: Callable[[], object], repeat: int) -> Timing:
    """Best wall-clock and CPU seconds of ``repeat`` calls in this process."""
    seconds, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        func()
        seconds = min(seconds, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - used)
    return Timing(seconds, 0.0, repeat, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", "--size", type=parse_count, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mb", type=int, default=BIG_MB, help="size of the resumed session")
    parser.add_argument(
        "--growth", action="store_true", help="also autosave from 10 to 2,000 messages"
    )
    args = parser.parse_args()
    bench = corpus_home(args.count)
    try:
        describe(bench)
        report(rows(bench, args.repeat, args.mb))
        if args.growth:
            report(growth())
    finally:
        bench.close()


def growth() -> list[Row]:
    """One autosave as a session grows from 10 to 2,000 messages (in-process)."""
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = SessionStore(home / "sessions", home / "archive")
        store.ensure()
        for n in (10, 100, 500, 1000, 2000):
            doc = big_document(f"grow{n:04d}", n)
            session = Session(doc)
            session.path = store.path_for(doc["sessionId"], doc["created"])
            store.save(session, touch=False)
            ours = time_call(functools.partial(store.save, session), repeat=20)
            theirs = best(f"jq . {session.path} > {tmp}/jq-out.json", 3)
            kb = session.path.stat().st_size / 1024
            label = f"autosave at {n} messages ({kb:.0f} KB)"
            out.append(row(label, ours, "`jq .` rewriting it", theirs))
    return out


if __name__ == "__main__":
    main()
