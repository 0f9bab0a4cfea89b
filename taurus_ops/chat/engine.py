"""One turn of the chat: the user's message, the model's reply, the tools it asks for, repeat.

The engine knows neither the terminal nor the disk: it is given a ``Conversation``
(which saves after every change), something that sends a history and returns a
``Reply``, the tools, the permissions, and a UI to report to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from taurus_ops.chat.client import Reply
from taurus_ops.chat.conversation import Conversation, estimate_tokens, prepare_history, usage_entry
from taurus_ops.chat.permissions import Answer, Permissions, local_identity
from taurus_ops.chat.tools import FileChange, ToolResult, Tools, call_fields

MAX_STEPS = 100  # model calls in one turn, a guard against a tool loop that never ends
REFUSED = (
    "Permission refused: {reason}. Do not retry this exact call; ask the user or try another way."
)
SKIPPED = "Not run: the user stopped the turn before this tool ran."
STOPPED = "Interrupted: the user pressed Ctrl+C while this tool ran."


class UI(Protocol):
    def reply_start(self) -> None: ...
    def text(self, chunk: str) -> None: ...
    def reply_end(self, reply: Reply) -> None: ...
    def notice(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def tool_start(self, name: str, args: dict[str, Any]) -> None: ...
    def tool_end(self, name: str, result: ToolResult, outcome: str) -> None: ...
    def ask_permission(self, name: str, args: dict[str, Any]) -> Answer: ...
    def confirm(self, question: str) -> bool: ...


class Keeper(Protocol):
    """Keeps a checkpoint of a file before a write or edit changes it (chat/rewind.py)."""

    def keep(self, change: FileChange, name: str, fields: dict[str, Any], use_id: str) -> None: ...


Send = Callable[[list[dict[str, Any]], UI], Reply]


class ContextFull(Exception):
    """The history is too long for the model; /compact it first."""


class Engine:
    def __init__(
        self,
        conversation: Conversation,
        send: Send,
        tools: Tools,
        permissions: Permissions,
        ui: UI,
        context_window: int = 200_000,
        max_tokens: int = 8192,
        extra_tokens: int = 0,
        should_stop: Callable[[], bool] = lambda: False,
        keeper: Keeper | None = None,
    ) -> None:
        self.keeper = keeper
        self.conversation = conversation
        self.send = send
        self.tools = tools
        self.permissions = permissions
        self.ui = ui
        self.context_window = context_window
        self.max_tokens = max_tokens
        self.extra_tokens = extra_tokens  # system prompt and tool definitions
        self.warned = False
        self.should_stop = should_stop  # a signal arrived: finish the tool in hand, then stop

    # -- context ---------------------------------------------------------------------------
    def context_tokens(self, history: list[dict[str, Any]]) -> int:
        """Known size of the history: the last reply's real input count plus an estimate of
        what came after it (or an estimate of everything)."""
        messages = self.conversation.messages
        for index in range(len(messages) - 1, -1, -1):
            usage = messages[index].get("usage")
            if messages[index].get("role") == "assistant" and isinstance(usage, dict):
                known = sum(
                    int(usage.get(k, 0))
                    for k in (
                        "inputTokens",
                        "outputTokens",
                        "cacheReadTokens",
                        "cacheCreationTokens",
                    )
                )
                if known:
                    return known + estimate_tokens(messages[index + 1 :])
        return estimate_tokens(history) + self.extra_tokens

    def check_context(self, history: list[dict[str, Any]]) -> None:
        used = self.context_tokens(history)
        room = self.context_window - self.max_tokens
        if used > room:
            raise ContextFull(
                f"this conversation is about {used:,} tokens, more than the model accepts "
                f"({self.context_window:,} less {self.max_tokens:,} for the reply); "
                "run /compact to continue from a summary"
            )
        if used > room * 0.8 and not self.warned:
            self.warned = True
            self.ui.warn(
                f"the conversation uses about {used * 100 // room}% of the model's context; "
                "/compact soon continues it from a summary"
            )

    # -- a turn ----------------------------------------------------------------------------
    def turn(self, text: str) -> Reply | None:
        """Handle one user message to the end (tools included). Returns the last reply."""
        self.conversation.add_user(text)
        return self.proceed()

    def proceed(self) -> Reply | None:
        reply = None
        for _ in range(MAX_STEPS):
            history = prepare_history(self.conversation.messages)
            self.check_context(history)
            reply = self.send(history, self.ui)
            usage = usage_entry(reply.model, reply.usage) if reply.usage else None
            self.conversation.add_assistant(reply.content, usage, reply.interrupted)
            if reply.interrupted:
                return reply
            uses = reply.tool_uses
            if not uses or reply.stop_reason != "tool_use":
                if (
                    uses
                ):  # tool requests cut short (max_tokens): answer them so the file stays valid
                    self.answer_unrun(uses, "Not run: the reply was cut off before it finished.")
                return reply
            if not self.run_tools(uses):
                return reply
        self.ui.warn(f"stopped after {MAX_STEPS} model calls in one turn")
        return reply

    def answer_unrun(self, uses: list[dict[str, Any]], why: str) -> None:
        holder = self.conversation.start_results()
        for use in uses:
            self.conversation.add_result(holder, use["id"], why, True)
        self.conversation.save()

    def run_tools(self, uses: list[dict[str, Any]]) -> bool:
        """Run the tools of one reply, saving after each. False if the user stopped the turn.

        Every tool_use gets its tool_result and a toolCalls entry, whatever its input and
        whatever happens while it runs."""
        conv = self.conversation
        holder = conv.start_results()
        for position, use in enumerate(uses):
            name, args, use_id = str(use.get("name")), use.get("input", {}), use["id"]
            started = time.monotonic()  # reset once permission is given: the run itself
            stopped = False  # Ctrl+C or a signal while the outcome is shown: stop after it
            try:
                result, outcome, started = self.run_one(name, args, use_id)
            except Exception as exc:  # the bookkeeping around the tool failed, not the tool
                result = ToolResult(f"{name} could not be run: {type(exc).__name__}: {exc}", True)
                outcome = "error"
            ended = time.monotonic()
            conv.add_result(holder, use_id, result.content, result.is_error)
            conv.record_call(
                name, safe_fields(name, args, self.tools.cwd), outcome, started, ended, use_id
            )
            conv.save()  # saved before it is shown: whatever the display does, it is kept
            try:
                self.ui.tool_end(name, result, outcome)
            except KeyboardInterrupt:
                stopped = True
            if result.interrupted or stopped or self.should_stop():
                for rest in uses[position + 1 :]:
                    conv.add_result(holder, rest["id"], SKIPPED, True)
                conv.save()
                return False
        return True

    def ask(self, name: str, args: Any) -> Answer:
        """Ask the user; a UI that can shows the change a write or edit would make first."""
        show = getattr(self.ui, "planned_change", None)
        if show is not None:
            change = self.tools.preview(name, args)
            if change is not None:
                show(change)
        return self.ui.ask_permission(name, args)

    def run_one(self, name: str, args: Any, use_id: str = "") -> tuple[ToolResult, str, float]:
        """Ask permission and run one tool: (result, outcome, when the run started)."""
        verdict = self.permissions.check(name, lambda: self.ask(name, args))
        if self.permissions.session_allow:
            data = self.conversation.session.data
            data["allowedTools"] = sorted(self.permissions.session_allow)
            data["allowedToolsBy"] = local_identity()
        started = time.monotonic()
        if not verdict.allowed:
            return ToolResult(REFUSED.format(reason=verdict.reason), True), "refused", started
        self.ui.tool_start(name, args if isinstance(args, dict) else {"input": args})
        keeper = self.keeper
        if keeper is not None and name in ("write", "edit"):
            fields = safe_fields(name, args, self.tools.cwd)
            self.tools.on_change = lambda change: keeper.keep(change, name, fields, use_id)
        try:
            result = self.tools.run(name, args)
        except KeyboardInterrupt:
            result = ToolResult(STOPPED, True, interrupted=True)
        finally:
            self.tools.on_change = None
        outcome = "interrupted" if result.interrupted else "error" if result.is_error else "ok"
        return result, outcome, started


def safe_fields(name: str, args: Any, cwd: Any) -> dict[str, Any]:
    """``call_fields``, or none if the input is too odd to describe."""
    try:
        return call_fields(name, args, cwd)
    except Exception:
        return {}
