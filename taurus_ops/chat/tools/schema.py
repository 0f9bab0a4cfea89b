"""The tools' input schemas (what the model is told) and the checks of what it sends."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taurus_ops.store.format import clean_text

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
