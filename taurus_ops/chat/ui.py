"""What the user sees: streamed markdown in a terminal, or plain text for scripts (``-p``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from taurus_ops.chat.client import Reply
from taurus_ops.chat.permissions import Answer
from taurus_ops.chat.tools import ToolResult
from taurus_ops.store.format import clean, clean_text
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.store.index import Index

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
    """Rich output for the interactive chat: markdown rendered block by block as it streams,
    a status line while the model thinks or a tool runs, single-key questions."""

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
        self.status = StatusLine(console)
        self.change: Any = None  # the change the next permission question is about

    def _render(self, text: str) -> None:
        if not text.strip():
            return
        from rich.markdown import Markdown

        self.console.print(Markdown(text, code_theme="ansi_dark"))

    def reply_start(self) -> None:
        self.pending = ""
        self.streaming = True
        self.restore_echo = quiet_terminal()
        self.status.start("Thinking")

    def tokens(self, usage: dict[str, Any]) -> None:
        """Token counts from the API (the request's size once the reply starts)."""
        count = sum(
            int(usage.get(k) or 0)
            for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
        self.status.tokens = count or None

    def tool_coming(self, name: str) -> None:
        self.status.label = f"Preparing {name}"

    def text(self, chunk: str) -> None:
        self.status.stop()  # the first text: the status line goes, the text takes its place
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
        self.status.stop()
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

    def close(self) -> None:
        self.status.stop()
        self._stop_live()

    def notice(self, text: str) -> None:
        if not self.status.running:
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
        if self.restore_echo is None:  # a key typed meanwhile would break the status line
            self.restore_echo = quiet_terminal()
        self.status.start(f"Running {name}")

    def tool_end(self, name: str, result: ToolResult, outcome: str) -> None:
        self.status.stop()
        if self.restore_echo is not None:
            self.restore_echo()
            self.restore_echo = None
        lines = result.content.splitlines() or [""]
        head = _escape(_one_line(lines[0], 100))
        more = (
            f" [dim](+{plural(len(lines) - 1, 'line')}; Ctrl+O or /expand shows them)[/]"
            if len(lines) > 1
            else ""
        )
        colour = {"ok": "dim", "error": "red", "refused": "yellow", "interrupted": "yellow"}.get(
            outcome, "dim"
        )
        self.console.print(f"  [{colour}]⎿ {head}[/]{more}")

    # -- questions -------------------------------------------------------------------------
    def confirm(self, question: str) -> bool:
        self.flush()
        return self.choose(question, [("y", "yes"), ("n", "no")], default="n") == "y"

    def choose(self, question: str, options: list[tuple[str, str]], default: str = "n") -> str:
        """Ask with single keys: ``options`` are (key, label); Esc, Ctrl+C and Ctrl+D give
        ``default``. The answer is echoed."""
        self.flush()
        keys = "  ".join(f"\\[{k}] {_escape(label)}" for k, label in options)
        self.console.print(f"[bold]{_escape(question)}[/]  {keys} ", end="")
        try:
            key = read_key({k for k, _ in options})
        except (EOFError, KeyboardInterrupt):
            key = None
        chosen = key if key is not None else default
        label = dict(options).get(chosen, chosen)
        self.console.print(f"→ [bold]{_escape(label)}[/]")
        return chosen

    def planned_change(self, change: Any) -> None:
        """The write or edit the next permission question is about (its diff is shown)."""
        self.change = change

    def ask(self, question: str) -> str:
        """A line typed in answer ('' for none, Ctrl+C or Ctrl+D)."""
        self.flush()
        try:
            return self.console.input(f"[bold]{_escape(question)}[/] ")
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return ""

    def ask_permission(self, name: str, args: dict[str, Any]) -> Answer:
        self.flush()
        change, self.change = self.change, None
        self.console.print(f"[bold yellow]? Allow {_escape(describe_call(name, args))}[/]")
        if change is not None:
            before = change.before.decode("utf-8", "replace") if change.before is not None else None
            self.diff(diff_lines(before, change.text, change.shown))
        else:
            for line in preview(name, args):
                self.console.print(f"  [dim]{_escape(line)}[/]")
        answer = self.choose(
            "  Allow?", [("y", "yes, once"), ("a", "always, this session"), ("n", "no")], "n"
        )
        answers: dict[str, Answer] = {"y": "yes", "a": "always"}
        return answers.get(answer, "no")

    def diff(self, lines: list[str]) -> None:
        """A diff from ``diff_lines``, coloured."""
        for line in lines:
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "cyan"
                if line.startswith("@@")
                else "dim"
            )
            self.console.print(f"  [{style}]{_escape(line)}[/]", highlight=False)

    def page(self, text: str) -> None:
        """Show a long text, through the pager when it does not fit the terminal."""
        self.flush()
        lines = text.splitlines() or [""]
        if len(lines) < max(self.console.height - 3, 5) or not self.console.is_terminal:
            self.console.print(text, markup=False, highlight=False)
            return
        os.environ.setdefault("LESS", "-FRX")  # less quits at the end, keeps the screen
        with self.console.pager():
            self.console.print(text, markup=False, highlight=False)


SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StatusLine:
    """One line with a spinner, the seconds elapsed and the tokens once known, drawn while
    the model is asked (until its first text) and while a tool runs. Transient: it is
    erased when it stops. Only on a terminal: nothing is drawn into a pipe or a file."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.live: Any = None
        self.label = ""
        self.started = 0.0
        self.tokens: int | None = None

    @property
    def running(self) -> bool:
        return self.live is not None

    def start(self, label: str) -> None:
        self.stop()
        self.label, self.started, self.tokens = label, time.monotonic(), None
        if not self.console.is_terminal:
            return
        from rich.live import Live

        self.live = Live(
            self,
            console=self.console,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        try:
            self.live.start()
        except Exception:  # another live display: no status line this time
            self.live = None

    def stop(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            try:
                live.stop()
            except Exception:
                pass

    def __rich__(self) -> Any:
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        frame = SPINNER[int(elapsed * 10) % len(SPINNER)]
        line = f"{frame} {self.label}… {elapsed:.0f}s"
        if self.tokens:
            line += f" · {tokens_text(self.tokens)} tokens"
        return Text(line + "  (Ctrl+C stops)", style="dim")


def tokens_text(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 1000 else str(count)


def read_key(valid: set[str]) -> str | None:
    """One key from the terminal, without Enter: a key in ``valid`` (lower-cased), or None
    for Esc, Ctrl+C, Ctrl+D. Other keys (Enter included) are ignored. Off a terminal, a
    line is read and its first letter taken."""
    try:
        import termios

        fd = sys.stdin.fileno()
        terminal = os.isatty(fd)
    except (OSError, ValueError, ImportError):
        terminal = False
    if not terminal:
        line = sys.stdin.readline()
        if not line:
            return None
        key = line.strip()[:1].lower()
        return key if key in valid else None
    before = termios.tcgetattr(fd)
    raw = list(before)
    raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ECHOCTL)
    raw[6] = list(raw[6])
    raw[6][termios.VMIN] = 1
    raw[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    try:
        while True:
            data = os.read(fd, 1)
            if not data or data in (b"\x03", b"\x04"):
                return None
            if data == b"\x1b":
                import select

                if select.select([fd], [], [], 0.05)[0]:  # an escape sequence (an arrow key)
                    os.read(fd, 16)
                    continue
                return None
            key = data.decode("ascii", "replace").lower()
            if key in valid:
                _swallow_enter(fd)
                return key
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, before)


def _swallow_enter(fd: int) -> None:
    """Drop what was typed together with the answer key (``y`` then Enter, out of habit),
    so that it does not submit an empty line at the next prompt or answer the next
    question."""
    import select

    if select.select([fd], [], [], 0.05)[0]:
        os.read(fd, 64)


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


def diff_lines(before: str | None, after: str | None, name: str, limit: int = 40) -> list[str]:
    """A unified diff from ``before`` to ``after`` (None: no file), trimmed to ``limit``
    lines with a note of how many more there are."""
    import difflib

    old = (before or "").splitlines()
    new = (after or "").splitlines()
    if len(before or "") + len(after or "") > 4_000_000:  # a diff would take seconds
        return [
            f"(a large file: {plural(len(old), 'line')} now, {plural(len(new), 'line')} after; no diff shown)"
        ]
    lines = list(
        difflib.unified_diff(
            old,
            new,
            f"a/{name}" if before is not None else "/dev/null",
            f"b/{name}" if after is not None else "/dev/null",
            n=2,
            lineterm="",
        )
    )
    if not lines:
        return ["(no change to the content)"]
    lines = [_one_line(line, 160) if len(line) > 160 else line for line in lines]
    if len(lines) > limit:
        added = sum(1 for x in lines[limit:] if x.startswith("+"))
        removed = sum(1 for x in lines[limit:] if x.startswith("-"))
        lines = [
            *lines[:limit],
            f"… {plural(len(lines) - limit, 'more line')} (+{added} -{removed})",
        ]
    return lines


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextlib.contextmanager
def index_progress(index: Index, label: str = "Indexing sessions") -> Iterator[None]:
    """A progress bar with a count on stderr while ``index`` reads many files (its first
    build); nothing off a terminal. Later refreshes read only what changed."""
    if not sys.stderr.isatty():
        yield
        return
    bar: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if "bar" not in bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            bar["bar"] = Progress(
                TextColumn(f"{label} (once; later runs read only what changed)"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            bar["bar"].start()
            bar["task"] = bar["bar"].add_task("index", total=total)
        bar["bar"].update(bar["task"], completed=done, total=total)

    index.progress = progress
    try:
        yield
    finally:
        index.progress = None
        if "bar" in bar:
            bar["bar"].stop()


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

    def choose(self, question: str, options: list[tuple[str, str]], default: str = "n") -> str:
        return default  # nobody to ask

    def ask_permission(self, name: str, args: dict[str, Any]) -> Answer:
        return "no"  # never asked: -p mode refuses what is not allowed

    def diff(self, lines: list[str]) -> None:
        for line in lines:
            print(f"  {line}", file=self.err, flush=True)

    def page(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


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
        refusal: Any = {
            "ask_permission": "no",
            "confirm": False,
            "choose": "n",
            "ask": "",
        }.get(name)

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
