"""Slash commands typed at the ``taurus>`` prompt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taurus_ops.chat.app import ChatApp, tilde
from taurus_ops.chat.client import ApiError
from taurus_ops.errors import TaurusError
from taurus_ops.store import format as fmt
from taurus_ops.words import plural

HELP = [
    ("/help", "this list"),
    ("/exit", "save and leave (also /quit, Ctrl+D, Ctrl+C at the prompt)"),
    ("/new", "save this session and start a new one"),
    ("/name NAME", "name this session (NAME.json symlink); resume with taurus chat -s NAME"),
    ("/sessions", "the most recent sessions"),
    ("/compact", "summarise, archive this session unchanged, continue in a new one"),
    ("/cost", "tokens used by this run and this session"),
]
KEYS = (
    "Enter sends; Esc Enter adds a line (or end a line with \\); Ctrl+C stops a reply; "
    "Up/Down walk your input history."
)


class Commands:
    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.table: dict[str, Callable[[str], bool]] = {
            "/help": self.help,
            "/exit": self.exit,
            "/quit": self.exit,
            "/new": self.new,
            "/name": self.name,
            "/sessions": self.sessions,
            "/compact": self.compact,
            "/cost": self.cost,
        }

    @property
    def ui(self) -> Any:
        return self.app.ui

    def __call__(self, line: str) -> bool:
        """Run one command line; False means leave the chat."""
        word, _, rest = line.strip().partition(" ")
        handler = self.table.get(word.lower())
        if handler is None:
            self.ui.warn(f"unknown command {word}; /help lists the commands")
            return True
        try:
            return handler(rest.strip())
        except ApiError as exc:
            self.ui.error(str(exc))
        except TaurusError as exc:
            self.ui.error(str(exc))
        return True

    def help(self, _: str) -> bool:
        for command, what in HELP:
            self.ui.plain(f"  {command:<12} {what}")
        self.ui.plain(KEYS)
        return True

    def exit(self, _: str) -> bool:
        return False

    def new(self, _: str) -> bool:
        old = self.app.session
        session = self.app.new_session()
        if old is not None:
            self.ui.notice(f"Saved {old.id}: {tilde(old.path or '')}")
        self.ui.notice(f"New session {session.id}, saved to: {tilde(session.path or '')}")
        return True

    def name(self, arg: str) -> bool:
        if not arg:
            self.ui.warn("give a name: /name password-reset-implementation")
            return True
        link = self.app.name(arg)
        self.ui.notice(f"Named: {link.name} -> {tilde(link.resolve())}")
        self.ui.notice(f"Resume it with: taurus chat --session {arg}")
        return True

    def sessions(self, _: str) -> bool:
        current = self.app.session.id if self.app.session else None
        rows = self.app.store.summaries()[:10]
        if not rows:
            self.ui.notice("no sessions yet")
        for s in rows:
            moment = fmt.parse_time(s.updated)
            when = moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "?"
            mark = "*" if s.id == current else " "
            names = f" ({', '.join(s.names)})" if s.names else ""
            title = s.title if not s.error else f"(damaged: {s.error})"
            count = plural(s.messages, "msg")
            self.ui.plain(f"{mark} {s.id:<10} {when}  {count:>9}{names}  {title[:60]}")
        return True

    def compact(self, _: str) -> bool:
        self.app.compact()
        return True

    def cost(self, _: str) -> bool:
        for line in self.app.cost_lines():
            self.ui.plain(line)
        return True
