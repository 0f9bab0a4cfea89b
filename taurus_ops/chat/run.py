"""``taurus chat`` from flags to exit status: open the session, then the REPL or one answer."""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from taurus_ops.errors import UsageError
from taurus_ops.store import format as fmt
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.chat.app import ChatApp
    from taurus_ops.chat.picker import Entry
    from taurus_ops.config.effective import Config
    from taurus_ops.store.store import SessionStore


@dataclass
class ChatOptions:
    resume: bool = False
    session: str | None = None
    prompt: str | None = None  # -p; "-" reads stdin
    model: str | None = None
    allow: list[str] = field(default_factory=list)
    template: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    session_dir: Path | None = None
    fork: str | None = None  # REF or REF@N: continue in a fork of it
    pick: bool = False  # choose the session from a list


def read_stdin_prompt(options: ChatOptions, stdin: TextIO) -> str | None:
    """The one-shot prompt: -p TEXT, -p - (stdin), or stdin when it is not a terminal."""
    if options.prompt is not None and options.prompt != "-":
        if not options.prompt.strip():
            raise UsageError('an empty prompt: give -p "PROMPT"')
        return options.prompt
    if options.prompt == "-" or not stdin.isatty():
        raw = getattr(stdin, "buffer", None)
        # bytes, not the locale's strict decoding: an invalid byte becomes U+FFFD, not a crash
        text = fmt.decode_text(raw.read()) if raw is not None else stdin.read()
        if not text.strip():
            raise UsageError('no prompt: give -p "PROMPT" or pipe one on stdin')
        return text.strip()
    return None


def check_options(options: ChatOptions) -> None:
    """Refuse flags that cannot go together (or name no tool) in one line, before anything
    is opened."""
    if options.session is not None and not options.session.strip():
        raise UsageError("an empty session reference: give --session ID, a prefix or a name")
    if options.resume and options.session:
        raise UsageError("use --resume or --session REF, not both")
    if options.template and (options.resume or options.session):
        raise UsageError("--template starts a new session; it does not go with -r or -s")
    if options.variables and not options.template:
        raise UsageError("--var goes with --template NAME")
    starts = [
        flag
        for flag, given in (
            ("--resume", options.resume),
            ("--session", options.session),
            ("--template", options.template),
            ("--fork", options.fork is not None),
            ("--pick", options.pick),
        )
        if given
    ]
    if len(starts) > 1 and (options.fork is not None or options.pick):
        raise UsageError(f"{' and '.join(starts)} each choose the session: give one")
    if options.fork is not None and not options.fork.strip():
        raise UsageError("an empty reference: give --fork REF or REF@N")
    from taurus_ops.chat.tools import TOOL_NAMES

    for tool in options.allow:
        if tool != "*" and tool not in TOOL_NAMES:
            raise UsageError(
                f"--allow {tool}: no such tool (the tools are {', '.join(TOOL_NAMES)})"
            )
    if options.pick and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("--pick shows a list to choose from and needs a terminal; use -s REF")


def run_chat(options: ChatOptions) -> int:
    from taurus_ops.chat.client import check_credentials
    from taurus_ops.config import load_config
    from taurus_ops.store import SessionStore

    check_credentials()
    check_options(options)
    prompt = read_stdin_prompt(options, sys.stdin)
    interactive = prompt is None
    config = load_config(options.config_file, options.session_dir)
    store = SessionStore.from_config(config)

    chosen = None
    if options.pick:  # before anything else is set up: the list shows at once
        from taurus_ops.chat.picker import pick

        chosen = pick(config, store, Path.cwd())
        if chosen is None:
            print("No session chosen.")
            return 0

    from taurus_ops.chat.app import ChatApp
    from taurus_ops.chat.ui import PlainUI, TerminalUI

    ui: TerminalUI | PlainUI = TerminalUI() if interactive else PlainUI()
    app = ChatApp(config, store, ui, interactive, allow=options.allow, model=options.model)
    received = _stop_on_signals(app)
    status = 0
    try:
        banner, mended = _open_session(app, options, chosen, interactive)
        if interactive:
            for line in banner:
                app.ui.plain(line)
            app.ui.plain("")
            status = _interactive(app, config)
        else:
            status = _one_shot(app, prompt or "", mended)
    except KeyboardInterrupt:
        status = 130
    finally:
        _leave(app)
    if received:
        return 128 + received[0]
    return status


