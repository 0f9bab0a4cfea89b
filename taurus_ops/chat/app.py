"""The chat application: a session held open (locked, saved after every change), the model,
the tools, and the slash commands' actions. The terminal loop lives in repl.py."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.chat.client import ApiError, Events, ModelClient, Reply
from taurus_ops.chat.conversation import (
    Conversation,
    estimate_tokens,
    last_exchange,
    prepare_history,
    usage_entry,
)
from taurus_ops.chat.engine import UI, ContextFull, Engine
from taurus_ops.chat.permissions import Permissions, saved_allowances
from taurus_ops.chat.tools import TOOL_SPECS, Tools
from taurus_ops.errors import TaurusError, UsageError
from taurus_ops.store import Session, SessionStore
from taurus_ops.store import format as fmt
from taurus_ops.store.checkpoints import settle_running
from taurus_ops.store.lock import SessionLock
from taurus_ops.store.mend import mend_tool_uses
from taurus_ops.store.session import LARGE, gc_paused
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.chat.rewind import FileStep, Rewinder, RewindPlan
    from taurus_ops.chat.ui import SafeUI
    from taurus_ops.config.effective import Config
    from taurus_ops.store.fork import Fork

TITLE = "🐂 Taurus CLI - Claude Code Clone"
COMPACT_PROMPT = (
    "Summarise our conversation so far so that it can continue in a new session from your "
    "summary alone. Keep: the goal, decisions made and why, files read or changed (with paths), "
    "commands run and their results, open problems, and the next steps. Be specific and "
    "complete; write it as notes to yourself. Do not use any tools."
)


def tilde(path: Path | str) -> str:
    """``~/.taurus/sessions/x.json`` for a path under the home folder."""
    text = str(path)
    home = os.path.expanduser("~")
    if home and home != "/" and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def system_prompt(cwd: Path) -> str:
    return (
        "You are Taurus, a coding assistant working in the user's terminal. "
        f"The working directory is {cwd} ({platform.system()}); today is {date.today():%Y-%m-%d}. "
        "Use the tools to read, search and change files and to run commands; paths are "
        "relative to the working directory. Read a file before editing it. write, edit and "
        "bash ask the user for permission; if one is refused, do not retry it unchanged. "
        "Answer in concise GitHub-flavoured markdown."
    )


def fit_tail(messages: list[dict[str, Any]], room: int) -> list[dict[str, Any]]:
    """The longest tail of ``messages`` that fits ``room`` tokens, starting at a message the
    user typed (so no tool result loses its tool request)."""
    sizes = [estimate_tokens([m]) for m in messages]
    total = sum(sizes)
    start = 0
    while total > room and start < len(messages) - 1:
        total -= sizes[start]
        start += 1
        while start < len(messages) - 1 and not _typed(messages[start]):
            total -= sizes[start]
            start += 1
    return messages[start:]


def _typed(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return message.get("role") == "user" and (
        isinstance(content, str)
        or (isinstance(content, list) and all(b.get("type") != "tool_result" for b in content))
    )


class ChatApp:
    """One chat process. ``ui`` is a TerminalUI or a PlainUI (``-p``)."""

    def __init__(
        self,
        config: Config,
        store: SessionStore,
        ui: UI,
        interactive: bool,
        allow: list[str] | None = None,
        model: str | None = None,
        cwd: Path | None = None,
        client: ModelClient | None = None,
    ) -> None:
        self.config = config
        self.store = store
        from taurus_ops.chat.ui import SafeUI

        self.ui: SafeUI = ui if isinstance(ui, SafeUI) else SafeUI(ui)
        self.interactive = interactive
        self.cwd = Path(os.path.realpath(cwd or Path.cwd()))
        settings = config.settings
        self.chat = settings.chat
        self.model = model or settings.model
        self.allow = [*settings.permissions.allow, *(allow or [])]
        self.deny = list(settings.permissions.deny)
        self._client = client
        self.move_to(self.cwd)  # the tools and the system prompt for it
        self.session: Session | None = None
        self.saved_as: tuple[int, ...] | None = None  # shape() at the last save
        self.lock: SessionLock | None = None
        self.conversation: Conversation | None = None
        self.engine: Engine | None = None
        self.stopping = False  # set by SIGTERM/SIGHUP
        self.unsaved = False  # a new session not written yet: it is, once a reply begins

    # -- the model -----------------------------------------------------------------------------
    @property
    def client(self) -> ModelClient:
        if self._client is None:
            self._client = ModelClient(
                self.model, self.chat.max_tokens, prompt_caching=self.chat.prompt_caching
            )
        return self._client

    def send(self, history: list[dict[str, Any]], ui: UI) -> Reply:
        ui.reply_start()
        events = Events(
            on_text=ui.text,
            on_notice=ui.notice,
            on_start=self.reply_began,
            on_tool=getattr(ui, "tool_coming", None) or (lambda name: None),
            on_usage=getattr(ui, "tokens", None) or (lambda usage: None),
        )
        try:
            reply = self.client.reply(history, self.system, TOOL_SPECS, events)
        except BaseException:
            ui.reply_end(Reply(content=[]))
            raise
        try:
            ui.reply_end(reply)
        except KeyboardInterrupt:  # Ctrl+C or a signal while it is drawn: the reply is kept
            if reply.tool_uses:  # but the tools it asks for are not run
                reply.interrupted = True
                reply.error = reply.error or "stopped with Ctrl+C"
        return reply

    def reply_began(self) -> None:
        """The model has begun a reply: a new session held back until now is written."""
        if self.unsaved:
            self.unsaved = False
            self.save()

    # -- opening sessions ----------------------------------------------------------------------
    def start_new(self, until_reply: bool = False, **fields: Any) -> Session:
        """A new session, saved at once; with ``until_reply`` only once the model begins its
        first reply (a one-shot run that gets none, a refused key say, leaves no file)."""
        from taurus_ops.store.project import project_of

        fields = {
            "cwd": str(self.cwd),
            "model": self.model,
            "project": project_of(self.cwd),
            **{k: v for k, v in fields.items() if v},
        }
        session = self.unsaved_session(fields) if until_reply else self.store.create(**fields)
        self.attach(session)
        self.unsaved = until_reply
        return session

    def unsaved_session(self, fields: dict[str, Any]) -> Session:
        """A new session with a unique id and its path, not written yet."""
        self.store.ensure()
        session = Session.new(self.store.new_id(), **fields)
        session.path = self.store.path_for(session.id, session.created)
        return session

    def open_ref(self, ref: str | None) -> tuple[Session, int]:
        """Open an existing session (the latest when ``ref`` is None) for writing; mend it."""
        found = self.store.latest() if ref is None else self.store.resolve(ref)
        path = found.path
        if found.archived:
            path = self.store.unarchive(path)
            self.ui.notice(f"moved {found.session_id} back from the archive to {tilde(path)}")
        lock = self.store.lock(path)
        lock.acquire()  # before loading: nobody else writes it meanwhile
        try:
            session = self.load_kept(path)
            self.follow_project(session)
            mended = mend_tool_uses(session.messages)
            settled = settle_running(session.data)  # a write or edit a crash cut off
            if mended or settled or session.notes:
                self.store.save(session, touch=False)
            self.attach(session, lock)
        except BaseException:
            lock.release()
            raise
        return session, mended

    def load_kept(self, path: Path) -> Session:
        """Load a session to keep open. A large one's objects (a JSON tree: never cyclic
        garbage) are frozen out of the cyclic collector, which would otherwise walk every
        one of them right after the load and again at each full collection while the chat
        runs (0.3 s a time at 100 MB); they are still freed when the session is left."""
        with gc_paused():
            session = self.store.load(path)
            with contextlib.suppress(OSError):
                if os.stat(path).st_size >= LARGE:
                    gc.freeze()
        return session

    def open_template(
        self, name: str, variables: dict[str, str], until_reply: bool = False
    ) -> Session:
        """A new session from template NAME (written once a reply begins if ``until_reply``)."""
        try:
            from taurus_ops.ops.templates import create_from_template, find_template, instantiate
        except ImportError:
            raise UsageError("session templates are not available in this installation") from None
        from taurus_ops.store.project import project_of

        if until_reply:
            session = self.unsaved_session(instantiate(find_template(self.config, name), variables))
        else:
            session = create_from_template(self.config, self.store, name, variables)
        session.data.setdefault("cwd", str(self.cwd))
        session.data.setdefault("project", project_of(self.cwd))
        self.attach(session)
        self.unsaved = until_reply
        self.save()
        return session

    def follow_project(self, session: Session) -> None:
        """A session whose folder is not on this machine: work in its project's checkout here,
        found by the git remote it recorded (or, in a terminal, where the user says)."""
        from taurus_ops.store.project import git_top, locate, project_of, remote_url

        project = session.data.get("project")
        recorded = session.data.get("cwd")
        if not isinstance(project, dict):
            if recorded == str(self.cwd):  # started here before projects were recorded
                session.data["project"] = project_of(self.cwd)
            return
        where = project.get("cwd") or recorded
        if not isinstance(where, str) or "\0" in where or os.path.isdir(where):
            return  # the folder is here (this machine, or the same layout): as before
        remote = project.get("gitRemote")
        found = locate(project, self.cwd)
        if found is None and isinstance(remote, str) and self.interactive:
            answer = self.ui.ask(
                f"This session's project ({remote}) was at {where} on the machine it came "
                f"from. Where is your checkout here? (Enter: stay in {tilde(self.cwd)})"
            )
            if answer and answer.strip():
                chosen = Path(os.path.expanduser(answer.strip())).absolute()
                if chosen.is_dir():
                    found = chosen
                else:
                    self.ui.warn(f"{chosen} is not a folder; staying in {tilde(self.cwd)}")
        if found is None:
            if isinstance(remote, str):
                self.ui.notice(
                    f"this session's project ({remote}) is not in {tilde(self.cwd)} nor under "
                    f"{tilde(Path.home())}; tools work in {tilde(self.cwd)}"
                )
            return
        top = git_top(found)
        url = remote_url(top) if top is not None else None
        if url is None or not isinstance(remote, str):
            self.ui.warn(f"{tilde(found)} is not a checkout of {remote}; working there as asked")
        self.move_to(found)
        self.ui.notice(
            f"found this session's project ({remote}) here: tools work in {tilde(found)}"
        )

    def move_to(self, folder: Path) -> None:
        """Work in ``folder`` from now on (tools, bash and the system prompt)."""
        self.cwd = Path(os.path.realpath(folder))
        self.tools = Tools(
            self.cwd,
            bash_timeout=self.chat.bash_timeout,
            output_limit=self.chat.output_limit,
            allow_outside_cwd=self.chat.allow_outside_cwd,
        )
        self.system = system_prompt(self.cwd)

    def attach(self, session: Session, lock: SessionLock | None = None) -> None:
        if lock is None:
            lock = self.store.lock(session)
            lock.acquire()
        self.unsaved = False
        self.session = session
        self.lock = lock
        self.saved_as = self.shape()  # as loaded or created: saved
        before = self.conversation
        self.conversation = Conversation(session, self.save)
        if before is not None:  # /cost's "this run" goes on across /new, /fork and /resume
            self.conversation.run_usage = before.run_usage
            self.conversation.run_by_model = before.run_by_model
        permissions = Permissions.build(
            self.allow, self.deny, self.interactive, saved_allowances(session.data)
        )
        self.keeper = None
        checkpoints = self.store.checkpoints
        if checkpoints is not None:
            from taurus_ops.chat.rewind import Checkpointer

            self.keeper = Checkpointer(
                checkpoints,
                self.conversation,
                self.config.settings.checkpoints.max_bytes,
                notice=self.ui.notice,
                save_first=lambda: self.save(durable=False),
            )
        self.engine = Engine(
            self.conversation,
            self.send,
            self.tools,
            permissions,
            self.ui,
            context_window=self.chat.context_window,
            max_tokens=self.chat.max_tokens,
            extra_tokens=(len(self.system) + len(str(TOOL_SPECS))) // 4,
            should_stop=lambda: self.stopping,
            keeper=self.keeper,
        )

    def save(self, durable: bool = True) -> None:
        if self.session is not None and not self.unsaved:
            self.saved_as = None  # until the write succeeds
            self.store.save(self.session, durable=durable)
            self.saved_as = self.shape()

    def shape(self) -> tuple[int, ...]:
        """A cheap mark of what the session holds (every change adds to one of these)."""
        assert self.session is not None
        data = self.session.data
        return (
            id(self.session),
            len(self.session.messages),
            len(self.session.tool_calls),
            len(data.get("rewinds") or ()),
            len(data.get("allowedTools") or ()),
        )

    def detach(self) -> None:
        """Save (unless nothing changed since the last save) and release the session. A
        session only looked at, or left for a fork, keeps its file exactly as it was."""
        if self.session is None:
            return
        try:
            if self.saved_as != self.shape():
                self.save()
        finally:
            if self.lock is not None:
                self.lock.release()
            self.lock = None

    close = detach

    # -- a message -----------------------------------------------------------------------------
    def message(self, text: str, retry: bool = False) -> bool:
        """Handle one user message; False if it could not be answered (error shown)."""
        assert self.engine is not None
        try:
            reply = self.engine.turn(text)
        except ContextFull as exc:
            self.ui.warn(str(exc))
            if not retry and self.offer_compact():
                return self.message(text, retry=True)
            return False
        except ApiError as exc:
            self.ui.error(str(exc))
            return False
        return reply is not None and not reply.interrupted

    def offer_compact(self) -> bool:
        """Ask whether to compact now (interactive only); True once a new session is ready."""
        if not self.interactive or not self.ui.confirm(
            "Compact now, then send your message again from the summary?"
        ):
            return False
        try:
            return self.compact() is not None
        except ApiError as exc:
            self.ui.error(str(exc))
            return False

    # -- banners -------------------------------------------------------------------------------
    def new_banner(self) -> list[str]:
        assert self.session is not None
        return [
            TITLE,
            "Session automatically created",
            f"Saved to: {tilde(self.session.path or '')}",
            "Type /help for commands; Ctrl+D or /exit to leave (everything is saved).",
        ]

    def resume_banner(self, mended: int = 0, label: str = "Resuming session from") -> list[str]:
        session = self.session
        assert session is not None
        started = fmt.parse_time(session.created)
        when = started.astimezone().strftime("%Y-%m-%d %I:%M %p") if started else "?"
        lines = [
            TITLE,
            f"📂 {label} {when}",
            f"💬 {plural(len(session.messages), 'message')} loaded",
        ]
        lines.append(f"   {tilde(session.path or '')}")
        other = session.data.get("cwd")
        if (
            isinstance(other, str)
            and other
            and "\0" not in other  # a hand-edited file; no real path holds a NUL
            and os.path.realpath(other) != str(self.cwd)
        ):
            lines.append(
                f"📁 This session was started in {tilde(other)}; tools now work in {tilde(self.cwd)}"
            )
        if mended:
            lines.append(
                f"🩹 {plural(mended, 'tool call')} cut off last time marked as interrupted"
            )
        user, reply = last_exchange(session.messages)
        if user is not None:
            lines += ["", "Last conversation:", f"You: {fmt.one_line(user, 100)}"]
            if reply:
                lines.append(f"Claude: {fmt.one_line(reply, 100)}")
        return lines

    # -- slash-command actions -----------------------------------------------------------------
    def cost_lines(self) -> list[str]:
        """Tokens and the estimated cost in dollars, of this run and of the session (the
        price table of ``taurus-ops stats``)."""
        assert self.session is not None and self.conversation is not None
        from taurus_ops.ops.stats import PRICE_NOTE, estimate_cost
        from taurus_ops.store.index.facts import usage_by_model

        totals = self.session.data.get("usage") or {}
        run = self.conversation.run_usage

        def dollars(by_model: dict[str, dict[str, int]]) -> str:
            costs = [estimate_cost(model, tokens) for model, tokens in by_model.items()]
            known = sum(c for c in costs if c is not None)
            shown = f"${known:.4f}" if 0 < known < 0.01 else f"${known:.2f}"
            if any(c is None for c in costs):
                return f"≈ {shown} + price unknown" if known else "price unknown"
            return f"≈ {shown}"

        def row(label: str, data: dict[str, Any], cost: str) -> str:
            return (
                f"{label:<14} input {int(data.get('inputTokens', 0)):>9,}   "
                f"output {int(data.get('outputTokens', 0)):>9,}   "
                f"cache read {int(data.get('cacheReadTokens', 0)):>9,}   "
                f"cache write {int(data.get('cacheCreationTokens', 0)):>9,}   {cost}"
            )

        session_models = usage_by_model(self.session.data)
        return [
            row("This run:", run, dollars(self.conversation.run_by_model)),
            row("This session:", totals, dollars(session_models)),
            f"Model: {totals.get('model') or self.model}  ({PRICE_NOTE})",
        ]

    def new_session(self) -> Session:
        self.detach()
        return self.start_new()

    def name(self, name: str) -> Path:
        assert self.session is not None
        self.save()
        # by path: a copied file may still carry the sessionId of the one it was copied from
        return self.store.name(str(self.session.path), name)

    def compact(self) -> tuple[Path, Session] | None:
        """Summarise, start a new session from the summary (parentSession = the old id), and
        archive the old one unchanged. None if there was nothing to compact or no summary."""
        assert self.session is not None and self.conversation is not None
        old = self.session
        if not any(m.get("role") == "assistant" for m in old.messages):
            self.ui.notice("nothing to compact yet")
            return None
        room = self.chat.context_window - self.chat.max_tokens - self.engine_extra() - 1000
        kept = fit_tail(old.messages, room)
        prompt = COMPACT_PROMPT
        if len(kept) < len(old.messages):
            prompt += " (The earliest part of the conversation did not fit and was left out.)"
            self.ui.notice(
                f"the oldest {plural(len(old.messages) - len(kept), 'message')} do not fit the model; "
                "the summary covers the rest (the full session is archived)"
            )
        history = prepare_history([*kept, {"role": "user", "content": prompt}])
        self.ui.notice(f"summarising {plural(len(kept), 'message')}…")
        reply = self.send(history, self.ui)
        summary = reply.text.strip()
        if reply.usage:
            self.conversation.count_usage(usage_entry(reply.model, reply.usage))
            self.save()
        if reply.interrupted or not summary:
            self.ui.warn("no summary was made; the session is unchanged")
            return None
        names = self.store.names().get(os.path.realpath(old.path or ""), [])
        body = (
            f"[This session continues session {old.id}, which was compacted: the full "
            f"conversation is archived. Summary of it:]\n\n{summary}"
        )
        self.detach()
        new = self.store.create(
            cwd=str(self.cwd),
            model=self.model,
            parentSession=old.id,
            messages=[{"role": "user", "content": body, "timestamp": fmt.now_iso()}],
        )
        self.attach(new)  # first: whatever happens to the old file, the chat holds the new one
        archived = Path(old.path or "")
        try:
            archived = self.store.archive(archived)
        except (TaurusError, OSError) as exc:
            self.ui.warn(f"could not archive {old.id} ({exc}); it stays at {tilde(archived)}")
        else:
            self.ui.notice(f"Archived the full session unchanged: {tilde(archived)}")
        for name in names:
            self.store.name(str(new.path), name, replace=True)
        self.ui.notice(
            f"Continuing in session {new.id} (parentSession {old.id}): {tilde(new.path or '')}"
        )
        return archived, new

    # -- forks, the family, resuming another session -------------------------------------
    def fork(self, count: int | None = None) -> Fork:
        """Continue in a fork of the current session keeping ``count`` messages (default all);
        the current session is saved and left as it is."""
        assert self.session is not None
        from taurus_ops.store.fork import fork_session

        if self.saved_as != self.shape():
            self.save()
        made = fork_session(self.store, self.session, count, self.store.checkpoints)
        self.detach()
        self.attach(made.session)
        return made

    def open_fork(self, ref: str) -> Fork:
        """``--fork REF[@N]``: fork a stored session and continue in the fork."""
        from taurus_ops.store.fork import fork_session, split_ref

        name, count = split_ref(ref)
        parent = self.store.load_ref(name)
        made = fork_session(self.store, parent, count, self.store.checkpoints)
        session, _ = self.open_ref(str(made.session.path))
        made.session = session
        return made

    def switch_to(self, path: Path | str) -> int:
        """Leave the current session (saved) and continue another; returns what was mended."""
        self.detach()
        _, mended = self.open_ref(str(path))
        return mended

    def tree_lines(self) -> list[str]:
        """The current session's family: parent, forks and /compact successors."""
        assert self.session is not None
        from taurus_ops.store.family import family_of, render

        self.save()
        summaries = self.store.summaries(archived=True)
        root = family_of(summaries, self.session.id)
        if root is None:
            return [f"* {self.session.id}  (not listed yet)"]

        def when(iso: str) -> str:
            moment = fmt.parse_time(iso)
            return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "?"

        return render([root], current=self.session.id, when=when)

    # -- tool output ------------------------------------------------------------------
    def tool_output(self, number: int | None = None) -> tuple[int, dict[str, Any], str] | None:
        """(its number, its toolCalls entry, its whole output) for the last or Nth tool run."""
        assert self.session is not None
        calls = [c for c in self.session.tool_calls if isinstance(c, dict)]
        if not calls:
            return None
        number = len(calls) if number is None else number
        if not 1 <= number <= len(calls):
            raise UsageError(
                f"this session has {plural(len(calls), 'tool run')}: give 1 to {len(calls)}"
            )
        call = calls[number - 1]
        use_id = call.get("toolUseId")
        for message in reversed(self.session.messages):
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            for block in content:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_result"
                    and block.get("tool_use_id") == use_id
                ):
                    inner = block.get("content")
                    text = inner if isinstance(inner, str) else fmt.text_of(inner)
                    return number, call, text
        return number, call, "(no output was saved for this run)"

    # -- rewinding ------------------------------------------------------------------------
    def rewinder(self) -> Rewinder:
        from taurus_ops.chat.rewind import Rewinder

        checkpoints = self.store.checkpoints
        if checkpoints is None:
            raise UsageError("no checkpoint store: rewinding needs a Taurus home")
        return Rewinder(checkpoints, self.tools)

    def plan_rewind(self, count: int) -> RewindPlan:
        """What ``/rewind N`` would do to the files (nothing is changed)."""
        assert self.session is not None
        from taurus_ops.chat.rewind import RewindPlan, bash_after
        from taurus_ops.store.checkpoints import plan_rewind
        from taurus_ops.store.fork import check_cut

        data = self.session.data
        check_cut(self.session.id, self.session.messages, count, "rewind")
        rewinder = self.rewinder()
        cwd = data.get("cwd") if isinstance(data.get("cwd"), str) else None
        plans = plan_rewind(data, count, lambda change: rewinder.current(change, cwd))
        return RewindPlan(
            count, rewinder.steps(self.session.id, plans, cwd), bash_after(data, count)
        )

    def plan_undo(self) -> RewindPlan | None:
        """What ``/rewind undo`` would put back, or None if nothing was rewound."""
        assert self.session is not None
        from taurus_ops.chat.rewind import RewindPlan
        from taurus_ops.store.checkpoints import plan_undo

        data = self.session.data
        rewinder = self.rewinder()
        cwd = data.get("cwd") if isinstance(data.get("cwd"), str) else None
        found = plan_undo(data, lambda change: rewinder.current(change, cwd))
        if found is None:
            return None
        index, plans = found
        return RewindPlan(None, rewinder.steps(self.session.id, plans, cwd), undoes=index)

    def apply_rewind(self, plan: RewindPlan, steps: list[FileStep], fork: bool) -> list[str]:
        """Restore ``steps`` (after forking at the plan's N when ``fork``); the lines to show."""
        assert self.session is not None and self.conversation is not None
        source = self.session.id
        lines = []
        if fork:
            made = self.fork(plan.count)
            lines.append(
                f"Continuing in fork {made.session.id} (messages 1-{plan.count} of {source}; "
                f"{source} is kept as it was)"
            )
        if steps:
            assert self.conversation is not None
            lines += self.rewinder().apply(plan, steps, self.conversation, source)
        return lines

    def engine_extra(self) -> int:
        return self.engine.extra_tokens if self.engine is not None else 0
