"""Layered settings and the paths Taurus uses.

``load_config`` is cheap: it answers from the start-up cache when nothing that
shaped the configuration has changed, and only then imports pydantic to validate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taurus_ops.config.effective import Config
from taurus_ops.config.paths import expand_path, find_project_config, taurus_home, user_config_file

__all__ = [
    "LEAVES",
    "Config",
    "Settings",
    "expand_path",
    "find_project_config",
    "load_config",
    "read_config_file",
    "taurus_home",
    "user_config_file",
]


def load_config(
    config_file: Path | None = None,
    session_dir: Path | str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The effective configuration: defaults < user file < project file < env < flags."""
    from taurus_ops.config import cache

    environ = os.environ if environ is None else environ
    key = cache.cache_key(config_file, session_dir, cwd, environ)
    found = cache.lookup(key)
    if found is not None:
        return found
    from taurus_ops.config.settings import build_config

    config = build_config(config_file, session_dir, cwd, environ)
    cache.remember(key, config)
    return config


def __getattr__(name: str) -> Any:
    if name in {"LEAVES", "Settings", "read_config_file"}:
        from taurus_ops.config import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
