"""Slash commands typed at the ``taurus>`` prompt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from taurus_ops.chat.app import ChatApp, tilde
from taurus_ops.chat.client import ApiError
from taurus_ops.errors import TaurusError, UsageError
from taurus_ops.store import format as fmt
from taurus_ops.words import plural

HELP = [
    ("/help", "this list"),
    ("/exit", "save and leave (also /quit, Ctrl+D, Ctrl+C at the prompt)"),
    ("/new", "save this session and start a new one"),
    ("/name NAME", "name this session (NAME.json symlink); resume with taurus chat -s NAME"),
    ("/sessions", "the most recent sessions"),
    ("/compact", "summarise, archive this session unchanged, continue in a new one"),
    ("/cost", "tokens and estimated dollars of this run and this session"),
    ("/fork [N]", "continue in a new session holding messages 1-N (default all); this one is kept"),
    ("/tree", "this session's family: parent, forks, /compact successors"),
    (
        "/rewind [N]",
        "turns and the files each changed; back to message N: conversation, files or both",
    ),
    ("/rewind undo", "put back the files the last rewind restored"),
    ("/resume [REF]", "switch to another session (a searchable list without REF)"),
    ("/expand [N]", "the whole output of the last (or Nth) tool run, paged (Ctrl+O: the last)"),
]
KEYS = (
    "Enter sends; Esc Enter adds a line (or end a line with \\); Ctrl+C stops a reply; "
    "Up/Down walk your input history; Ctrl+O shows the last tool run's whole output."
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
            "/fork": self.fork,
            "/tree": self.tree,
            "/rewind": self.rewind,
            "/resume": self.resume,
            "/expand": self.expand,
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
            self.ui.plain(f"  {command:<14} {what}")
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

    # -- branching ------------------------------------------------------------------------
    def fork(self, arg: str) -> bool:
        from taurus_ops.store.fork import describe

        count = _number(arg, "/fork N")
        made = self.app.fork(count)
        self.ui.notice(describe(made))
        for line in self.app.resume_banner(label="Forked session, started")[1:]:
            self.ui.plain(line)
        old = made.parent.id
        self.ui.notice(f"{old} is kept as it was: taurus chat -s {old} goes back to it")
        return True

    def tree(self, _: str) -> bool:
        for line in self.app.tree_lines():
            self.ui.plain(line)
        return True

    def resume(self, arg: str) -> bool:
        current = self.app.session
        target: Path | str
        if arg:
            target = self.app.store.resolve(arg).path
            action = "resume"
        else:
            from taurus_ops.chat.picker import pick

            chosen = pick(
                self.app.config, self.app.store, self.app.cwd, current.id if current else None
            )
            if chosen is None:
                self.ui.notice("no other session chosen; still in this one")
                return True
            action, entry = chosen
            target = entry.path
        if current is not None and action == "resume":
            import os

            if os.path.realpath(target) == os.path.realpath(current.path or ""):
                self.ui.notice(f"already in session {current.id}")
                return True
        if action == "fork":
            from taurus_ops.store.fork import describe, fork_session

            self.app.save()
            parent = self.app.store.load(Path(target))
            made = fork_session(self.app.store, parent, None, self.app.store.checkpoints)
            self.ui.notice(describe(made))
            target = made.session.path or made.session.id  # saved, so it has a path
        mended = self.app.switch_to(target)
        label = "Forked session, started" if action == "fork" else "Resuming session from"
        for line in self.app.resume_banner(mended, label=label):
            self.ui.plain(line)
        return True

    def expand(self, arg: str) -> bool:
        found = self.app.tool_output(_number(arg, "/expand N"))
        if found is None:
            self.ui.notice("no tool has run in this session yet")
            return True
        number, call, text = found
        from taurus_ops.chat.ui import describe_call

        head = describe_call(str(call.get("tool")), call)
        self.ui.page(f"── tool run {number}: {head} ({call.get('outcome', '?')}) ──\n{text}")
        return True

    # -- rewinding ------------------------------------------------------------------------
    def rewind(self, arg: str) -> bool:
        app = self.app
        assert app.session is not None
        if arg.lower() == "undo":
            plan = app.plan_undo()
            if plan is None:
                self.ui.notice("nothing to undo: no rewind has restored files in this session")
                return True
            self.ui.plain("Undo the last rewind: put back what the files held before it")
            self._files_step(plan, fork=False)
            return True
        if not arg:
            from taurus_ops.chat.rewind import turn_lines

            checkpoints = app.store.checkpoints
            self.ui.plain("Turns (N: the messages kept when rewinding to before the turn):")
            self.ui.plain("     N  what you typed" + " " * 47 + "what it changed")
            for line in turn_lines(app.session.data, checkpoints):
                self.ui.plain(line)
            answer = self.ui.ask("Rewind to N (Enter: cancel)?")
            if not answer or not answer.strip():
                return True
            arg = answer.strip()
        count = _number(arg, "/rewind N")
        assert count is not None
        plan = app.plan_rewind(count)
        total = len(app.session.messages)
        self.ui.plain(
            f"Rewind to message {count} of {total}"
            + (f" (undoes messages {count + 1}-{total})" if count < total else "")
        )
        for step in plan.steps:
            if step.problem:
                self.ui.plain(f"  {step.shown}: cannot restore it: {step.problem}")
            elif not step.plan.needed:
                self.ui.plain(f"  {step.shown}: already as it was at message {count}")
            else:
                what = "removed" if step.target is None else f"+{step.added} -{step.removed}"
                note = "  (changed since Taurus wrote it)" if step.plan.changed_elsewhere else ""
                self.ui.plain(f"  {step.shown}: {what}{note}")
        if not plan.steps:
            self.ui.plain("  no file was changed by write or edit after it")
        if plan.bash:
            shown = "; ".join(plan.bash[:5]) + ("; …" if len(plan.bash) > 5 else "")
            self.ui.warn(
                f"{plural(len(plan.bash), 'bash command')} ran after message {count}; what "
                f"they did is not tracked and not undone: {shown}"
            )
        options = [("c", "conversation only (a fork; this session kept)")]
        if plan.doable:
            options += [("f", "files only"), ("b", "both")]
        options.append(("n", "cancel"))
        choice = self.ui.choose("Rewind:", options, "n")
        if choice == "c":
            for line in app.apply_rewind(plan, [], fork=True):
                self.ui.notice(line)
        elif choice in ("f", "b"):
            self._files_step(plan, fork=choice == "b")
        else:
            self.ui.notice("nothing changed")
        return True

    def _files_step(self, plan: Any, fork: bool) -> None:
        """Show the diffs, ask, and restore (files changed elsewhere only if the user says)."""
        from taurus_ops.chat.ui import diff_lines

        doable = plan.doable
        for step in plan.steps:
            if step.problem:
                self.ui.warn(f"{step.shown}: cannot restore it: {step.problem}")
        if not doable:
            self.ui.notice("no file needs restoring")
            if fork:
                for line in self.app.apply_rewind(plan, [], fork=True):
                    self.ui.notice(line)
            return
        for step in doable:
            self.ui.diff(diff_lines(_text(step.current), _text(step.target), step.shown))
        if not self.ui.confirm(f"Restore {plural(len(doable), 'file')} as shown?"):
            self.ui.notice("nothing changed")
            return
        chosen = [s for s in doable if not s.plan.changed_elsewhere]
        elsewhere = plan.elsewhere
        if elsewhere:
            self.ui.warn(
                "changed since Taurus last wrote them (by hand, bash or another program): "
                + ", ".join(s.shown for s in elsewhere)
            )
            if self.ui.confirm("Overwrite these too (what they hold now is kept as a checkpoint)?"):
                chosen = doable
            else:
                self.ui.notice("left as they are: " + ", ".join(s.shown for s in elsewhere))
        for line in self.app.apply_rewind(plan, chosen, fork=fork):
            self.ui.notice(line)
        if chosen:
            self.ui.notice("/rewind undo puts them back as they were before this rewind")


def _number(arg: str, usage: str) -> int | None:
    if not arg.strip():
        return None
    try:
        value = int(arg.strip().lstrip("@"))
    except ValueError:
        raise UsageError(f"give a message number: {usage}") from None
    if value < 0:
        raise UsageError(f"give a message number from 0: {usage}")
    return value


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")
