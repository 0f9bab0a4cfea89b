"""The chat's tools: read, write, edit, grep, glob and bash, confined to the working directory.

Each tool takes the model's input dict and returns a ``ToolResult`` (text for the
model, whether it is an error); whatever goes wrong inside a tool, ``Tools.run``
answers with a result, never an exception. The input is checked against the tool's
schema first. File tools go through one ``Confinement`` (chat/confine.py) for every
path they are given or meet, and write through an exclusively created temporary
file renamed into place. ``bash`` runs in the working directory in its own process
group, with a timeout, its output read as it comes and kept to the head and tail.
"""

from __future__ import annotations

import fnmatch
import os
import re
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from taurus_ops.chat.confine import Confinement, PathRefused
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.format import clean_text, decode_text
from taurus_ops.words import plural

MAX_MATCHES = 200
MAX_GLOB = 500
MAX_GREP_FILE = 2_000_000  # bytes; bigger files are skipped by grep
SKIP_DIRS = {".git", ".hg", ".svn"}
READ_CHUNK = 1 << 16
# bash output is read only this far past what is kept (then the command is stopped)
FAR_PAST_FACTOR = 100  # times chat.outputLimit
FAR_PAST_MIN = 16 << 20  # bytes

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "name": "read",
        "description": (
            "Read a text file in the working directory. Returns numbered lines. "
            "Use offset (1-based first line) and limit (number of lines) for big files."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "file": {
                    "type": "string",
                    "description": "Path, relative to the working directory.",
                },
                "offset": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
            "required": ["file"],
        },
    },
    {
        "name": "write",
        "description": "Create or overwrite a file with the given content (asks the user first).",
        "input_schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string"},
                "content": {"type": "string"},
            },
            "additionalProperties": False,
            "required": ["file", "content"],
        },
    },
    {
        "name": "edit",
        "description": (
            "Replace old_string with new_string in a file. old_string must occur exactly once "
            "(include surrounding lines to make it unique). Asks the user first."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "additionalProperties": False,
            "required": ["file", "old_string", "new_string"],
        },
    },
    {
        "name": "grep",
        "description": (
            "Search file contents with a Python regular expression. Skips .git, files "
            "ignored by .gitignore and symlinks leading outside the working directory. "
            "Returns path:line: text."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Folder or file to search (default .)"},
                "include": {"type": "string", "description": "Only files matching this glob"},
                "ignore_case": {"type": "boolean"},
            },
            "additionalProperties": False,
            "required": ["pattern"],
        },
    },
    {
        "name": "glob",
        "description": (
            "List files matching a glob pattern such as **/*.py, newest first "
            "(symlinks leading outside the working directory are skipped)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Folder to search from (default .)"},
            },
            "additionalProperties": False,
            "required": ["pattern"],
        },
    },
    {
        "name": "bash",
        "description": (
            "Run a shell command in the working directory (asks the user first). "
            "Returns its combined output (the head and tail of a long one) and exit status."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout": {"type": "integer", "minimum": 1, "description": "Seconds"},
            },
            "additionalProperties": False,
            "required": ["command"],
        },
    },
]
TOOL_NAMES = [spec["name"] for spec in TOOL_SPECS]


SPECS = {spec["name"]: spec for spec in TOOL_SPECS}
Keep = Callable[[Path, tuple[str, ...]], bool]  # a walk's choice of a folder or file by its parts


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    interrupted: bool = False


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the model."""


MAX_CHECKPOINT = 64 << 20  # bytes; a larger file is replaced without keeping its old content


@dataclass
class FileChange:
    """What a write or edit is about to do to one file."""

    path: Path  # the real path
    shown: str  # as the user reads it (relative to the working directory when inside)
    existed: bool
    before: bytes | None  # the current content (None: no file, or too large to keep)
    after: bytes
    text: str  # ``after`` as text
    line: int = 0  # where an edit starts
    skipped: bool = False  # the old content is too large to keep as a checkpoint


def cap(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, saying what was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {plural(cut, 'character')} cut ...]\n{tail}"


# -- tool input, checked against the tool's schema -------------------------------------------
_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "boolean": ("true or false", lambda v: isinstance(v, bool)),
}


def _shown(value: Any) -> str:
    """A value from the model, briefly: ``the string 'abc'``, ``a list``, ``null``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    text = repr(value)
    text = text if len(text) <= 40 else text[:39] + "…"
    return f"the string {text}" if isinstance(value, str) else f"the number {text}"


