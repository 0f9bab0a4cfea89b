"""The chat's tools: read, write, edit, grep, glob and bash, confined to the working directory.

Each tool takes the model's input dict and returns a ``ToolResult`` (text for the
model, whether it is an error). File tools refuse paths outside the working
directory unless ``chat.allowOutsideCwd`` is set. ``bash`` runs in the working
directory in its own process group, with a timeout and an output cap.
"""

from __future__ import annotations

import fnmatch
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_MATCHES = 200
MAX_GLOB = 500
MAX_GREP_FILE = 2_000_000  # bytes; bigger files are skipped by grep
SKIP_DIRS = {".git", ".hg", ".svn"}

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
            "required": ["file", "old_string", "new_string"],
        },
    },
    {
        "name": "grep",
        "description": (
            "Search file contents with a Python regular expression. Skips .git and files "
            "ignored by .gitignore. Returns path:line: text."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Folder or file to search (default .)"},
                "include": {"type": "string", "description": "Only files matching this glob"},
                "ignore_case": {"type": "boolean"},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "glob",
        "description": "List files matching a glob pattern such as **/*.py, newest first.",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Folder to search from (default .)"},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "bash",
        "description": (
            "Run a shell command in the working directory (asks the user first). "
            "Returns its combined output and exit status."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout": {"type": "integer", "minimum": 1, "description": "Seconds"},
            },
            "required": ["command"],
        },
    },
]
TOOL_NAMES = [spec["name"] for spec in TOOL_SPECS]


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    interrupted: bool = False


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the model."""


def cap(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, saying what was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut} characters cut ...]\n{tail}"


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
        out["bytes"] = len(args["content"].encode("utf-8"))
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
    """Runs tools for one chat. ``cwd`` is where Taurus started."""

    def __init__(
        self,
        cwd: Path,
        bash_timeout: int = 120,
        output_limit: int = 30_000,
        allow_outside_cwd: bool = False,
    ) -> None:
        self.cwd = Path(os.path.realpath(cwd))
        self.bash_timeout = bash_timeout
        self.output_limit = output_limit
        self.allow_outside_cwd = allow_outside_cwd

    def run(self, name: str, args: dict[str, Any]) -> ToolResult:
        handler = getattr(self, f"tool_{name}", None)
        if name not in TOOL_NAMES or handler is None:
            return ToolResult(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}", True)
        if not isinstance(args, dict):
            return ToolResult("the tool input must be an object", True)
        try:
            result = handler(args)
        except ToolError as exc:
            return ToolResult(str(exc), True)
        except (KeyError, TypeError) as exc:
            return ToolResult(f"bad input for {name}: {exc}", True)
        except OSError as exc:
            return ToolResult(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), True)
        result.content = cap(result.content, self.output_limit)
        return result

    # -- paths ---------------------------------------------------------------------------
    def path(self, raw: Any) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise ToolError("a path is required")
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute():
            path = self.cwd / path
        real = Path(os.path.realpath(path))
        if not self.allow_outside_cwd and real != self.cwd and self.cwd not in real.parents:
            raise ToolError(
                f"{raw} is outside the working directory {self.cwd}; refused "
                "(set chat.allowOutsideCwd: true to allow it)"
            )
        return real

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.cwd))
        except ValueError:
            return str(path)

    # -- file tools ------------------------------------------------------------------------
    def tool_read(self, args: dict[str, Any]) -> ToolResult:
        path = self.path(args.get("file"))
        if path.is_dir():
            raise ToolError(f"{args['file']} is a directory (use glob to list it)")
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            raise ToolError(f"{args['file']} is a binary file ({len(data)} bytes)")
        text = data.decode("utf-8", errors="replace")
        lines = text.splitlines()
        offset = max(int(args.get("offset") or 1), 1)
        limit = int(args.get("limit") or 2000)
        chosen = lines[offset - 1 : offset - 1 + limit]
        body = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(chosen, offset))
        if offset - 1 + limit < len(lines):
            body += f"\n[... {len(lines) - (offset - 1 + limit)} more lines; use offset/limit]"
        return ToolResult(body if lines else "(empty file)")

    def tool_write(self, args: dict[str, Any]) -> ToolResult:
        path = self.path(args.get("file"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        existed = path.exists()
        if path.is_dir():
            raise ToolError(f"{args['file']} is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, content)
        verb = "Overwrote" if existed else "Created"
        return ToolResult(f"{verb} {self.rel(path)} ({_lines(content)})")

    def tool_edit(self, args: dict[str, Any]) -> ToolResult:
        path = self.path(args.get("file"))
        old, new = args.get("old_string"), args.get("new_string")
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("old_string and new_string must be strings")
        if not old:
            raise ToolError("old_string is empty; use write to create a file")
        if old == new:
            raise ToolError("old_string and new_string are the same; nothing to change")
        if not path.is_file():
            raise ToolError(f"no file {args['file']}")
        text = path.read_text(encoding="utf-8")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_string was not found in {self.rel(path)}; read the file again")
        if count > 1:
            raise ToolError(
                f"old_string occurs {count} times in {self.rel(path)}; include more context "
                "so it matches exactly once"
            )
        write_text(path, text.replace(old, new, 1))
        line = text[: text.index(old)].count("\n") + 1
        return ToolResult(f"Edited {self.rel(path)} at line {line}")

    # -- search ----------------------------------------------------------------------------
    def files_under(self, base: Path) -> Iterator[Path]:
        """Files under ``base``, skipping .git and what .gitignore ignores."""
        listed = _git_files(base)
        if listed is not None:
            yield from listed
            return
        ignore = _Ignore(base)
        for root, dirs, files in os.walk(base):
            root_path = Path(root)
            dirs[:] = sorted(
                d for d in dirs if d not in SKIP_DIRS and not ignore.match(root_path / d, True)
            )
            for name in sorted(files):
                path = root_path / name
                if not ignore.match(path, False):
                    yield path

    def tool_grep(self, args: dict[str, Any]) -> ToolResult:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("pattern is required")
        try:
            regex = re.compile(pattern, re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
        base = self.path(args.get("path") or ".")
        include = args.get("include")
        files = [base] if base.is_file() else self.files_under(base)
        hits: list[str] = []
        for path in files:
            if include and not fnmatch.fnmatch(path.name, include):
                continue
            try:
                if path.stat().st_size > MAX_GREP_FILE:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if b"\0" in data[:8192]:
                continue
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if regex.search(line):
                    hits.append(f"{self.rel(path)}:{number}: {line[:300]}")
                    if len(hits) >= MAX_MATCHES:
                        hits.append(f"[stopped at {MAX_MATCHES} matches; narrow the pattern]")
                        return ToolResult("\n".join(hits))
        return ToolResult("\n".join(hits) if hits else "no matches")

    def tool_glob(self, args: dict[str, Any]) -> ToolResult:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("pattern is required")
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise ToolError("use a pattern relative to the working directory (and path=)")
        base = self.path(args.get("path") or ".")
        found = []
        for path in base.glob(pattern):
            if SKIP_DIRS.intersection(path.relative_to(base).parts) or not path.is_file():
                continue
            found.append(path)
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        lines = [self.rel(p) for p in found[:MAX_GLOB]]
        if len(found) > MAX_GLOB:
            lines.append(f"[{len(found) - MAX_GLOB} more files]")
        return ToolResult("\n".join(lines) if lines else "no files match")

    # -- bash ------------------------------------------------------------------------------
    def tool_bash(self, args: dict[str, Any]) -> ToolResult:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("command is required")
        timeout = min(int(args.get("timeout") or self.bash_timeout), self.bash_timeout)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            text = out.decode("utf-8", "replace")
            return ToolResult(f"{text}\n[stopped after {timeout} s: timed out]", True)
        except BaseException:
            _kill_group(proc)  # Ctrl+C or a signal: never leave the command running
            proc.communicate()
            raise
        text = out.decode("utf-8", "replace")
        status = proc.returncode
        tail = f"\n[exit status {status}]" if status else ""
        return ToolResult((text or "(no output)") + tail, status != 0)


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


def write_text(path: Path, content: str) -> None:
    """Write a file via a temporary sibling and rename, keeping an existing file's mode."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.taurus-tmp")
    tmp.write_text(content, encoding="utf-8")
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def _git_files(base: Path) -> list[Path] | None:
    """Tracked and untracked-but-not-ignored files under ``base``, if it is in a git work tree."""
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
    names = [n for n in done.stdout.decode("utf-8", "replace").split("\0") if n]
    return [base / n for n in sorted(names) if (base / n).is_file()]


class _Ignore:
    """A small .gitignore reader for folders that are not git work trees."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.rules: list[tuple[str, bool, bool]] = []  # pattern, dir only, negated
        try:
            lines = (base / ".gitignore").read_text(encoding="utf-8").splitlines()
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
    count = len(text.splitlines())
    return f"{count} line" if count == 1 else f"{count} lines"
