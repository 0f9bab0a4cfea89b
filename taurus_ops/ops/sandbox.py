"""User templates (export templates, session templates) in Jinja's sandbox, within limits.

Jinja's immutable sandbox keeps a template away from Python internals, files and the
data's insides; this module also bounds what a template may cost. ``*`` and ``+`` may
not build a string or list past ``MAX_SEQUENCE`` and ``**`` takes small exponents.
While a template renders, a CPU-time timer (``SIGPROF``, so the wall-clock alarm is
left to others) checks every ``TICK`` seconds that the render is still within
``Limits.seconds`` and has not grown the process by more than ``Limits.memory`` bytes;
the output is streamed and counted against ``Limits.output`` characters. Whatever
limit is hit, the render stops and one line says which (``TemplateLimit``).

    with Renderer("template report.md.j2") as renderer:
        text = renderer.render(template, context)
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from taurus_ops.errors import UsageError

MAX_SEQUENCE = 10_000_000  # the largest string or list a template may build with * or +
MAX_EXPONENT = 64
TICK = 0.05  # seconds of CPU time between checks
_JOIN_EVERY = 4096  # output pieces kept before they are joined (a piece may be one character)


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    output: int = 64_000_000  # characters
    memory: int = 512 << 20  # bytes the process may grow by while a template renders


LIMITS = Limits()


class TemplateLimit(UsageError):
    """A template went past a limit (time, output or memory) and was stopped."""


class _Stop(BaseException):
    """Raised inside the render (from the timer) to stop it; no template code catches it."""


def make_sandbox(**options: Any) -> Any:
    """Jinja's immutable sandbox with bounded ``*``, ``+`` and ``**``."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError("exponent too large for a template")
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if (
                        isinstance(seq, str | list | tuple)
                        and isinstance(times, int)
                        and len(seq) * times > MAX_SEQUENCE
                    ):
                        raise SecurityError("a template may not build a sequence that large")
            if (
                operator == "+"
                and isinstance(left, str | list | tuple)
                and isinstance(right, str | list | tuple)
                and len(left) + len(right) > MAX_SEQUENCE
            ):
                raise SecurityError("a template may not build a sequence that large")
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox(**options)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident() -> int:
    """Bytes of memory this process holds now (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Renderer:
    """Renders templates for one job (all the strings of a session template, or one export)
    within ``limits``: the time and memory limits cover the whole ``with`` block, the
    output limit all that its renders write together."""

    def __init__(self, label: str, limits: Limits | None = None) -> None:
        self.label = label
        self.limits = limits or LIMITS
        self.written = 0
        self.reason = ""
        self._active = False
        self._armed = False
        self._old_handler: Any = None
        self._old_timer: tuple[float, float] = (0.0, 0.0)

    # -- the watch ---------------------------------------------------------------------------
    def __enter__(self) -> Renderer:
        self.deadline = time.monotonic() + self.limits.seconds
        self.base = _resident()
        self._active = True
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGPROF, self._tick)
            self._old_timer = signal.setitimer(signal.ITIMER_PROF, TICK, TICK)
            self._armed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False  # a tick already on its way does nothing now
        if self._armed:
            signal.setitimer(signal.ITIMER_PROF, *self._old_timer)
            signal.signal(signal.SIGPROF, self._old_handler)
            self._armed = False
        if exc_type is _Stop:
            raise TemplateLimit(f"{self.label}: {self.message()}") from None

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        if self._active:
            self.check()

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            self._stop("time")
        if _resident() - self.base > self.limits.memory:
            self._stop("memory")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self._active = False
        raise _Stop

    def message(self) -> str:
        limits = self.limits
        if self.reason == "output":
            return (
                f"stopped: its output passed {limits.output:,} characters, the most a "
                "template may write (a loop without end?)"
            )
        if self.reason == "memory":
            return (
                f"stopped: it took more than {limits.memory >> 20} MB of memory, the most "
                "a template may use"
            )
        return (
            f"stopped after {limits.seconds:g} s, the longest a template may run "
            "(a loop without end?)"
        )

    # -- rendering --------------------------------------------------------------------------
    def render(self, template: Any, context: dict[str, Any]) -> str:
        """``template`` rendered with ``context``, streamed and counted."""
        if not self._active:
            raise RuntimeError("Renderer.render outside its with block")
        blocks: list[str] = []
        pieces: list[str] = []
        for piece in template.generate(**context):
            self.written += len(piece)
            if self.written > self.limits.output:
                self._stop("output")
            pieces.append(piece)
            if len(pieces) >= _JOIN_EVERY:
                blocks.append("".join(pieces))
                pieces.clear()
                self.check()  # where no timer runs (not the main thread), check here
        blocks.append("".join(pieces))
        return "".join(blocks)
