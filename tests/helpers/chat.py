"""A chat in-process for tests: the real ChatApp and SDK (against the fake API), and a UI
that records what it is shown and answers questions from a script."""

from __future__ import annotations

from typing import Any

from taurus_ops.chat.app import ChatApp
from taurus_ops.chat.client import ModelClient
from taurus_ops.config import load_config


class Scripted:
    """Records output; answers permission questions, choices and confirmations in order."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.asked: list[str] = []
        self.out: list[str] = []
        self.diffs: list[list[str]] = []
        self.changes: list[Any] = []
        self.paged: list[str] = []

    def _answer(self, question: str) -> str:
        self.asked.append(question)
        if not self.answers:
            raise AssertionError(f"nothing scripted to answer {question!r}")
        return self.answers.pop(0)

    def reply_start(self) -> None:
        pass

    def text(self, chunk: str) -> None:
        pass

    def reply_end(self, reply: Any) -> None:
        pass

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
        return self._answer(f"allow {name}")

    def confirm(self, question: str) -> bool:
        return self._answer(question) == "y"

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
    store: Any, answers: list[str] | None = None, **kwargs: Any
) -> tuple[ChatApp, Scripted]:
    ui = Scripted(answers)
    config = kwargs.pop("config", None) or load_config()
    client = ModelClient("claude-sonnet-4-5", 1024, backoff=0.01, prompt_caching=False)
    app = ChatApp(config, store, ui, True, model="claude-sonnet-4-5", client=client, **kwargs)
    return app, ui
