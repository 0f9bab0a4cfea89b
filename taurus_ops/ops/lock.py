"""The ops lock: one maintenance job (cleanup, backup, sync, doctor --fix) at a time per home."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from taurus_ops.errors import OpsLocked
from taurus_ops.store.lock import OpsLock

_HELD = threading.local()  # the homes whose ops lock this thread holds


@contextlib.contextmanager
def ops_lock(
    home: Path,
    wait: float = 0.0,
    cancel: threading.Event | None = None,
    log: logging.Logger | None = None,
) -> Iterator[OpsLock]:
    """Hold the ops lock. With ``wait`` > 0, retry once a second for up to that many
    seconds (giving up early when the event ``cancel`` is set).

    Taken again by the thread that holds it (a job's ``run`` inside a scheduled run that
    took the lock first), it is simply held on: the inner block is part of the same job.
    """
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
