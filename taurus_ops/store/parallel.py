"""Reading many session files on every core: worker processes, when they pay for themselves.

Parsing is CPU work in Python, so threads would take turns; processes do not. Starting
one costs a few milliseconds (forked) or a tenth of a second (spawned, when other
threads run: forking then could copy a lock some thread holds), so below
``POOL_FROM`` files everything stays in this process.

Results of a megabyte or so (the index's batches: a session's text and more) are
better handed over through files in memory (``hand_over``) than the pool's pipe. That
pipe takes them in pieces of its buffer's size, each received and unpickled by a
thread of this process, which takes the interpreter's lock from the thread using them
once a piece: 0.2-0.3 s of a 3 s build of 10,000 sessions went so. A worker
instead writes each result to a file of its own in a private folder of ``/dev/shm``
(0700), and this process reads it in one go, removing it as it does. Where there is
no such folder, or a file cannot be written (a full ``/dev/shm``), the result goes
through the pipe as before; a result whose file is gone before it is read (a cleaner
of ``/dev/shm``) is made again in this process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Self, TypeVar

POOL_FROM = 400  # files to read before worker processes pay for their start
CHUNK = 32  # files a worker takes at a time
HAND_OVER_IN = "/dev/shm"  # the memory-backed folder results are handed over through
HAND_OVER_PREFIX = "taurus-results-"
STALE_SECONDS = 3600  # a hand-over folder untouched this long, of a process gone, is left over

A = TypeVar("A")
R = TypeVar("R")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Workers:
    """A pool of one worker process a core for ``count`` files, or none when not worth it.

    Make it before starting any thread of your own (a progress bar), and use it as a
    context manager; ``map`` then runs a module-level function over the items (each
    worker runs ``initializer(*initargs)`` first)."""

    def __init__(
        self,
        count: int,
        start_from: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        hand_over: bool = False,
    ) -> None:
        start_from = POOL_FROM if start_from is None else start_from
        workers = min(cores(), max(1, count // max(start_from // 2, 1)))
        self.start_from = start_from
        self.pool: Any = None
        self.hand_over: str | None = None  # the folder results come through (see the module)
        if count >= start_from and workers >= 2:
            import multiprocessing  # only now: most commands need no workers

            method = "fork" if threading.active_count() == 1 else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(workers, initializer, initargs)
            if hand_over:
                self.hand_over = hand_over_folder()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        if self.hand_over is not None:
            shutil.rmtree(self.hand_over, ignore_errors=True)
            self.hand_over = None

    def map(self, func: Callable[[A], R], items: list[A], chunk: int = CHUNK) -> Iterator[R]:
        """``func`` of every item, in no particular order, ``chunk`` items a worker at a time."""
        if self.pool is None:
            for item in items:
                yield func(item)
            return
        if self.hand_over is None:
            yield from self.pool.imap_unordered(func, items, chunksize=chunk)
            return
        jobs = [(func, self.hand_over, item, n) for n, item in enumerate(items)]
        for kind, value, n in self.pool.imap_unordered(_to_file, jobs, chunksize=chunk):
            if kind == "value":
                yield value
                continue
            try:
                yield _from_file(value)
            except OSError:  # its file went (a cleaner emptied /dev/shm): read it here
                yield func(items[n])


def _to_file(job: tuple[Callable[[Any], Any], str, Any, int]) -> tuple[str, Any, int]:
    """In a worker: ``func(item)`` written to a file of ``folder``, ("file", its name,
    ``n``); ("value", the result, ``n``) when the file cannot be written."""
    func, folder, item, n = job
    result = func(item)
    try:
        handle, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return "value", result, n
    try:
        with os.fdopen(handle, "wb") as out:
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name)
        return "value", result, n
    return "file", name, n


def _from_file(name: str) -> Any:
    """A worker's result, read from its file (which goes); OSError when it cannot be."""
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    return pickle.loads(data)  # written by a worker of ours, in a folder only we can enter


def hand_over_folder(base: str = HAND_OVER_IN) -> str | None:
    """A new private folder of ``base`` to hand results over through; None when there is
    none to be had. Folders left by processes gone (killed before they could remove
    theirs) go first."""
    if not os.path.isdir(base):
        return None
    remove_left_over(base)
    try:
        return tempfile.mkdtemp(prefix=f"{HAND_OVER_PREFIX}{os.getpid()}-", dir=base)
    except OSError:
        return None


def remove_left_over(base: str, now: float | None = None) -> None:
    """Remove this user's hand-over folders of ``base`` whose process is gone and that
    nothing has touched for ``STALE_SECONDS`` (a process of the same number in another
    PID namespace, sharing the folder, would still be writing to its own)."""
    from taurus_ops.store.lock import process_alive  # only now: not on every start-up

    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if not entry.name.startswith(HAND_OVER_PREFIX):
                continue
            pid = entry.name[len(HAND_OVER_PREFIX) :].split("-", 1)[0]
            with contextlib.suppress(OSError, ValueError):
                st = entry.stat(follow_symlinks=False)
                if (
                    entry.is_dir(follow_symlinks=False)
                    and st.st_uid == os.getuid()
                    and now - st.st_mtime > STALE_SECONDS
                    and not process_alive(int(pid))
                ):
                    shutil.rmtree(entry.path, ignore_errors=True)
