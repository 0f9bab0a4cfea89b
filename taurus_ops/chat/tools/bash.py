"""The bash tool: a command in its own process group, with a timeout, its output kept to
the head and tail."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from typing import Any

from taurus_ops.chat.tools.base import ToolBase, ToolError, ToolResult
from taurus_ops.store.format import decode_text
from taurus_ops.words import plural

READ_CHUNK = 1 << 16
# bash output is read only this far past what is kept (then the command is stopped)
FAR_PAST_FACTOR = 100  # times chat.outputLimit
FAR_PAST_MIN = 16 << 20  # bytes


class BashTool(ToolBase):
    """bash, run in the working directory."""

    def tool_bash(self, args: dict[str, Any]) -> ToolResult:
        command = args["command"]
        if not command.strip():
            raise ToolError("command is empty")
        timeout = min(args.get("timeout") or self.bash_timeout, self.bash_timeout)
        reserve = min(400, self.output_limit // 2)  # room for the notes added to the output
        body = self.output_limit - reserve
        kept = CappedOutput(body * 2 // 3, body - body * 2 // 3)
        far = max(FAR_PAST_FACTOR * self.output_limit, FAR_PAST_MIN)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            why = _collect(proc, kept, time.monotonic() + timeout, far)
        except BaseException:
            _kill_group(proc)  # Ctrl+C or a signal: never leave the command running
            _close_wait(proc)
            raise
        text = kept.text()
        if why == "timeout":
            return ToolResult(f"{text}\n[stopped after {timeout} s: timed out]", True)
        if why == "output":
            return ToolResult(
                f"{text}\n[stopped after {plural(kept.total, 'byte')} of output, far more than "
                "chat.outputLimit keeps; the command was killed: narrow it (head, grep, tail)]",
                True,
            )
        status = proc.returncode
        tail = f"\n[exit status {status}]" if status else ""
        return ToolResult((text or "(no output)") + tail, status != 0)


class CappedOutput:
    """The first ``head`` and last ``tail`` bytes of a stream, in constant memory, and how many
    bytes between them were dropped."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_size = max(head, 0)
        self.tail_size = max(tail, 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_size - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        if len(chunk) >= self.tail_size:
            self.tail[:] = chunk[len(chunk) - self.tail_size :]
        else:
            self.tail += chunk
            del self.tail[: max(len(self.tail) - self.tail_size, 0)]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        """Head and tail as text (invalid bytes as U+FFFD), with a note of what was dropped
        between them; a character cut in two at either edge is dropped whole."""
        if not self.dropped:
            return decode_text(bytes(self.head + self.tail))
        head = bytes(self.head)
        tail = bytes(self.tail)
        cut_head = _partial_end(head)
        cut_tail = _partial_start(tail)
        head, tail = head[: len(head) - cut_head], tail[cut_tail:]
        dropped = self.dropped + cut_head + cut_tail
        return (
            f"{decode_text(head)}\n[... {plural(dropped, 'byte')} dropped ...]\n{decode_text(tail)}"
        )


def _partial_end(data: bytes) -> int:
    """How many bytes at the end of ``data`` are the start of an unfinished UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 == 0x80:  # a continuation byte: look further back for its lead
            continue
        return back if _utf8_length(lead) > back else 0
    return 0


def _utf8_length(lead: int) -> int:
    """The length of the UTF-8 character a lead byte opens (1 for ASCII or an invalid byte)."""
    for length, mask, value in ((2, 0xE0, 0xC0), (3, 0xF0, 0xE0), (4, 0xF8, 0xF0)):
        if lead & mask == value:
            return length
    return 1


def _partial_start(data: bytes) -> int:
    """How many continuation bytes open ``data`` (the rest of a character cut before it)."""
    count = 0
    while count < min(3, len(data)) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _collect(proc: subprocess.Popen[bytes], kept: CappedOutput, deadline: float, far: int) -> str:
    """Read the command's output into ``kept`` until it ends; ``"done"``, ``"timeout"`` (the
    command was killed at ``deadline``) or ``"output"`` (killed once ``far`` bytes came)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    why = "done"
    with selectors.DefaultSelector() as waiting:
        waiting.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = "timeout"
                break
            if not waiting.select(min(remaining, 1.0)):
                continue
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                break
            kept.add(chunk)
            if kept.total > far:
                why = "output"
                break
    if why == "done":
        try:
            proc.wait(max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            why = "timeout"
    if why != "done":
        _kill_group(proc)
    _close_wait(proc)
    return why


def _close_wait(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
