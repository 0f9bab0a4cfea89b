"""Write ``config.example.yaml`` from the schema, so it documents every key and default.

python -m taurus_ops.config.example > config.example.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taurus_ops.config.paths import taurus_home
from taurus_ops.config.schema import SettingsModel

HEADER = """\
# Taurus configuration: every key with its default.
# Put what you change in ~/.taurus/config.yaml (user) or .taurus/config.yaml (a project;
# the nearest one walking up from the current directory). Higher layers win:
# defaults < user file < project file < TAURUS_* variables < --config FILE < --session-dir.
# `taurus-ops config show` prints each effective value and where it came from.
"""


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        home = taurus_home()
        if value == home or home in value.parents:
            return "~/.taurus" + str(value)[len(str(home)) :]
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"' if any(c in value for c in ":#*{}[]&!|>'\"%@`") or not value else value
    return str(value)


def _render(model: type[BaseModel], instance: BaseModel, indent: int) -> list[str]:
    lines: list[str] = []
    pad = "  " * indent
    for name, info in model.model_fields.items():
        key = info.alias or name
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            if info.description:
                lines.append(f"{pad}# {info.description}")
            lines.append(f"{pad}{key}:")
            lines.extend(_render(type(value), value, indent + 1))
            continue
        if info.description:
            lines.append(f"{pad}# {info.description}")
        lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def render() -> str:
    defaults = SettingsModel()
    return HEADER + "\n" + "\n".join(_render(SettingsModel, defaults, 0)) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
