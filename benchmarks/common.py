"""Timing helpers and the scratch home shared by the benchmarks.

Every figure is the wall-clock time of a whole program, Taurus run the way a user
runs it (``python -m taurus_ops.cli.main ...``, a fresh process, start-up included)
next to the shell command a competent user would run for the same answer. A
benchmark returns ``Row``s; ``report`` prints them side by side with the ratio
(baseline time / Taurus time: above 1 means Taurus is faster).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

OPS = f"{shlex.quote(sys.executable)} -m taurus_ops.cli.main"
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
BUDGET = 30.0  # a command slower than this is timed once, not best of ``repeat``


class Unrunnable(Exception):
    """A baseline that cannot run as written here; the message says why, in a few words."""


@dataclass
class Row:
    """One line of a benchmark's table.

    ``taurus`` and ``theirs`` are seconds (``unit="s"``) or megabytes (``unit="MB"``);
    None with a ``note`` when a side could not be measured (``argument list too long``).
    ``tutorial`` marks a baseline that is the session tutorial's own recipe.
    """

    operation: str
    taurus: float | None
    baseline: str = ""
    theirs: float | None = None
    note: str = ""
    unit: str = "s"
    tutorial: bool = False
    memory: float | None = None  # Taurus's peak resident memory, MB
    cpu: float | None = None  # Taurus's CPU seconds (user + system)
    theirs_cpu: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.taurus is None or self.theirs is None or self.taurus <= 0:
            return None
        if self.unit == "MB":
            return self.taurus / self.theirs  # a size: Taurus's as a multiple of the baseline's
        return self.theirs / self.taurus

    @property
    def label(self) -> str:
        return f"tutorial: {self.baseline}" if self.tutorial and self.baseline else self.baseline


@dataclass
class Timing:
    seconds: float
    memory: float  # peak resident set of the command (and its children), MB
    runs: int
    cpu: float | None = None  # user + system seconds of it and its children (None: unknown)

    def scaled(self, factor: float) -> Timing:
        """The figures of ``factor`` times the work (a run on a sample, scaled up)."""
        cpu = self.cpu * factor if self.cpu is not None else None
        return Timing(self.seconds * factor, self.memory, self.runs, cpu)


@dataclass
class BenchHome:
    """A scratch user home whose ``.taurus/sessions`` holds the corpus (hard links)."""

    base: Path  # plays $HOME
    home: Path  # plays ~/.taurus (TAURUS_HOME)
    sessions: Path
    env: dict[str, str]
    ops: str = OPS  # how to run taurus-ops
    count: int = 0
    session_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def config_file(self) -> Path:
        return self.home / "config.yaml"

    @contextmanager
    def config(self, text: str) -> Iterator[None]:
        """Run with ``text`` as ~/.taurus/config.yaml, then put the previous one back."""
        before = self.config_file.read_text() if self.config_file.exists() else None
        self.config_file.write_text(text)
        try:
            yield
        finally:
            if before is None:
                self.config_file.unlink(missing_ok=True)
            else:
                self.config_file.write_text(before)

    def index_entries(self) -> list[Path]:
        """The search index's files (``index.sqlite`` and whatever sits beside it)."""
        return [p for p in self.home.iterdir() if p.name.startswith("index")]

    def drop_index(self) -> None:
        """Delete the index, as a user may (the next command builds it again)."""
        for path in self.index_entries():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def index_bytes(self) -> int:
        total = 0
        for path in self.index_entries():
            if path.is_dir():
                total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            else:
                total += path.stat().st_size
        return total

    def build_index(self) -> None:
        """Make sure the index is built and current (untimed set-up for warm figures)."""
        run_shell(f"{self.ops} index rebuild", self.env)

    def fresh_copy(self, config: str | None = None) -> BenchHome:
        """Another home over the same corpus (hard links), for commands that move files."""
        copy = link_home(self.sessions, self.count, self.session_bytes)
        if config is not None:
            copy.config_file.write_text(config)
        return copy

    def files(self) -> list[Path]:
        return sorted(p for p in self.sessions.iterdir() if p.suffix == ".json")


def compiled() -> None:
    """Taurus's modules compiled once, as installing a wheel does: a checkout run where
    PYTHONDONTWRITEBYTECODE is set would otherwise compile them at every start (about
    0.1 s a command)."""
    import compileall

    import taurus_ops

    compileall.compile_dir(Path(taurus_ops.__file__).parent, quiet=1)


