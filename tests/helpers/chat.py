"""A chat in-process for tests: the real ChatApp and SDK (against the fake API), and a UI
that records what it is shown and answers questions from a script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taurus_ops.chat.app import ChatApp
from taurus_ops.chat.client import ModelClient
from taurus_ops.config import load_config

YES = ("y", "yes")


class Scripted:
    """Records output; answers permission questions, choices and confirmations in order.

    ``asked`` holds each question (for a permission, the tool's name); ``texts`` each
    streamed reply; ``out`` the notices, warnings, errors and tool lines."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.asked: list[str] = []
        self.out: list[str] = []
        self.texts: list[str] = []
        self.diffs: list[list[str]] = []
        self.changes: list[Any] = []
        self.paged: list[str] = []

    def _answer(self, question: str) -> str:
        self.asked.append(question)
        if not self.answers:
            raise AssertionError(f"nothing scripted to answer {question!r}")
        return self.answers.pop(0)

    def reply_start(self) -> None:
        self.texts.append("")

    def text(self, chunk: str) -> None:
        self.texts[-1] += chunk

    def reply_end(self, reply: Any) -> None:
        if reply.interrupted:
            self.out.append(f"interrupted: {reply.error}")

    def notice(self, text: str) -> None:
        self.out.append(text)

    plain = notice

    def warn(self, text: str) -> None:
        self.out.append(f"warning: {text}")

    def error(self, text: str) -> None:
        self.out.append(f"error: {text}")

    def tool_start(self, name: str, args: dict[str, Any]) -> None:
        self.out.append(f"tool {name}")

    def tool_end(self, name: str, result: Any, outcome: str) -> None:
        self.out.append(f"{name} {outcome}")

    def planned_change(self, change: Any) -> None:
        self.changes.append(change)

    def ask_permission(self, name: str, args: dict[str, Any]) -> str:
        return self._answer(name)

    def confirm(self, question: str) -> bool:
        return self._answer(question) in YES

    def choose(self, question: str, options: list[tuple[str, str]], default: str = "n") -> str:
        answer = self._answer(question)
        assert answer in dict(options), (answer, options)
        return answer

    def ask(self, question: str) -> str:
        return self._answer(question)

    def diff(self, lines: list[str]) -> None:
        self.diffs.append(lines)

    def page(self, text: str) -> None:
        self.paged.append(text)

    @property
    def said(self) -> str:
        return "\n".join(self.out)


def make_app(
    store: Any,
    answers: list[str] | None = None,
    interactive: bool = True,
    allow: list[str] | None = None,
    config: Any = None,
    model: str = "claude-test",
    **client_args: Any,
) -> tuple[ChatApp, Scripted]:
    """A ChatApp on the real SDK (pointed at the fake API by the ``fake_api`` fixture);
    ``client_args`` go to the ModelClient (``prompt_caching``, ``max_retries``...)."""
    ui = Scripted(answers)
    config = config or load_config()
    client_args.setdefault("prompt_caching", config.settings.chat.prompt_caching)
    client = ModelClient(model, 1024, backoff=0.01, **client_args)
    app = ChatApp(config, store, ui, interactive, allow=allow, model=model, client=client)
    return app, ui


def saved(app: ChatApp) -> dict[str, Any]:
    """The session file as it is on disk."""
    assert app.session is not None
    return json.loads(Path(app.session.path).read_text())
