"""The resume picker (``taurus chat --pick``, ``/resume``): a searchable list of sessions.

Rows come from the session index (``~/.taurus/index.sqlite``), never from reading
every file: the index is refreshed (built the first time, with a progress bar) and
its rows listed newest first. Sessions started in the current project (the git
work tree holding the working directory, or the directory itself) come first and
are all that is shown until Tab shows every project. Typing filters: a session
stays when every term is in its id, names, title or folder, or (through the
index's search) anywhere in its messages. The preview shows the highlighted
session's last exchange, read from that one file.

Keys: Up/Down/PgUp/PgDn move, Enter resumes, Ctrl+F forks (a new session with all
its messages; the original is kept), Tab switches between this project and all,
Esc (or Ctrl+C) cancels. Letters type into the filter.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.store import format as fmt
from taurus_ops.store.index.queries import RecentSession
from taurus_ops.words import plural

if TYPE_CHECKING:
    from prompt_toolkit.application import Application
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    from taurus_ops.config.effective import Config
    from taurus_ops.store.index import Index
    from taurus_ops.store.store import SessionStore

LARGEST_PREVIEW = 32 << 20  # bytes; a bigger file is not read just for its preview


@dataclass
class Entry(RecentSession):
    """An indexed session as the picker shows it: its names, whether it is of this project."""

    names: list[str] = field(default_factory=list)
    in_project: bool = False
    _moment: float | None = None
    _haystack: str | None = None

    @property
    def moment(self) -> float:
        """When it was last updated (a timestamp), worked out only for rows shown."""
        if self._moment is None:
            parsed = fmt.parse_time(self.updated)
            self._moment = parsed.timestamp() if parsed else 0.0
        return self._moment

    @property
    def haystack(self) -> str:
        """What the filter looks in, lower-cased (made on the first filtering)."""
        if self._haystack is None:
            parts = [self.id, *self.names, self.title, self.cwd or "", self.parent or ""]
            self._haystack = " ".join(parts).lower()
        return self._haystack


def project_root(cwd: Path) -> str:
    """The git work tree holding ``cwd`` (a ``.git`` folder or file), else ``cwd`` itself."""
    here = Path(os.path.realpath(cwd))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return str(folder)
    return str(here)


def within(path: str | None, root: str) -> bool:
    if not path:
        return False
    return path == root or path.startswith(root.rstrip("/") + "/")


def load_entries(index: Index, store: SessionStore, root: str, refresh: bool = True) -> list[Entry]:
    """The active sessions, newest first, from the index (refreshed first if ``refresh``)."""
    if refresh:
        index.refresh()
    folder = index.folder_keys(archived=False)[0]
    names = store.names()
    real_folder = os.path.realpath(folder)
    out = []
    for row in index.recent():
        entry = Entry(**vars(row))
        if names:
            entry.names = names.get(os.path.join(real_folder, os.path.basename(entry.path)), [])
        entry.in_project = within(entry.cwd, root)
        out.append(entry)
    return out


def age(moment: float, now: float | None = None) -> str:
    seconds = max((now or time.time()) - moment, 0)
    if seconds < 60:
        return "now"
    for unit, size in (("m", 60), ("h", 3600), ("d", 86400)):
        if seconds < size * (60 if unit == "m" else 24 if unit == "h" else 30):
            return f"{int(seconds // size)}{unit} ago"
    return datetime.fromtimestamp(moment, UTC).astimezone().strftime("%Y-%m-%d")


def terms_of(query: str) -> list[str]:
    try:
        return [t for t in shlex.split(query) if t.strip()]
    except ValueError:
        return query.split()


class PickerModel:
    """What the picker shows and does, free of the terminal (tests drive it directly)."""

    def __init__(
        self,
        entries: list[Entry],
        root: str,
        current: str | None = None,
        # terms -> the keys of the sessions whose messages hold them all
        search: Callable[[list[str]], set[int]] | None = None,
    ) -> None:
        self.entries = entries
        self.root = root
        self.current = current
        self.search = search
        self.query = ""
        self.show_all = not any(e.in_project for e in entries)
        self.selected = 0
        self.shown: list[Entry] = []
        self.previews: dict[str, tuple[str | None, str | None]] = {}
        self.refilter()

    def refilter(self) -> None:
        pool = self.entries if self.show_all else [e for e in self.entries if e.in_project]
        if self.show_all:  # this project's sessions first, each part newest first
            pool = [e for e in pool if e.in_project] + [e for e in pool if not e.in_project]
        terms = [t.lower() for t in terms_of(self.query)]
        if terms:
            keys: set[int] = set()
            if self.search is not None and sum(len(t) for t in terms) >= 2:
                try:
                    keys = self.search(terms)
                except Exception:  # the index is a cache: filter on what is listed
                    keys = set()
            pool = [e for e in pool if e.key in keys or all(t in e.haystack for t in terms)]
        self.shown = pool
        self.selected = min(self.selected, max(len(pool) - 1, 0))

    def replace(self, entries: list[Entry]) -> None:
        """New rows (a refresh found changes); the highlighted session stays highlighted."""
        chosen = self.chosen.id if self.chosen is not None else None
        self.entries = entries
        self.refilter()
        for position, entry in enumerate(self.shown):
            if entry.id == chosen:
                self.selected = position
                break

    def type(self, text: str) -> None:
        self.query += text
        self.selected = 0
        self.refilter()

    def backspace(self) -> None:
        self.query = self.query[:-1]
        self.refilter()

    def toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.selected = 0
        self.refilter()

    def move(self, step: int) -> None:
        if self.shown:
            self.selected = max(0, min(len(self.shown) - 1, self.selected + step))

    @property
    def chosen(self) -> Entry | None:
        return self.shown[self.selected] if self.shown else None

    def preview(self, entry: Entry) -> tuple[str | None, str | None]:
        """The last thing typed in ``entry`` and the reply to it (read from its file once)."""
        if entry.path not in self.previews:
            from taurus_ops.chat.conversation import last_exchange

            found: tuple[str | None, str | None] = (None, None)
            try:
                if os.path.getsize(entry.path) <= LARGEST_PREVIEW:
                    with open(entry.path, "rb") as handle:
                        data = fmt.loads(handle.read())
                    messages = data.get("messages") if isinstance(data, dict) else None
                    if isinstance(messages, list):
                        found = last_exchange([m for m in messages if isinstance(m, dict)])
            except (OSError, ValueError):
                pass
            self.previews[entry.path] = found
        return self.previews[entry.path]

    # -- text -----------------------------------------------------------------------------
    def header(self) -> str:
        scope = "all projects" if self.show_all else f"this project ({_tilde(self.root)})"
        other = "this project" if self.show_all else "all projects"
        total = len(self.entries)
        return (
            f"Resume a session: {len(self.shown):,} of {plural(total, 'session')} from {scope}"
            f"  (Tab: {other})"
        )

    def row(self, entry: Entry, width: int, now: float) -> str:
        mark = "*" if entry.id == self.current else " "
        names = f"[{', '.join(entry.names)}] " if entry.names else ""
        project = os.path.basename(entry.cwd.rstrip("/")) if entry.cwd else "-"
        fork = f"↳{entry.parent}@{entry.forked_at} " if entry.forked_at is not None else ""
        title = entry.title if not entry.error else f"(damaged: {entry.error})"
        text = (
            f"{mark}{entry.id:<10} {age(entry.moment, now):>10} {entry.messages:>5} msgs  "
            f"{project[:16]:<16} {names}{fork}{title}"
        )
        return fmt.printable(text)[: max(width, 20)]

    def preview_lines(self, width: int) -> list[str]:
        entry = self.chosen
        if entry is None:
            return ["(no session matches)", ""]
        user, reply = self.preview(entry)
        where = _tilde(entry.cwd) if entry.cwd else "?"
        lines = [
            f"{entry.id} in {where}" + (f", forked from {entry.parent}" if entry.parent else "")
        ]
        lines.append("You: " + (fmt.one_line(user, width - 6) if user else "(nothing typed yet)"))
        lines.append("Claude: " + (fmt.one_line(reply, width - 9) if reply else ""))
        return [fmt.printable(line)[:width] for line in lines]


KEYS_HELP = (
    "↑↓ move · Enter resume · Ctrl+F fork · Tab this project/all · Esc cancel · type to filter"
)


def _tilde(path: str) -> str:
    home = os.path.expanduser("~")
    if home and home != "/" and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home) :]
    return path


def _terminal_size() -> tuple[int, int]:
    try:
        columns, lines = os.get_terminal_size()
    except OSError:
        columns, lines = 100, 30
    return columns, lines


def _list_height() -> int:
    return max(3, min(15, _terminal_size()[1] - 9))


def picker_text(model: PickerModel, width: int, height: int, now: float) -> list[tuple[str, str]]:
    """What the picker draws, as (style, text) pieces: the header, the filter, ``height``
    rows around the highlighted one, the preview and the keys."""
    top = max(0, min(model.selected - height // 2, len(model.shown) - height))
    out: list[tuple[str, str]] = [("bold", model.header()[:width] + "\n")]
    out.append(("", f"› {model.query}\n"))
    visible = model.shown[top : top + height]
    for offset, entry in enumerate(visible):
        chosen = top + offset == model.selected
        out.append(("reverse" if chosen else "", model.row(entry, width, now)))
        out.append(("", "\n"))
    out.extend(("", "\n") for _ in range(height - len(visible)))
    out.append(("", "─" * min(width, 100) + "\n"))
    for line in model.preview_lines(width):
        out.append(("", line + "\n"))
    out.append(("italic", KEYS_HELP[:width]))
    return out


def _key_bindings(model: PickerModel, result: dict[str, tuple[str, Entry]]) -> KeyBindings:
    """The picker's keys; Enter and Ctrl+F put (the action, the entry) in ``result``."""
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.keys import Keys

    bindings = KeyBindings()

    def done(action: str | None) -> Callable[[KeyPressEvent], None]:
        def handler(event: KeyPressEvent) -> None:
            if action is not None and model.chosen is not None:
                result["value"] = (action, model.chosen)
            event.app.exit()

        return handler

    bindings.add("enter")(done("resume"))
    bindings.add("c-f")(done("fork"))
    for key in ("escape", "c-c", "c-d"):
        bindings.add(key, eager=True)(done(None))
    bindings.add("up")(lambda e: model.move(-1))
    bindings.add("down")(lambda e: model.move(1))
    bindings.add("pageup")(lambda e: model.move(-_list_height()))
    bindings.add("pagedown")(lambda e: model.move(_list_height()))
    bindings.add("tab")(lambda e: model.toggle_all())
    bindings.add("backspace")(lambda e: model.backspace())

    @bindings.add("c-u")
    def _clear(event: KeyPressEvent) -> None:
        model.query = ""
        model.refilter()

    @bindings.add(Keys.Any)
    def _type(event: KeyPressEvent) -> None:
        text = "".join(ch for ch in event.data if ch.isprintable())
        if text:
            model.type(text)

    return bindings


