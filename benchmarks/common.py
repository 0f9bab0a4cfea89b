"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BenchHome:
    """A scratch user home whose ``.taurus/sessions`` holds the corpus (hard links)."""

    base: Path  # plays $HOME
    home: Path  # plays ~/.taurus (TAURUS_HOME)
    sessions: Path
    env: dict[str, str]
    ops: str  # how to run taurus-ops

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def bench_home(corpus: Path) -> BenchHome:
    """Link ``corpus`` into a fresh ``$HOME/.taurus/sessions`` (mtimes kept, nothing copied)."""
    base = Path(tempfile.mkdtemp(prefix="taurus-bench-"))
    home = base / ".taurus"
    home.mkdir(mode=0o700)
    sessions = home / "sessions"
    shutil.copytree(corpus, sessions, copy_function=os.link)
    env = {"TAURUS_HOME": str(home), "HOME": str(base)}
    return BenchHome(base, home, sessions, env, f"{sys.executable} -m taurus_ops.cli")


def corpus_bench(repeat: int = 3) -> tuple[argparse.Namespace, BenchHome]:
    """Parse ``--count`` and ``--repeat``, and link the corpus into a scratch home."""
    from benchmarks.corpus import ensure_corpus

    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=repeat)
    args = parser.parse_args()
    return args, bench_home(ensure_corpus(args.count))


def time_call(func: Callable[[], object], repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def time_shell(
    command: str | Sequence[str],
    repeat: int = 3,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> float:
    """Best wall-clock seconds of running a shell command (output discarded)."""
    shell = isinstance(command, str)
    full_env = {**os.environ, **(env or {})}

    def run() -> None:
        subprocess.run(
            command,
            shell=shell,
            check=True,
            stdout=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            executable="/bin/bash" if shell else None,
        )

    return time_call(run, repeat)


def report(rows: list[tuple[str, float, float]]) -> None:
    """Print `task  taurus  recipe  ratio` rows (ratio = recipe / taurus: >1 means Taurus is faster)."""
    width = max([len("task"), *(len(task) for task, _, _ in rows)])
    print(f"{'task':<{width}} {'taurus (s)':>11} {'recipe (s)':>11} {'speed-up':>9}")
    for task, ours, theirs in rows:
        print(f"{task:<{width}} {ours:>11.3f} {theirs:>11.3f} {theirs / ours:>8.1f}x")
