"""What every tool shares: its result, its error, and the paths it may reach."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.chat.confine import Confinement
from taurus_ops.store.format import clean_text
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.chat.tools.files import FileChange

Keep = Callable[[Path, tuple[str, ...]], bool]  # a walk's choice of a folder or file by its parts


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
    return f"{head}\n[... {plural(cut, 'character')} cut ...]\n{tail}"


class ToolBase:
    """The state every tool family works with: the confinement of one chat's working
    directory (``cwd``, plus ``extra_roots``) and the limits from the settings."""

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
