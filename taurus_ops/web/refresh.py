"""The session list's refresh on a worker thread: a page asks for it, waits a bounded
time, and otherwise goes on with the list it has (see ``taurus_ops.web.data``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

# (the folders changed since the last refresh, the last refresh is too old, their stamp, now)
State = tuple[bool, bool, object, float]


@dataclass
class Run:
    """One refresh of the session list, and whoever waits for it."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    announced: bool = False  # for a known change: pages wait for it and say they are behind
    stamp: object = None  # the folders' stamps when it started


class Refresher:
    """Runs ``work(stamp, now)`` on one worker thread when asked, one run at a time.

    ``state()`` says whether and why a refresh is due; ``first()`` whether no list was
    loaded yet (the first one is always waited for). ``lock`` is the owner's, which it
    also holds while it puts a new list in place, so asking and replacing never interleave.
    """

    def __init__(
        self,
        lock: threading.Lock,
        state: Callable[[], State],
        first: Callable[[], bool],
        work: Callable[[object, float], None],
        name: str = "taurus-index",
    ) -> None:
        self._lock = lock
        self._state = state
        self._first = first
        self._work = work
        self._name = name
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._pending: Run | None = None  # a refresh asked for and not started
        self._running: Run | None = None
        self._closed = False

    def refresh(self, force: bool, wait: float | None) -> bool:
        """Ask for a refresh when one is due (``force``: always) and wait ``wait`` seconds
        for it after a change to the folders; True when the list is current."""
        changed, old, stamp, _ = self._state()
        if not (force or changed or old):
            return True
        announced = force or changed or self._first()
        with self._lock:
            if self._closed:
                return False
            running = self._running
            if not force and running is not None and running.stamp == stamp:
                run = running  # the refresh under way started after this change
            elif self._pending is not None:
                run = self._pending
            else:
                run = self._pending = Run()
                if self._worker is None:
                    self._worker = threading.Thread(target=self._loop, name=self._name, daemon=True)
                    self._worker.start()
                self._wake.set()
            run.announced = run.announced or announced
            if not announced:
                return True  # nothing known to have changed: the list stands meanwhile
            if self._first():
                wait = None
        finished = run.done.wait(wait)
        if finished and run.error is not None:
            raise run.error
        return finished

    def behind(self) -> bool:
        """True while a refresh for a change to the folders is still running."""
        with self._lock:
            return any(r is not None and r.announced for r in (self._pending, self._running))

    def stop(self) -> None:
        """End the worker at its next wake-up; called with the owner's lock held."""
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                if self._closed:
                    return
                run, self._pending = self._pending, None
                self._running = run
            if run is None:
                continue
            try:
                _, _, stamp, now = self._state()
                run.stamp = stamp
                self._work(stamp, now)
            except BaseException as exc:  # given to the pages that wait for this run
                run.error = exc
            finally:
                with self._lock:
                    self._running = None
                run.done.set()
