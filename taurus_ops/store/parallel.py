"""Reading many session files on every core: worker processes, when they pay for themselves.

Parsing is CPU work in Python, so threads would take turns; processes do not. Starting
one costs a few milliseconds (forked) or a tenth of a second (spawned, when other
threads run: forking then could copy a lock some thread holds), so below
``POOL_FROM`` files everything stays in this process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Self, TypeVar

POOL_FROM = 400  # files to read before worker processes pay for their start
CHUNK = 32  # files a worker takes at a time

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
    ) -> None:
        start_from = POOL_FROM if start_from is None else start_from
        workers = min(cores(), max(1, count // max(start_from // 2, 1)))
        self.start_from = start_from
        self.pool: Any = None
        if count >= start_from and workers >= 2:
            import multiprocessing  # only now: most commands need no workers

            method = "fork" if threading.active_count() == 1 else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(workers, initializer, initargs)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def map(self, func: Callable[[A], R], items: list[A], chunk: int = CHUNK) -> Iterator[R]:
        """``func`` of every item, in no particular order, ``chunk`` items a worker at a time."""
        if self.pool is None:
            for item in items:
                yield func(item)
            return
        yield from self.pool.imap_unordered(func, items, chunksize=chunk)
