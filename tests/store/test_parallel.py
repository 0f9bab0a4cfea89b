"""Worker processes' results handed over through files in memory: the same results as
read in this process, in a private folder that goes with the pool, and through the
pipe still when no file can be written (the folder gone, a write refused); folders left
by killed processes are removed, and only those."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taurus_ops.store import parallel

ITEMS = list(range(40))


def big(n: int) -> tuple[int, bytes, list[str]]:
    """A result of some size, as an index batch is."""
    return n, bytes([n % 251]) * (50_000 + n), [f"word{n}-{i}" for i in range(500)]


def small_files() -> None:
    """A worker whose files cannot grow past a kilobyte: its writes fail (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))


def files_seen(folder: str) -> set[str]:
    return set(os.listdir(folder))


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 2)


def test_results_through_files_are_those_read_here_and_the_folder_goes(pooled: None) -> None:
    if not os.path.isdir(parallel.HAND_OVER_IN):
        pytest.skip(f"no {parallel.HAND_OVER_IN} on this machine")
    with parallel.Workers(len(ITEMS), 4, hand_over=True) as workers:
        assert workers.pool is not None and workers.hand_over is not None
        folder = workers.hand_over
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        got = sorted(workers.map(big, ITEMS, chunk=1))
        assert files_seen(folder) == set()  # each file went as it was read
    assert got == [big(n) for n in ITEMS]
    assert not os.path.exists(folder)


def test_without_a_folder_to_write_to_results_come_through_the_pipe(pooled: None) -> None:
    if not os.path.isdir(parallel.HAND_OVER_IN):
        pytest.skip(f"no {parallel.HAND_OVER_IN} on this machine")
    with parallel.Workers(len(ITEMS), 4, hand_over=True) as workers:
        assert workers.hand_over is not None
        os.rmdir(workers.hand_over)  # a cleaner emptied /dev/shm meanwhile
        assert sorted(workers.map(big, ITEMS, chunk=1)) == [big(n) for n in ITEMS]


def test_results_whose_files_went_before_they_were_read_are_read_here(pooled: None) -> None:
    """Files emptied out of the folder while results wait in it (a cleaner of /dev/shm,
    a logout's removal of a user's shared memory): those results are made again in this
    process, and every result comes once."""
    if not os.path.isdir(parallel.HAND_OVER_IN):
        pytest.skip(f"no {parallel.HAND_OVER_IN} on this machine")
    with parallel.Workers(len(ITEMS), 4, hand_over=True) as workers:
        assert workers.hand_over is not None
        results = workers.map(big, ITEMS, chunk=1)
        got = [next(results)]
        deadline = time.monotonic() + 30
        while not files_seen(workers.hand_over) and time.monotonic() < deadline:
            time.sleep(0.001)  # until some result waits in a file
        emptied = files_seen(workers.hand_over)
        for name in emptied:
            os.unlink(os.path.join(workers.hand_over, name))
        got.extend(results)
    assert emptied  # some result was waiting when the files went
    assert sorted(got) == [big(n) for n in ITEMS]


def test_a_write_refused_sends_the_result_through_the_pipe_and_leaves_no_file(
    pooled: None,
) -> None:
    if not os.path.isdir(parallel.HAND_OVER_IN):
        pytest.skip(f"no {parallel.HAND_OVER_IN} on this machine")
    with parallel.Workers(len(ITEMS), 4, small_files, hand_over=True) as workers:
        assert workers.hand_over is not None
        folder = workers.hand_over
        assert sorted(workers.map(big, ITEMS, chunk=1)) == [big(n) for n in ITEMS]
        assert files_seen(folder) == set()


def test_no_hand_over_folder_where_there_is_no_memory_folder(pooled: None, tmp_path: Path) -> None:
    assert parallel.hand_over_folder(str(tmp_path / "none")) is None


def gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_folders_of_processes_gone_and_untouched_for_long_are_removed(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path / "shm"
    tmp_path.mkdir()
    prefix = parallel.HAND_OVER_PREFIX
    dead = gone_pid()
    old = time.time() - parallel.STALE_SECONDS - 60
    made = {
        "dead, old": (f"{prefix}{dead}-a", True, old),
        "dead, fresh": (f"{prefix}{dead}-b", True, None),
        "alive, old": (f"{prefix}{os.getpid()}-c", True, old),
        "not a folder": (f"{prefix}{dead}-d", False, old),
        "not ours by name": (f"other-{dead}-e", True, old),
        "no number": (f"{prefix}x-f", True, old),
    }
    for name, is_dir, when in made.values():
        path = tmp_path / name
        if is_dir:
            path.mkdir()
            (path / "left").write_bytes(b"x")
        else:
            path.write_bytes(b"x")
        if when is not None:
            os.utime(path, (when, when))
    parallel.remove_left_over(str(tmp_path))
    left = set(os.listdir(tmp_path))
    assert left == {name for key, (name, *_) in made.items() if key != "dead, old"}
    folder = parallel.hand_over_folder(str(tmp_path))  # a new one sweeps the same way
    assert folder is not None and os.path.basename(folder).startswith(f"{prefix}{os.getpid()}-")
