"""The ops lock: one maintenance job (cleanup, backup, sync, doctor --fix) at a time per home."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.errors import OpsLocked
from taurus_ops.store.lock import OpsLock

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext

_HELD = threading.local()  # the homes whose ops lock this thread holds


@contextlib.contextmanager
def ops_lock(
    where: JobContext | Path,
    wait: float = 0.0,
    cancel: threading.Event | None = None,
    log: logging.Logger | None = None,
) -> Iterator[OpsLock]:
    """Hold the ops lock of a job's home (``where``: its context, or the home itself).

    With ``wait`` > 0, retry once a second for up to that many seconds, giving up early
    when the event ``cancel`` is set (by default the context's own, set when the
    scheduler stops). The first wait is logged to ``log`` when one is given.

    Taken again by the thread that holds it (a job's ``run`` inside a scheduled run that
    took the lock first), it is simply held on: the inner block is part of the same job.
    """
    if isinstance(where, str | os.PathLike):
        home = Path(where)
    else:
        home = where.home
        cancel = cancel if cancel is not None else where.cancel
    key = os.path.realpath(home)
    held: dict[str, OpsLock] = _HELD.__dict__.setdefault("homes", {})
    if key in held:
        yield held[key]
        return
    deadline = time.monotonic() + wait
    told = False
    while True:
        lock = OpsLock(home)
        try:
            lock.acquire()
            break
        except OpsLocked as exc:
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                raise
            if log is not None and not told:
                log.info("waiting up to %ds: %s", wait, exc)
                told = True
            pause = min(1.0, max(deadline - time.monotonic(), 0.05))
            if cancel is not None:
                cancel.wait(pause)
            else:
                time.sleep(pause)
    held[key] = lock
    try:
        yield lock
    finally:
        del held[key]
        lock.release()
