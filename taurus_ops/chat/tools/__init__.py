"""The chat's tools: read, write, edit, grep, glob and bash, confined to the working directory.

Each tool takes the model's input dict and returns a ``ToolResult`` (text for the
model, whether it is an error); whatever goes wrong inside a tool, ``Tools.run``
answers with a result, never an exception. The input is checked against the tool's
schema first. File tools go through one ``Confinement`` (chat/confine.py) for every
path they are given or meet, and write through an exclusively created temporary
file renamed into place. ``bash`` runs in the working directory in its own process
group, with a timeout, its output read as it comes and kept to the head and tail.

``Tools`` is made of one class per tool family over a common ``ToolBase`` (base.py:
the confinement, the limits, ``path`` and ``rel``): ``FileTools`` (files.py: read,
write, edit), ``SearchTools`` (search.py: grep, glob and the folder walk) and
``BashTool`` (bash.py). schema.py holds the input schemas and their checks.
"""

from __future__ import annotations

from typing import Any

from taurus_ops.chat.confine import PathRefused
from taurus_ops.chat.tools.base import Keep, ToolBase, ToolError, ToolResult, cap
from taurus_ops.chat.tools.bash import (
    FAR_PAST_FACTOR,
    FAR_PAST_MIN,
    READ_CHUNK,
    BashTool,
    CappedOutput,
)
from taurus_ops.chat.tools.files import MAX_CHECKPOINT, FileChange, FileTools
from taurus_ops.chat.tools.schema import (
    SPECS,
    TOOL_NAMES,
    TOOL_SPECS,
    call_fields,
    check_input,
    display_path,
)
from taurus_ops.chat.tools.search import (
    MAX_GLOB,
    MAX_GREP_FILE,
    MAX_MATCHES,
    SKIP_DIRS,
    SearchTools,
)

__all__ = [
    "FAR_PAST_FACTOR",
    "FAR_PAST_MIN",
    "MAX_CHECKPOINT",
    "MAX_GLOB",
    "MAX_GREP_FILE",
    "MAX_MATCHES",
    "READ_CHUNK",
    "SKIP_DIRS",
    "SPECS",
    "TOOL_NAMES",
    "TOOL_SPECS",
    "CappedOutput",
    "FileChange",
    "Keep",
    "ToolBase",
    "ToolError",
    "ToolResult",
    "Tools",
    "call_fields",
    "cap",
    "check_input",
    "display_path",
]


class Tools(FileTools, SearchTools, BashTool):
    """Runs tools for one chat. ``cwd`` is where Taurus started; ``extra_roots`` are further
    folders the file tools may reach."""

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