def _replace_later(
    app: Application[None], model: PickerModel, later: Callable[[], list[Entry] | None]
) -> None:
    """Run ``later`` in a thread; the entries it returns replace the list shown."""
    import threading

    loop = app.loop

    def work() -> None:
        try:
            entries = later()
        except Exception:  # the index is a cache: the list shown stays
            return
        if entries is not None and loop is not None:

            def update() -> None:
                model.replace(entries)
                app.invalidate()

            loop.call_soon_threadsafe(update)

    threading.Thread(target=work, name="taurus-picker-refresh", daemon=True).start()


def run_picker(
    model: PickerModel, later: Callable[[], list[Entry] | None] | None = None
) -> tuple[str, Entry] | None:
    """Show the picker; ("resume" | "fork", the entry) or None if cancelled.

    ``later``, if given, runs in a thread once the list is shown; what it returns (new
    entries, or None) replaces the list."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl
    from prompt_toolkit.layout.dimension import Dimension

    result: dict[str, tuple[str, Entry]] = {}

    def body() -> list[tuple[str, str]]:
        return picker_text(model, _terminal_size()[0] - 1, _list_height(), time.time())

    control = FormattedTextControl(body, show_cursor=False)
    window = Window(control, height=Dimension.exact(_list_height() + 7), wrap_lines=False)
    app: Application[None] = Application(
        layout=Layout(HSplit([window])),
        key_bindings=_key_bindings(model, result),
        full_screen=False,
        erase_when_done=True,
        mouse_support=False,
    )
    app.ttimeoutlen = 0.05
    app.timeoutlen = 0.05

    def start() -> None:
        if later is not None:
            _replace_later(app, model, later)

    app.run(pre_run=start)
    return result.get("value")


def pick(
    config: Config, store: SessionStore, cwd: Path, current: str | None = None
) -> tuple[str, Entry] | None:
    """Open the index, list the sessions and run the picker."""
    from taurus_ops.chat.ui import index_progress
    from taurus_ops.ops.search import SearchQuery, search
    from taurus_ops.store.index import Index

    root = project_root(cwd)
    with Index(config) as index:
        current_index = index.is_current()
        if not current_index:  # the first build: a progress bar, then the list
            with index_progress(index, "Indexing sessions for the picker"):
                index.refresh()
        entries = load_entries(index, store, root, refresh=False)
        if not entries:
            from taurus_ops.errors import SessionNotFound

            raise SessionNotFound(
                f"no sessions yet in {store.session_dir}; start one with `taurus chat`"
            )

        def find(terms: list[str]) -> set[int]:
            hits = search(index, SearchQuery(terms=terms), refresh=False)
            return {h.key for h in hits}

        def refreshed() -> list[Entry] | None:
            """The index brought up to date (files changed since it was last read)."""
            with Index(config) as other:
                if not other.refresh().touched:
                    return None
                return load_entries(other, store, root, refresh=False)

        model = PickerModel(entries, root, current, find)
        return run_picker(model, refreshed if current_index else None)
