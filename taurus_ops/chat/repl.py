"""The read-eval loop, free of storage and API code: what to do with input is passed in.

``run_loop(read, on_message, on_command)`` reads lines until end of input, Ctrl+C at
the prompt, or a command that says stop. Ctrl+C while a message is handled only
stops that message (the handler saves what it has). ``should_stop`` lets a signal
handler end the loop between turns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from taurus_ops.store.format import clean_text

PROMPT = "taurus> "
EXPAND = "/expand"  # what Ctrl+O at the prompt runs

Read = Callable[[], str | None]


def run_loop(
    read: Read,
    on_message: Callable[[str], None],
    on_command: Callable[[str], bool],
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """Run until the user leaves; returns why: ``eof``, ``interrupt``, ``command`` or ``signal``."""
    while True:
        if should_stop():
            return "signal"
        try:
            line = read()
        except EOFError:
            return "eof"
        except KeyboardInterrupt:
            return "signal" if should_stop() else "interrupt"
        if line is None:
            return "eof"
        text = line.strip()
        if not text:
            continue
        if is_command(text):
            if not on_command(text):
                return "command"
            continue
        try:
            on_message(text)
        except KeyboardInterrupt:
            if should_stop():
                return "signal"


def is_command(text: str) -> bool:
    """``/help`` is a command; ``/etc/hosts has a typo`` (a path) is a message."""
    if not text.startswith("/"):
        return False
    word = text.split(maxsplit=1)[0]
    return "/" not in word[1:]


def lines_reader(lines: list[str]) -> Read:
    """A reader over a list (for tests and piped input)."""
    queue = list(lines)

    def read() -> str | None:
        return queue.pop(0) if queue else None

    return read


def prompt_reader(history_file: Path | None) -> Read:
    """The interactive prompt: prompt_toolkit with history and editing.

    Enter sends; Esc then Enter (or Alt+Enter) adds a new line; a line ending in a
    backslash continues on the next line."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-o")
    def _expand(event: Any) -> None:  # the whole output of the last tool run
        event.app.exit(result=EXPAND)

    class TextHistory(FileHistory):
        """The history file, always UTF-8: an invalid byte typed or pasted is kept as U+FFFD
        (prompt_toolkit reads it as a lone surrogate, which it could not write)."""

        def store_string(self, string: str) -> None:
            super().store_string(clean_text(string))

    history: Any = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history_file.touch(mode=0o600, exist_ok=True)
            history = TextHistory(str(history_file))
        except OSError:
            pass
    session: Any = PromptSession(history=history, key_bindings=bindings, multiline=False)

    def read() -> str | None:
        parts: list[str] = []
        while True:
            line = session.prompt(PROMPT if not parts else "....... ")
            if line == EXPAND and not parts:
                return line
            if line.endswith("\\"):
                parts.append(line[:-1])
                continue
            parts.append(line)
            return "\n".join(parts)

    return read