def _field_help(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    parts = []
    for key, prop in schema.get("properties", {}).items():
        kind = _TYPES.get(prop.get("type", ""), (prop.get("type", "?"), None))[0]
        parts.append(f"{key} ({kind}{', required' if key in required else ''})")
    return ", ".join(parts)


def check_input(name: str, args: Any) -> tuple[dict[str, Any], str | None]:
    """``args`` checked against the tool's input schema: (the input to run, the problem).

    Integral numbers written as ``3.0`` count as integers (JSON Schema's rule) and are
    passed on as ints; anything else of the wrong type, a missing required field or a
    field the schema does not have is a problem, said in one line the model can act on.
    """
    schema = SPECS[name]["input_schema"]
    if not isinstance(args, dict):
        return {}, f"the input must be a JSON object; the fields are {_field_help(schema)}"
    properties: dict[str, Any] = schema.get("properties", {})
    problems: list[str] = []
    out: dict[str, Any] = {}
    for key in schema.get("required", []):
        if key not in args:
            problems.append(f"{key} is required")
    for key, value in args.items():
        prop = properties.get(key)
        if prop is None:
            if schema.get("additionalProperties", True) is False:
                problems.append(f"unknown field {key!r}")
            continue
        kind = prop.get("type")
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        wanted, fits = _TYPES.get(kind, ("?", lambda v: True))
        if not fits(value):
            problems.append(f"{key} must be {wanted}, not {_shown(value)}")
            continue
        minimum = prop.get("minimum")
        if minimum is not None and value < minimum:
            problems.append(f"{key} must be at least {minimum}, not {value}")
            continue
        out[key] = value
    if problems:
        return out, (
            f"bad input for {name}: {'; '.join(problems)} (the fields are {_field_help(schema)})"
        )
    return out, None


def call_fields(name: str, args: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """What a toolCalls entry records of a run: the target (file/command/pattern) and small args."""
    out: dict[str, Any] = {}
    if not isinstance(args, dict):
        return out
    if name in ("read", "write", "edit") and isinstance(args.get("file"), str):
        out["file"] = display_path(args["file"], cwd)
    if name == "bash" and isinstance(args.get("command"), str):
        out["command"] = args["command"]
    if name in ("grep", "glob") and isinstance(args.get("pattern"), str):
        out["pattern"] = args["pattern"]
    for key in ("path", "include", "offset", "limit", "timeout"):
        value = args.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            out[key] = value
    if name == "write" and isinstance(args.get("content"), str):
        out["bytes"] = len(clean_text(args["content"]).encode("utf-8"))
    return out


def display_path(raw: str, cwd: Path) -> str:
    """A path as the tutorial's jq recipes count it: relative to the working directory if inside."""
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = cwd / path
    path = Path(os.path.normpath(path))
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


class Tools:
    """Runs tools for one chat. ``cwd`` is where Taurus started; ``extra_roots`` are further
    folders the file tools may reach."""

    def __init__(
        self,
        cwd: Path,
        bash_timeout: int = 120,
        output_limit: int = 30_000,
        allow_outside_cwd: bool = False,
        extra_roots: Iterable[Path] = (),
    ) -> None:
        self.confine = Confinement.around(cwd, extra_roots, unconfined=allow_outside_cwd)
        self.cwd = self.confine.cwd
        self.on_change: Callable[[FileChange], None] | None = None
        self.bash_timeout = bash_timeout
        self.output_limit = output_limit
        self.allow_outside_cwd = allow_outside_cwd

    def run(self, name: str, args: Any) -> ToolResult:
        """Run one tool. Whatever happens inside, the answer is a ToolResult (Ctrl+C aside)."""
        handler = getattr(self, f"tool_{name}", None) if name in SPECS else None
        if handler is None:
            return ToolResult(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}", True)
        args, problem = check_input(name, args)
        if problem is not None:
            return ToolResult(problem, True)
        try:
            result = handler(args)
        except (ToolError, PathRefused) as exc:
            return ToolResult(str(exc), True)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            return ToolResult(f"{name} failed: {exc.strerror or exc}{where}", True)
        except Exception as exc:
            # a case not foreseen (or a bug): the model is told in one line, the chat goes on
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            return ToolResult(f"{name} failed: {type(exc).__name__}: {detail}".rstrip(": "), True)
        result.content = cap(result.content, self.output_limit)
        return result

    # -- paths ---------------------------------------------------------------------------
    def path(self, raw: Any) -> Path:
        """The real path of a tool's path argument, refused if it lies outside."""
        if not isinstance(raw, str) or not raw.strip():
            raise ToolError("a path is required")
        try:
            os.fsencode(raw)
        except UnicodeError:
            raise ToolError(f"{clean_text(raw)!r} holds characters no file name can hold") from None
        return self.confine.resolve(raw)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.cwd))
        except ValueError:
            return str(path)

    # -- file tools ------------------------------------------------------------------------
    def tool_read(self, args: dict[str, Any]) -> ToolResult:
        path = self.path(args["file"])
        if not os.path.lexists(path):
            raise ToolError(f"no file {args['file']} (glob lists the files)")
        data = self.confine.read_bytes(path, args["file"])
        if b"\0" in data[:8192]:
            raise ToolError(f"{args['file']} is a binary file ({plural(len(data), 'byte')})")
        lines = decode_text(data).splitlines()
        offset = args.get("offset", 1)
        limit = args.get("limit", 2000)
        chosen = lines[offset - 1 : offset - 1 + limit]
        body = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(chosen, offset))
        if offset - 1 + limit < len(lines):
            more = plural(len(lines) - (offset - 1 + limit), "more line")
            body += f"\n[... {more}; use offset/limit]"
        return ToolResult(body if lines else "(empty file)")

    def tool_write(self, args: dict[str, Any]) -> ToolResult:
        change = self.plan_write(args)
        self.apply(change)
        verb = "Overwrote" if change.existed else "Created"
        return ToolResult(f"{verb} {change.shown} ({_lines(change.text)})")

    def tool_edit(self, args: dict[str, Any]) -> ToolResult:
        change = self.plan_edit(args)
        self.apply(change)
        return ToolResult(f"Edited {change.shown} at line {change.line}")

    # -- the changes write and edit make -------------------------------------------------
    def plan(self, name: str, args: Any) -> FileChange:
        """What ``write`` or ``edit`` would do with ``args``, without doing it (ToolError,
        PathRefused or OSError where the tool would fail)."""
        checked, problem = check_input(name, args)
        if problem is not None:
            raise ToolError(problem)
        return self.plan_write(checked) if name == "write" else self.plan_edit(checked)

    def preview(self, name: str, args: Any) -> FileChange | None:
        """``plan``, or None where the tool would fail (it says why when it runs)."""
        if name not in ("write", "edit"):
            return None
        try:
            return self.plan(name, args)
        except Exception:
            return None

    def plan_write(self, args: dict[str, Any]) -> FileChange:
        path = self.path(args["file"])
        content = clean_text(args["content"])
        if path.is_dir():
            raise ToolError(f"{args['file']} is a directory")
        existed = os.path.lexists(path)
        before = self.previous(path, args["file"]) if existed else None
        return FileChange(
            path,
            self.rel(path),
            existed,
            before,
            content.encode("utf-8"),
            content,
            skipped=(existed and before is None),
        )

    def plan_edit(self, args: dict[str, Any]) -> FileChange:
        path = self.path(args["file"])
        old, new = args["old_string"], clean_text(args["new_string"])
        if not old:
            raise ToolError("old_string is empty; use write to create a file")
        if old == new:
            raise ToolError("old_string and new_string are the same; nothing to change")
        if not os.path.lexists(path):
            raise ToolError(f"no file {args['file']}")
        data = self.confine.read_bytes(path, args["file"])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(
                f"{self.rel(path)} is not UTF-8 text (an invalid byte at offset {exc.start}); "
                "edit changes UTF-8 files only: use write to replace it whole, or bash"
            ) from None
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_string was not found in {self.rel(path)}; read the file again")
        if count > 1:
            raise ToolError(
                f"old_string occurs {count} times in {self.rel(path)}; include more context "
                "so it matches exactly once"
            )
        result = text.replace(old, new, 1)
        line = text[: text.index(old)].count("\n") + 1
        return FileChange(
            path, self.rel(path), True, data, result.encode("utf-8"), result, line=line
        )

    def previous(self, path: Path, shown: str) -> bytes | None:
        """The current bytes of a file about to be replaced; None if too large to keep."""
        try:
            if os.lstat(path).st_size > MAX_CHECKPOINT:
                return None
        except FileNotFoundError:
            return None
        return self.confine.read_bytes(path, shown)

    def apply(self, change: FileChange) -> None:
        """Write a planned change: first ``on_change`` (the chat keeps a checkpoint; if it
        cannot, it raises and the file is left alone), then the file."""
        if self.on_change is not None:
            self.on_change(change)
        self.make_parents(change.path, change.shown)
        self.replace(change.path, change.after)

    def make_parents(self, path: Path, shown: str) -> None:
        """Create the missing folders of an allowed path, and check they are still inside."""
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        if self.confine.check(path.parent) != path.parent:
            raise PathRefused(self.confine.outside_message(shown))

    def replace(self, path: Path, data: bytes) -> None:
        """Write ``path`` through an exclusively created temporary sibling, renamed into place;
        an existing file keeps its mode, a new one gets the umask's."""
        try:
            mode: int | None = stat.S_IMODE(os.lstat(path).st_mode)
        except FileNotFoundError:
            mode = None
        atomic_write(path, data, mode=mode, durable=True)

    # -- walking folders -------------------------------------------------------------------
    def walk(
        self,
        base: Path,
        skipped: list[str],
        keep_dir: Keep = lambda path, parts: True,
        keep_file: Keep = lambda path, parts: True,
    ) -> Iterator[tuple[Path, Path]]:
        """(path as reached, real path) of the regular files under the real folder ``base``.

        ``keep_dir`` and ``keep_file`` choose by path and parts relative to ``base``
        (.git, .hg and .svn are never entered). Each symlink among them is resolved by
        the confinement: one leading outside is not followed and is added to
        ``skipped``; one leading inside is followed (a folder once: no loops).
        """
        stack: list[tuple[Path, tuple[str, ...]]] = [(base, ())]
        seen: set[str] = set()
        while stack:
            folder, parts = stack.pop()
            real = self.confine.check(folder)
            if real is None:
                skipped.append(self.rel(folder))
                continue
            if os.fspath(real) in seen:
                continue
            seen.add(os.fspath(real))
            try:
                with os.scandir(real) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                continue
            folders = []
            for entry in entries:
                path = folder / entry.name
                try:
                    is_dir = entry.is_dir()
                    is_link = entry.is_symlink()
                except OSError:
                    continue
                if is_dir:
                    if entry.name not in SKIP_DIRS and keep_dir(path, (*parts, entry.name)):
                        folders.append((path, (*parts, entry.name)))
                    continue
                if not keep_file(path, (*parts, entry.name)):
                    continue
                target = self.confine.check(path) if is_link else real / entry.name
                if target is None:
                    skipped.append(self.rel(path))
                elif target.is_file() if is_link else entry.is_file(follow_symlinks=False):
                    yield path, target
            stack.extend(reversed(folders))

    def git_files(
        self, base: Path, skipped: list[str], keep_file: Keep
    ) -> list[tuple[Path, Path]] | None:
        """Tracked and untracked-but-not-ignored files under ``base`` if it is in a git work
        tree (a tracked symlink leading outside is skipped); None if it is not."""
        names = _git_names(base)
        if names is None:
            return None
        out = []
        for name in names:
            path = base / name
            if not keep_file(path, PurePosixPath(name).parts):
                continue
            target = self.confine.check(path)
            if target is None:
                skipped.append(self.rel(path))
            elif target.is_file():
                out.append((path, target))
        return out

    def files_under(
        self, base: Path, skipped: list[str], include: str | None = None
    ) -> Iterable[tuple[Path, Path]]:
        """Files grep searches under ``base`` (named like ``include`` if given): .git and
        what .gitignore ignores left out."""

        def named(path: Path) -> bool:
            return not include or fnmatch.fnmatch(path.name, include)

        listed = self.git_files(base, skipped, lambda path, parts: named(path))
        if listed is not None:
            return listed
        ignore = _Ignore(base)
        return self.walk(
            base,
            skipped,
            keep_dir=lambda path, parts: not ignore.match(path, True),
            keep_file=lambda path, parts: named(path) and not ignore.match(path, False),
        )

    def skipped_note(self, skipped: list[str]) -> str:
        if not skipped:
            return ""
        shown = ", ".join(sorted(skipped)[:5]) + (", …" if len(skipped) > 5 else "")
        links = plural(len(skipped), "symlink")
        return f"\n[skipped {links} leading outside the working directory: {shown}]"

    # -- search ----------------------------------------------------------------------------
    def tool_grep(self, args: dict[str, Any]) -> ToolResult:
        pattern = args["pattern"]
        if not pattern:
            raise ToolError("pattern is empty")
        try:
            regex = re.compile(pattern, re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
        base = self.path(args.get("path") or ".")
        include = args.get("include")
        skipped: list[str] = []
        files = [(base, base)] if base.is_file() else self.files_under(base, skipped, include)
        hits: list[str] = []
        for path, real in files:
            try:
                data = self.confine.read_bytes(real, self.rel(path), MAX_GREP_FILE)
            except PathRefused:
                skipped.append(self.rel(path))
                continue
            except OSError:
                continue
            if len(data) > MAX_GREP_FILE or b"\0" in data[:8192]:
                continue
            for number, line in enumerate(decode_text(data).splitlines(), 1):
                if regex.search(line):
                    hits.append(f"{self.rel(path)}:{number}: {line[:300]}")
                    if len(hits) >= MAX_MATCHES:
                        hits.append(f"[stopped at {MAX_MATCHES} matches; narrow the pattern]")
                        return ToolResult("\n".join(hits) + self.skipped_note(skipped))
        body = "\n".join(hits) if hits else "no matches"
        return ToolResult(body + self.skipped_note(skipped))

    def tool_glob(self, args: dict[str, Any]) -> ToolResult:
        pattern = args["pattern"]
        parts = PurePosixPath(pattern).parts if pattern else ()
        if not parts:
            raise ToolError("pattern is empty")
        if pattern.startswith("/") or ".." in parts:
            raise ToolError("use a pattern relative to the working directory (and path=)")
        base = self.path(args.get("path") or ".")
        if not base.is_dir():
            raise ToolError(f"{args.get('path')} is not a folder")
        skipped: list[str] = []
        walk = self.walk(
            base,
            skipped,
            keep_dir=lambda path, dirs: _may_hold(dirs, parts),
            keep_file=lambda path, names: _glob_match(names, parts),
        )
        found = [(_mtime(real), path) for path, real in walk]
        found.sort(key=lambda item: item[0], reverse=True)
        lines = [self.rel(p) for _, p in found[:MAX_GLOB]]
        if len(found) > MAX_GLOB:
            lines.append(f"[{plural(len(found) - MAX_GLOB, 'more file')}]")
        body = "\n".join(lines) if lines else "no files match"
        return ToolResult(body + self.skipped_note(skipped))

    # -- bash ------------------------------------------------------------------------------
    def tool_bash(self, args: dict[str, Any]) -> ToolResult:
        command = args["command"]
        if not command.strip():
            raise ToolError("command is empty")
        timeout = min(args.get("timeout") or self.bash_timeout, self.bash_timeout)
        reserve = min(400, self.output_limit // 2)  # room for the notes added to the output
        body = self.output_limit - reserve
        kept = CappedOutput(body * 2 // 3, body - body * 2 // 3)
        far = max(FAR_PAST_FACTOR * self.output_limit, FAR_PAST_MIN)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            why = _collect(proc, kept, time.monotonic() + timeout, far)
        except BaseException:
            _kill_group(proc)  # Ctrl+C or a signal: never leave the command running
            _close_wait(proc)
            raise
        text = kept.text()
        if why == "timeout":
            return ToolResult(f"{text}\n[stopped after {timeout} s: timed out]", True)
        if why == "output":
            return ToolResult(
                f"{text}\n[stopped after {plural(kept.total, 'byte')} of output, far more than "
                "chat.outputLimit keeps; the command was killed: narrow it (head, grep, tail)]",
                True,
            )
        status = proc.returncode
        tail = f"\n[exit status {status}]" if status else ""
        return ToolResult((text or "(no output)") + tail, status != 0)


class CappedOutput:
    """The first ``head`` and last ``tail`` bytes of a stream, in constant memory, and how many
    bytes between them were dropped."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_size = max(head, 0)
        self.tail_size = max(tail, 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_size - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        if len(chunk) >= self.tail_size:
            self.tail[:] = chunk[len(chunk) - self.tail_size :]
        else:
            self.tail += chunk
            del self.tail[: max(len(self.tail) - self.tail_size, 0)]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        """Head and tail as text (invalid bytes as U+FFFD), with a note of what was dropped
        between them; a character cut in two at either edge is dropped whole."""
        if not self.dropped:
            return decode_text(bytes(self.head + self.tail))
        head = bytes(self.head)
        tail = bytes(self.tail)
        cut_head = _partial_end(head)
        cut_tail = _partial_start(tail)
        head, tail = head[: len(head) - cut_head], tail[cut_tail:]
        dropped = self.dropped + cut_head + cut_tail
        return (
            f"{decode_text(head)}\n[... {plural(dropped, 'byte')} dropped ...]\n{decode_text(tail)}"
        )


def _partial_end(data: bytes) -> int:
    """How many bytes at the end of ``data`` are the start of an unfinished UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 == 0x80:  # a continuation byte: look further back for its lead
            continue
        return back if _utf8_length(lead) > back else 0
    return 0


def _utf8_length(lead: int) -> int:
    """The length of the UTF-8 character a lead byte opens (1 for ASCII or an invalid byte)."""
    for length, mask, value in ((2, 0xE0, 0xC0), (3, 0xF0, 0xE0), (4, 0xF8, 0xF0)):
        if lead & mask == value:
            return length
    return 1


def _partial_start(data: bytes) -> int:
    """How many continuation bytes open ``data`` (the rest of a character cut before it)."""
    count = 0
    while count < min(3, len(data)) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _collect(proc: subprocess.Popen[bytes], kept: CappedOutput, deadline: float, far: int) -> str:
    """Read the command's output into ``kept`` until it ends; ``"done"``, ``"timeout"`` (the
    command was killed at ``deadline``) or ``"output"`` (killed once ``far`` bytes came)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    why = "done"
    with selectors.DefaultSelector() as waiting:
        waiting.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = "timeout"
                break
            if not waiting.select(min(remaining, 1.0)):
                continue
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                break
            kept.add(chunk)
            if kept.total > far:
                why = "output"
                break
    if why == "done":
        try:
            proc.wait(max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            why = "timeout"
    if why != "done":
        _kill_group(proc)
    _close_wait(proc)
    return why


def _close_wait(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _glob_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Does a relative path (its parts) match a glob pattern (its parts)? ``**`` matches any
    number of folders; ``*``, ``?`` and ``[...]`` stay within one name, as in pathlib."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        rest = pattern[1:]
        while rest[:1] == ("**",):
            rest = rest[1:]
        if not rest:
            return True
        return any(_glob_match(parts[i:], rest) for i in range(len(parts)))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _glob_match(parts[1:], pattern[1:])
    )


def _may_hold(folder: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Could a file somewhere below ``folder`` (its parts) match ``pattern``?"""
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    if not folder:
        return True
    return (
        len(pattern) > 1
        and fnmatch.fnmatchcase(folder[0], pattern[0])
        and _may_hold(folder[1:], pattern[1:])
    )


def _git_names(base: Path) -> list[str] | None:
    """Names git lists under ``base`` (as the OS gives them), or None outside a work tree."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=base,
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return sorted(os.fsdecode(n) for n in done.stdout.split(b"\0") if n)


class _Ignore:
    """A small .gitignore reader for folders that are not git work trees."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.rules: list[tuple[str, bool, bool]] = []  # pattern, dir only, negated
        try:
            lines = decode_text((base / ".gitignore").read_bytes()).splitlines()
        except OSError:
            lines = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = line.lstrip("!")
            dir_only = line.endswith("/")
            self.rules.append((line.strip("/"), dir_only, negated))

    def match(self, path: Path, is_dir: bool) -> bool:
        rel = str(path.relative_to(self.base))
        ignored = False
        for pattern, dir_only, negated in self.rules:
            if dir_only and not is_dir:
                continue
            target = rel if "/" in pattern else path.name
            if fnmatch.fnmatch(target, pattern):
                ignored = not negated
        return ignored


def _lines(text: str) -> str:
    return plural(len(text.splitlines()), "line")
