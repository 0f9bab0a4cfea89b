"""Branching speed: a fork of a 20 MB session, the checkpoint kept before each edit of a
1 MB file, and the resume picker opening on 10,000 sessions.

    python -m benchmarks.bench_branch [--count 10000] [--repeat 3]

Side by side with what the shell would do: ``jq`` slicing the messages into a new file
(or ``cp`` of the whole file, the tutorial's way to copy a session), ``cp`` of the file
before editing it, and ``ls -t | head`` for a list of recent sessions.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_chat import TARGET_MB, big_document
from benchmarks.common import corpus_bench, report, time_call, time_shell
from taurus_ops.store import Session, SessionStore


class Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def fork_rows(tmp: Path, repeat: int) -> list[tuple[str, float, float]]:
    from taurus_ops.store.fork import fork_session

    home = tmp / "fork-home"
    store = SessionStore(home / "sessions", home / "archive")
    store.index_home = home
    store.ensure()
    doc = big_document("big00001", 100, result_size=4000)
    probe = Session(doc)
    probe.path = store.path_for("big00001", doc["created"])
    store.save(probe, touch=False)
    scale = TARGET_MB * 1024 * 1024 / probe.path.stat().st_size
    doc = big_document("big00001", int(100 * scale) // 4 * 4, result_size=4000)
    session = Session(doc)
    session.path = probe.path
    store.save(session, touch=False)
    size = session.path.stat().st_size
    half = len(doc["messages"]) // 2 // 4 * 4 + 1  # after a user message: a valid point
    print(f"fork: a session of {len(doc['messages'])} messages, {size / 1e6:.1f} MB")
    rows = []
    ours = time_call(lambda: fork_session(store, store.load(session.path), None), repeat)
    cp = time_shell(f"cp {session.path} {tmp}/copy.json", repeat)
    rows.append((f"fork all of a {size / 1e6:.0f} MB session (load + write)", ours, cp))
    ours = time_call(lambda: fork_session(store, store.load(session.path), half), repeat)
    jq = time_shell(
        f'jq \'.messages |= .[:{half}] | .sessionId = "x" | .parentSession = "big00001"\''
        f" {session.path} > {tmp}/half.json",
        repeat,
    )
    rows.append((f"fork at message {half} (in-process vs jq slice)", ours, jq))
    env = {**os.environ, "TAURUS_HOME": str(home), "HOME": str(tmp)}
    ops = f"{sys.executable} -m taurus_ops.cli"
    ours = time_shell(f"{ops} fork big00001@{half}", repeat, env=env)
    rows.append(("taurus-ops fork REF@N (the whole command)", ours, jq))
    return rows


def checkpoint_rows(tmp: Path, edits: int = 40) -> list[tuple[str, float, float]]:
    from taurus_ops.chat.conversation import Conversation
    from taurus_ops.chat.engine import Engine
    from taurus_ops.chat.permissions import Permissions
    from taurus_ops.chat.rewind import Checkpointer
    from taurus_ops.chat.tools import Tools
    from taurus_ops.store.checkpoints import CheckpointStore

    line = "the login handler checks the token before it reads the user record 0123456789\n"
    body = line * (1_048_576 // len(line))

    def run(with_checkpoints: bool) -> tuple[list[float], list[float]]:
        work = tmp / f"edit-{with_checkpoints}"
        work.mkdir()
        home = work / "home"
        store = SessionStore(home / "sessions")
        store.ensure()
        session = store.create(cwd=str(work))
        conversation = Conversation(session, lambda: store.save(session))
        keeper = (
            Checkpointer(CheckpointStore(home / "checkpoints"), conversation, 1 << 40)
            if with_checkpoints
            else None
        )
        engine = Engine(
            conversation,
            None,  # type: ignore[arg-type]
            Tools(work),
            Permissions.build(["*"], [], False),
            Quiet(),  # type: ignore[arg-type]
            keeper=keeper,
        )
        (work / "big.txt").write_text("v0\n" + body)
        times, cpu = [], []
        for n in range(edits):
            use = {
                "type": "tool_use",
                "id": f"toolu_{n:06d}",
                "name": "edit",
                "input": {"file": "big.txt", "old_string": f"v{n}\n", "new_string": f"v{n + 1}\n"},
            }
            session.messages.append({"role": "assistant", "content": [use]})
            start, used = time.perf_counter(), time.process_time()
            engine.run_tools([use])
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - used)
        return times[2:], cpu[2:]  # the first two store both contents; later ones one each

    plain, plain_cpu = (statistics.median(x) for x in run(False))
    kept, kept_cpu = (statistics.median(x) for x in run(True))
    print(
        f"edit of a 1 MB file in {tmp}: {plain * 1000:.1f} ms without checkpoints, "
        f"{kept * 1000:.1f} ms with: {(kept - plain) * 1000:.1f} ms more per edit "
        f"({(kept_cpu - plain_cpu) * 1000:.1f} ms of it CPU time)"
    )
    (tmp / "one-mb.txt").write_text(body)
    cp = time_shell(f"cp {tmp}/one-mb.txt {tmp}/one-mb.bak", 5)
    return [
        ("edit 1 MB file, no checkpoint (median)", plain, plain),
        ("edit 1 MB file with checkpoint (median)", kept, plain),
        ("checkpoint overhead per edit vs cp FILE FILE.bak", kept - plain, cp),
        ("checkpoint overhead per edit, CPU time only", kept_cpu - plain_cpu, cp),
    ]


def picker_rows(bench: Any, repeat: int) -> list[tuple[str, float, float]]:
    import pexpect

    from taurus_ops.config import load_config

    os.environ.update(bench.env)
    warm = time_shell(f"{bench.ops} search -l authentication", 1, env=bench.env)
    print(f"picker: first index build (search -l) {warm:.1f} s")

    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from taurus_ops.chat.picker import pick

    config = load_config()
    store = SessionStore.from_config(config)

    def open_once() -> None:
        """What --pick and /resume do: rows from the index, the list drawn (the index is
        refreshed in the background meanwhile), then Ctrl+C."""
        with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
            keys.send_text("\x03")
            assert pick(config, store, Path.cwd()) is None

    inproc = time_call(open_once, repeat)
    ls = time_shell(f"ls -t {bench.sessions} | head -20", repeat)
    rows = [("picker open (index rows, model, first frame)", inproc, ls)]

    env = {**bench.env, "ANTHROPIC_API_KEY": "bench", "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        child = pexpect.spawn(
            sys.executable,
            ["-m", "taurus_ops.cli.chat_main", "chat", "--pick"],
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 120),
        )
        child.expect("Resume a session")
        best = min(best, time.perf_counter() - start)
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
        child.close()
    rows.append(("taurus chat --pick to the list (whole command)", best, ls))
    python = time_shell([sys.executable, "-c", "pass"], repeat)
    print(f"(python start-up alone: {python:.3f} s)")
    return rows


def main() -> None:
    args, bench = corpus_bench(repeat=3)
    rows: list[tuple[str, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows += fork_rows(Path(tmp), args.repeat)
            rows += checkpoint_rows(Path(tmp))
        if os.path.isdir("/dev/shm"):  # the same in memory: what the code costs, not the disk
            with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
                rows += [(f"[tmpfs] {t}", a, b) for t, a, b in checkpoint_rows(Path(tmp))]
        rows += picker_rows(bench, args.repeat)
    finally:
        bench.close()
    report(rows)


if __name__ == "__main__":
    main()