def _stop_on_signals(app: ChatApp) -> list[int]:
    """SIGTERM and SIGHUP stop the chat as Ctrl+C does (once); the signals received."""
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if app.stopping:
            return
        app.stopping = True
        received.append(signum)
        raise KeyboardInterrupt  # stops a streaming reply or a running tool; what arrived is saved

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
    return received


def _open_session(
    app: ChatApp, options: ChatOptions, chosen: tuple[str, Entry] | None, interactive: bool
) -> tuple[list[str], int]:
    """Open the session the options name (or a new one); its banner and how many tool
    calls cut off last time were mended."""
    mended = 0
    if options.template:
        app.open_template(options.template, options.variables, until_reply=not interactive)
        banner = app.resume_banner(label=f"Session from template {options.template!r},")
    elif options.resume or options.session:
        _, mended = app.open_ref(options.session)
        banner = app.resume_banner(mended)
    elif options.fork is not None:
        from taurus_ops.store.fork import describe

        made = app.open_fork(options.fork)
        banner = app.resume_banner(label="Forked session, started")
        banner.insert(1, describe(made))
    elif chosen is not None:
        banner = _picked(app, app.store, chosen)
    else:
        app.start_new(until_reply=not interactive)  # -p: no file unless a reply begins
        banner = app.new_banner()
    return banner, mended


def _one_shot(app: ChatApp, prompt: str, mended: int) -> int:
    """``-p``: one answer to ``prompt``; 0 if it was had, else 1."""
    from taurus_ops.chat.app import tilde

    assert app.session is not None
    app.ui.notice(f"Session {app.session.id}: {tilde(app.session.path or '')}")
    if mended:
        app.ui.notice(f"mended {plural(mended, 'tool call')} cut off last time")
    ok = app.message(prompt)
    return 0 if ok else 1


def _leave(app: ChatApp) -> None:
    """Save and release the session, and say where it is (or that none was kept)."""
    from taurus_ops.chat.app import tilde

    app.stopping = True  # a late signal must not interrupt the final save
    app.ui.close()  # no status line or live display left drawn
    app.close()
    if app.session is not None and app.unsaved:
        app.ui.notice("No session kept: the model never began a reply, so nothing was saved")
    elif app.session is not None:
        app.ui.notice(f"Session saved: {tilde(app.session.path or '')}")


def _picked(app: ChatApp, store: SessionStore, chosen: tuple[str, Entry]) -> list[str]:
    """Open what the picker chose (a fork of it for Ctrl+F); the banner."""
    from taurus_ops.store.fork import describe, fork_session

    action, entry = chosen
    if action == "fork":
        made = fork_session(store, store.load(Path(entry.path)), None, store.checkpoints)
        app.open_ref(str(made.session.path))
        banner = app.resume_banner(label="Forked session, started")
        banner.insert(1, describe(made))
        return banner
    _, mended = app.open_ref(entry.path)
    return app.resume_banner(mended)


def _interactive(app: ChatApp, config: Config) -> int:
    from taurus_ops.chat.client import preload_sdk
    from taurus_ops.chat.commands import Commands
    from taurus_ops.chat.repl import prompt_reader, run_loop

    preload_sdk()
    read = prompt_reader(Path(config.home) / "history")

    def on_message(text: str) -> None:
        try:
            app.message(text)
        finally:
            app.ui.plain("")

    run_loop(read, on_message, Commands(app), should_stop=lambda: app.stopping)
    return 0
