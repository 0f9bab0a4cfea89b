"""The file tools: read, write and edit, and the change a write or edit is about to make."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taurus_ops.chat.confine import PathRefused
from taurus_ops.chat.tools.base import ToolBase, ToolError, ToolResult
from taurus_ops.chat.tools.schema import check_input
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.format import clean_text, decode_text
from taurus_ops.words import plural

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


class FileTools(ToolBase):
    """read, write and edit; a write or edit is planned (``plan``), then applied."""

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


def _lines(text: str) -> str:
    return plural(len(text.splitlines()), "line")
