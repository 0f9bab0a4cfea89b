"""The effective configuration handed to every command (no pydantic needed to use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.config.paths import taurus_home

if TYPE_CHECKING:
    from taurus_ops.config.schema import SettingsModel


@dataclass
class Config:
    """Settings plus where each value came from and which files were read.

    ``settings`` is the validated pydantic ``Settings``, or, when the configuration
    came from the start-up cache, a read-only view with the same attributes (typed as
    the schema model, which it mirrors, so callers are checked against the schema).
    """

    settings: SettingsModel
    sources: dict[str, str] = field(default_factory=dict)  # dotted key -> layer label
    files: list[Path] = field(default_factory=list)
    home: Path = field(default_factory=taurus_home)

    def get(self, key: str) -> Any:
        from taurus_ops.config.settings import LEAF_BY_KEY

        node: Any = self.settings
        for attr in LEAF_BY_KEY[key].path:
            node = getattr(node, attr)
        return node

    def as_dict(self) -> dict[str, Any]:
        from taurus_ops.config.settings import LEAVES

        return {leaf.key: plain(self.get(leaf.key)) for leaf in LEAVES}

    @property
    def session_dir(self) -> Path:
        return self.settings.session_directory

    @property
    def archive_dir(self) -> Path:
        return self.settings.sessions.archive_directory


def plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