def link_home(corpus: Path, count: int = 0, session_bytes: int = 0) -> BenchHome:
    """Link ``corpus`` into a fresh ``$HOME/.taurus/sessions`` (mtimes kept, nothing copied)."""
    from benchmarks.corpus import CACHE

    compiled()

    CACHE.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="home-", dir=CACHE))  # same file system as the corpus
    home = base / ".taurus"
    home.mkdir(mode=0o700)
    sessions = home / "sessions"
    subprocess.run(["cp", "-al", str(corpus), str(sessions)], check=True)
    os.chmod(sessions, 0o700)
    env = {"TAURUS_HOME": str(home), "HOME": str(base)}
    return BenchHome(base, home, sessions, env, OPS, count, session_bytes)


def bench_home(corpus: Path) -> BenchHome:
    """A scratch home holding ``corpus``."""
    from benchmarks.corpus import corpus_bytes

    count = sum(1 for p in corpus.iterdir() if p.suffix == ".json")
    return link_home(corpus, count, corpus_bytes(corpus))


def corpus_home(count: int) -> BenchHome:
    """A scratch home holding the cached corpus of ``count`` sessions (made if needed)."""
    from benchmarks.corpus import ensure_corpus

    return bench_home(ensure_corpus(count))


def parse_args(repeat: int = 3, description: str | None = None) -> argparse.Namespace:
    """``--count`` (``10k``, ``100k``, or a number) and ``--repeat``."""
    from benchmarks.corpus import parse_count

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", "--size", type=parse_count, default=10_000)
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser.parse_args()


def corpus_bench(repeat: int = 3) -> tuple[argparse.Namespace, BenchHome]:
    """Parse ``--count`` and ``--repeat``, and link the corpus into a scratch home."""
    args = parse_args(repeat)
    return args, corpus_home(args.count)


def bench_main(
    rows: Callable[[BenchHome, int], list[Row]], doc: str | None, repeat: int = 3
) -> None:
    """Run one benchmark on its own: a scratch home of ``--count`` sessions, then its table."""
    args = parse_args(repeat, doc.splitlines()[0] if doc else None)
    bench = corpus_home(args.count)
    try:
        describe(bench)
        report(rows(bench, args.repeat))
    finally:
        bench.close()


def describe(bench: BenchHome) -> None:
    print(f"{bench.count:,} sessions, {bench.session_bytes / 1e6:,.0f} MB; {machine()}")


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


# -- timing ---------------------------------------------------------------------------------------
def run_shell(
    command: str,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    ok: Sequence[int] = (0,),
) -> Timing:
    """Run ``command`` in bash once (stdout discarded); its time and peak memory.

    The memory and CPU time (user + system) are GNU time's, of the command and its
    children (``/usr/bin/time -f "%U %S %M"``: a small parent, so the figures are the
    command's own). CPU time says what wall-clock time cannot on a busy machine.
    Raises ``Unrunnable`` when the shell could not start it as written (too many
    arguments), ``RuntimeError`` on any other failure.
    """
    full_env = {**os.environ, **(env or {})}
    with tempfile.NamedTemporaryFile(prefix="bench-time-") as note:
        argv = ["/bin/bash", "-c", command]
        if GNU_TIME:
            argv = [GNU_TIME, "-f", "%U %S %M", "-o", note.name, *argv]
        start = time.perf_counter()
        proc = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env, cwd=cwd
        )
        seconds = time.perf_counter() - start
        lines = Path(note.name).read_text().split()
    text = proc.stderr.decode(errors="replace")
    if "Argument list too long" in text:
        raise Unrunnable("argument list too long")
    if proc.returncode not in ok:
        tail = text.strip().splitlines()[-3:]
        raise RuntimeError(f"{command!r} exited {proc.returncode}: {' | '.join(tail)}")
    cpu: float | None = None
    memory = 0.0
    if len(lines) >= 3 and lines[-1].isdigit():
        cpu, memory = float(lines[-3]) + float(lines[-2]), kib_to_mb(int(lines[-1]))
    return Timing(seconds, memory, 1, cpu)


def kib_to_mb(kib: int) -> float:
    """A size the kernel and GNU time give in KiB, in the MB (10^6 bytes) file sizes are
    given in here: a ratio of the two is then of like units."""
    return kib * 1024 / 1e6


