"""A start-up cache of the effective configuration.

Validating the layers needs pydantic, which costs about a tenth of a second of
every command's start-up. The validated result is kept in
``<Taurus home>/.config-cache.json``, keyed by everything it was made from: the
Taurus version and schema, the home folders, the working directory, every
``TAURUS_*`` variable, the flags, and the identity (path, mtime, size, inode) of
each config file that was read or could have been. Any change to any of these is
a miss, and a miss simply validates again; a damaged or unreadable cache is a miss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from taurus_ops import __version__
from taurus_ops.config.effective import Config
from taurus_ops.config.paths import find_project_config, taurus_home, user_config_file

CACHE_NAME = ".config-cache.json"
MAX_ENTRIES = 8
_SCHEMA = Path(__file__).with_name("schema.py")


def _identity(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None]
    return [str(path), st.st_mtime_ns, st.st_size, st.st_ino]


def cache_key(
    config_file: Path | None,
    session_dir: Path | str | None,
    cwd: Path | None,
    environ: Mapping[str, str],
) -> str:
    here = (cwd or Path.cwd()).absolute()
    parts = {
        "version": __version__,
        "schema": _identity(_SCHEMA),
        "home": str(taurus_home()),
        "HOME": environ.get("HOME"),
        "cwd": str(here),
        "env": sorted((k, v) for k, v in environ.items() if k.startswith("TAURUS_")),
        "user": _identity(user_config_file()),
        "project": _identity(find_project_config(here)),
        "flag": _identity(Path(config_file).absolute()) if config_file is not None else None,
        "sessionDir": str(session_dir) if session_dir is not None else None,
    }
    return json.dumps(parts, sort_keys=True)


def _encode(value: Any) -> Any:
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__path__"}:
            return Path(value["__path__"])
        return SimpleNamespace(**{k: _decode(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _read(home: Path) -> list[dict[str, Any]]:
    try:
        with open(home / CACHE_NAME, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def lookup(key: str) -> Config | None:
    """The cached configuration for ``key``, or None."""
    home = taurus_home()
    for entry in _read(home):
        if not isinstance(entry, dict) or entry.get("key") != key:
            continue
        try:
            return Config(
                settings=_decode(entry["settings"]),
                sources=dict(entry["sources"]),
                files=[Path(p) for p in entry["files"]],
                home=home,
            )
        except (KeyError, TypeError):
            return None
    return None


def remember(key: str, config: Config) -> None:
    """Keep ``config`` for ``key`` (only where the Taurus home already exists)."""
    home = taurus_home()
    if not home.is_dir():
        return
    from taurus_ops.store.atomic import atomic_write

    entry = {
        "key": key,
        "settings": _encode(config.settings.model_dump(mode="python")),
        "sources": config.sources,
        "files": [str(p) for p in config.files],
    }
    entries = [entry] + [e for e in _read(home) if isinstance(e, dict) and e.get("key") != key]
    try:
        atomic_write(home / CACHE_NAME, json.dumps(entries[:MAX_ENTRIES]).encode(), durable=False)
    except OSError:
        pass  # a cache: a read-only home just means validating each time


def validated(path: Path) -> bool:
    """True if a cached configuration was made, by this Taurus, from the user's config
    file ``path`` as it is now (the same path, mtime, size and inode): every file is
    validated on its own before one is made (``read_config_file``, the user's with the
    Taurus home as its base), so this one was found valid as it is, and ``doctor``
    need not load pydantic to check it again."""
    identity = _identity(path)
    if identity is None or identity[1] is None:
        return False
    home = taurus_home()
    current = {"version": __version__, "schema": _identity(_SCHEMA), "home": str(home)}
    for entry in _read(home):
        try:
            parts = json.loads(entry["key"])
        except (KeyError, TypeError, ValueError):
            continue
        if not isinstance(parts, dict) or parts.get("user") != identity:
            continue
        if all(parts.get(name) == value for name, value in current.items()):
            return True
    return False
