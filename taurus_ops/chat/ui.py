"""What the user sees: streamed markdown in a terminal, or plain text for scripts (``-p``)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from taurus_ops.chat.client import Reply
from taurus_ops.chat.permissions import Answer, parse_answer
from taurus_ops.chat.tools import ToolResult
from taurus_ops.store.format import clean, clean_text
from taurus_ops.words import plural

FENCE = "```"


def _one_line(text: str, width: int = 100) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def describe_call(name: str, args: dict[str, Any]) -> str:
    """``write src/a.py`` / ``bash pytest -q``: a tool run in one line."""
    target = args.get("file") or args.get("command") or args.get("pattern")
    if isinstance(target, str):
        extra = f" in {args['path']}" if isinstance(args.get("path"), str) else ""
        return f"{name} {_one_line(target, 90)}{extra}"
    return f"{name} {_one_line(json.dumps(args, ensure_ascii=False), 90)}"


def split_complete(text: str) -> tuple[str, str]:
    """Split streamed markdown into (complete blocks to render now, the rest to keep).

    A block ends at a blank line that is not inside a fenced code block."""
    cut = 0
    in_fence = False
    position = 0
    for line in text.splitlines(keepends=True):
        position += len(line)
        stripped = line.strip()
        if stripped.startswith(FENCE):
            in_fence = not in_fence
            if not in_fence and line.endswith("\n"):
                cut = position  # a closed code block is complete
        elif not stripped and not in_fence and line.endswith("\n"):
            cut = position
    return text[:cut], text[cut:]


class TerminalUI:
    """Rich output for the interactive chat: markdown rendered block by block as it streams."""

    def __init__(self, console: Any = None) -> None:
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        self.console = console
        self.pending = ""
        self.streaming = False
        self.live: Any = None
        self.drawn = 0.0
        self.restore_echo: Callable[[], None] | None = None

    def _render(self, text: str) -> None:
        if not text.strip():
            return
        from rich.markdown import Markdown

        self.console.print(Markdown(text, code_theme="ansi_dark"))

    def reply_start(self) -> None:
        self.pending = ""
        self.streaming = True
        self.restore_echo = quiet_terminal()

    def text(self, chunk: str) -> None:
        self.pending += chunk
        done, self.pending = split_complete(self.pending)
        if done:
            self._stop_live()
            self._render(done)
        if self.pending.strip():
            self._show_live()

    def _show_live(self) -> None:
        """The block still arriving, redrawn in place (at most ~12 times a second)."""
        now = time.monotonic()
        if self.live is not None and now - self.drawn < 0.08:
            return
        from rich.markdown import Markdown

        if self.live is None:
            from rich.live import Live

            self.live = Live(
                console=self.console,
                transient=True,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start()
        self.live.update(Markdown(self.pending, code_theme="ansi_dark"), refresh=True)
        self.drawn = now

    def _stop_live(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            try:
                live.stop()
            except Exception:
                pass

    def flush(self) -> None:
        self._stop_live()
        if self.pending:
            self._render(self.pending)
            self.pending = ""

    def reply_end(self, reply: Reply) -> None:
        try:
            self.flush()
        finally:
            self.streaming = False
            if self.restore_echo is not None:
                self.restore_echo()
                self.restore_echo = None
        if reply.interrupted:
            self.console.print(
                f"[yellow]⚠ reply interrupted: {_escape(str(reply.error))}; what arrived is saved[/]"
            )

    def notice(self, text: str) -> None:
        self.flush()
        self.console.print(f"[dim]{_escape(text)}[/]", markup=True, highlight=False)

    def plain(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def warn(self, text: str) -> None:
        self.flush()
        self.console.print(f"[yellow]⚠ {_escape(text)}[/]")

    def error(self, text: str) -> None:
        self.flush()
        self.console.print(f"[red]✗ {_escape(text)}[/]")

    def tool_start(self, name: str, args: dict[str, Any]) -> None:
        self.flush()
        self.console.print(f"[cyan]⏺ {_escape(describe_call(name, args))}[/]")

    def tool_end(self, name: str, result: ToolResult, outcome: str) -> None:
        lines = result.content.splitlines() or [""]
        head = _escape(_one_line(lines[0], 100))
        more = f" [dim](+{plural(len(lines) - 1, 'line')})[/]" if len(lines) > 1 else ""
        colour = {"ok": "dim", "error": "red", "refused": "yellow", "interrupted": "yellow"}[
            outcome
        ]
        self.console.print(f"  [{colour}]⎿ {head}[/]{more}")

    def confirm(self, question: str) -> bool:
        self.flush()
        try:
            raw = self.console.input(f"[bold]{_escape(question)} \\[y/N][/] ")
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return False
        return raw.strip().lower() in ("y", "yes")

    def ask(self, question: str) -> str:
        """A line of text from the user ('' if there is none)."""
        self.flush()
        try:
            return self.console.input(f"[bold]{_escape(question)}[/] ")
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return ""

    def ask_permission(self, name: str, args: dict[str, Any]) -> Answer:
        self.flush()
        self.console.print(f"[bold yellow]? Allow {_escape(describe_call(name, args))}[/]")
        for line in preview(name, args):
            self.console.print(f"  [dim]{_escape(line)}[/]")
        while True:
            try:
                raw = self.console.input(
                    r"  [bold]\[y]es once / \[a]lways this session / \[n]o:[/] "
                )
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return "no"
            answer = parse_answer(raw)
            if answer is not None:
                return answer


def quiet_terminal() -> Callable[[], None] | None:
    """Stop the terminal echoing what is typed while a reply streams; returns the undo.

    An echoed key, Ctrl+C's ``^C`` above all, moves the cursor under the live display
    of the arriving text, which then erases the wrong lines and shows the text twice.
    Keys typed meanwhile are kept for the next prompt; Ctrl+C still stops the reply.
    """
    try:
        import termios

        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        before = termios.tcgetattr(fd)
        quiet = list(before)
        quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except Exception:  # no terminal, or not one termios knows: nothing to quieten
        return None

    def restore() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, before)
        except Exception:
            pass

    return restore


def preview(name: str, args: dict[str, Any], limit: int = 12) -> list[str]:
    """A few lines showing what a write, edit or bash would do."""
    if name == "bash" and isinstance(args.get("command"), str):
        return ["$ " + line for line in args["command"].splitlines()[:limit]]
    if name == "write" and isinstance(args.get("content"), str):
        lines = args["content"].splitlines()
        shown = ["+ " + line for line in lines[:limit]]
        if len(lines) > limit:
            shown.append(f"… {plural(len(lines) - limit, 'more line')}")
        return shown
    if name == "edit":
        old = str(args.get("old_string", "")).splitlines()[:limit]
        new = str(args.get("new_string", "")).splitlines()[:limit]
        return ["- " + line for line in old] + ["+ " + line for line in new]
    return []


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class PlainUI:
    """For ``taurus chat -p``: the reply as plain text on stdout, everything else on stderr."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.wrote = False

    def reply_start(self) -> None:
        self.wrote = False

    def text(self, chunk: str) -> None:
        self.out.write(chunk)
        self.out.flush()
        self.wrote = bool(chunk) or self.wrote
        self.last = chunk

    def reply_end(self, reply: Reply) -> None:
        if self.wrote and not reply.text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()
        if reply.interrupted:
            self.warn(f"reply interrupted: {reply.error}; what arrived is saved")

    def notice(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    plain = notice

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.err, flush=True)

    def error(self, text: str) -> None:
        print(f"error: {text}", file=self.err, flush=True)

    def tool_start(self, name: str, args: dict[str, Any]) -> None:
        print(f"⏺ {describe_call(name, args)}", file=self.err, flush=True)

    def tool_end(self, name: str, result: ToolResult, outcome: str) -> None:
        first = result.content.splitlines()[0] if result.content else ""
        if outcome == "refused":
            print(f"refused: {name}: {first}", file=self.err, flush=True)
        else:
            print(f"  ⎿ {outcome}: {_one_line(first, 100)}", file=self.err, flush=True)

    def confirm(self, question: str) -> bool:
        return False

    def ask(self, question: str) -> str:
        return ""  # never asked: -p mode has no one to answer

    def ask_permission(self, name: str, args: dict[str, Any]) -> Answer:
        return "no"  # never asked: -p mode refuses what is not allowed


class SafeUI:
    """Wraps a UI so that a terminal that has gone away (SIGHUP, a closed pipe) never stops the
    chat from saving: output errors are ignored and questions are answered no. Text shown is
    valid UTF-8: a name that is not, or a lone surrogate from the model, shows as U+FFFD."""

    def __init__(self, ui: Any) -> None:
        self.inner = ui

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target
        refusal: Any = {"ask_permission": "no", "confirm": False, "ask": ""}.get(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(_shown(a) for a in args)
            kwargs = {k: _shown(v) for k, v in kwargs.items()}
            try:
                return target(*args, **kwargs)
            except (OSError, ValueError):  # EIO, EPIPE, or writing to a closed file
                return refusal

        return call


def _shown(value: Any) -> Any:
    """A UI call's argument with every string cleaned for the terminal."""
    if isinstance(value, str | dict | list):
        return clean(value)
    if isinstance(value, ToolResult):
        return dataclasses.replace(value, content=clean_text(value.content))
    return value