def best(
    command: str,
    repeat: int = 3,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    ok: Sequence[int] = (0,),
    setup: Callable[[], object] | None = None,
    budget: float = BUDGET,
) -> Timing:
    """Best of ``repeat`` runs of ``command`` (``setup`` untimed before each); once if slow."""
    found: Timing | None = None
    for run in range(repeat):
        if setup is not None:
            setup()
        timing = run_shell(command, env, cwd, ok)
        cpu = timing.cpu
        if found is not None and found.cpu is not None and cpu is not None:
            cpu = min(found.cpu, cpu)
        if found is None or timing.seconds < found.seconds:
            found = timing
        found.runs, found.cpu = run + 1, cpu
        if timing.seconds > budget:
            break
    assert found is not None
    return found


def attempt(command: str, repeat: int = 3, **kwargs: object) -> tuple[Timing | None, str]:
    """``best`` for a baseline that may not run here: (timing, "") or (None, the reason)."""
    try:
        return best(command, repeat, **kwargs), ""  # type: ignore[arg-type]
    except Unrunnable as exc:
        return None, str(exc)


Measure = Timing | float | None


def row(
    operation: str,
    ours: Measure,
    baseline: str = "",
    theirs: Measure = None,
    note: str = "",
    tutorial: bool = False,
    unit: str = "s",
) -> Row:
    """A ``Row`` from timings (their seconds, CPU and memory) or plain figures."""
    found = Row(operation, _value(ours), baseline, _value(theirs), note, unit, tutorial)
    if isinstance(ours, Timing):
        found.memory, found.cpu = ours.memory or None, ours.cpu
    if isinstance(theirs, Timing):
        found.theirs_cpu = theirs.cpu
    return found


def _value(measure: Measure) -> float | None:
    return measure.seconds if isinstance(measure, Timing) else measure


def time_call(func: Callable[[], object], repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    found = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        found = min(found, time.perf_counter() - start)
    return found


def time_shell(
    command: str | Sequence[str],
    repeat: int = 3,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> float:
    """Best wall-clock seconds of running a shell command (output discarded)."""
    text = command if isinstance(command, str) else shlex.join(command)
    return best(text, repeat, env, cwd, budget=float("inf")).seconds


def find_all(folder: Path, action: str) -> str:
    """``find FOLDER -name '*.json' -exec ACTION {} +``: one process per ARG_MAX of names."""
    return f"find {shlex.quote(str(folder))} -maxdepth 1 -name '*.json' -exec {action} {{}} +"


# -- output ---------------------------------------------------------------------------------------
def figure(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:,.0f} MB" if value >= 100 else f"{value:.1f} MB"
    if value >= 100:
        return f"{value:,.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value:.3f} s"


def ratio_text(row: Row) -> str:
    value = row.ratio
    if value is None:
        return row.note or "-"
    if row.unit == "MB":
        return f"{value:.2f}x its size"
    return f"{value:.2f}x" if value < 10 else f"{value:,.0f}x"


def report(rows: Sequence[Row | tuple[str, float, float]]) -> None:
    """Print the rows: operation, Taurus, baseline, its time, ratio (baseline / Taurus).

    A ``(task, taurus, recipe)`` tuple is a row whose baseline is the tutorial's recipe.
    """
    found = [r if isinstance(r, Row) else Row(r[0], r[1], "recipe", r[2]) for r in rows]
    heads = ("operation", "taurus", "cpu", "peak", "baseline", "time", "cpu", "ratio")
    table = [
        (
            r.operation,
            figure(r.taurus, r.unit) if r.taurus is not None else r.note,
            figure(r.cpu) if r.cpu is not None else "",
            f"{r.memory:.0f} MB" if r.memory else "",
            r.label,
            figure(r.theirs, r.unit) if r.theirs is not None else (r.note if r.baseline else ""),
            figure(r.theirs_cpu) if r.theirs_cpu is not None else "",
            ratio_text(r) if r.baseline else "",
        )
        for r in found
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(heads)]
    widths[4] = min(widths[4], 60)
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    print(
        "ratio = baseline time / Taurus time (above 1: Taurus is faster); cpu = user + system"
        " seconds; peak = Taurus's resident memory"
    )
