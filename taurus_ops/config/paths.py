"""Where Taurus keeps things: the home folder and the path rules for config values."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "TAURUS_HOME"


def taurus_home() -> Path:
    """The Taurus home: ``$TAURUS_HOME`` if set, else ``~/.taurus``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".taurus"


def user_config_file() -> Path:
    return taurus_home() / "config.yaml"


def expand_path(value: str | os.PathLike[str], base: Path | None = None) -> Path:
    """Expand ``~`` and make ``value`` absolute.

    ``~/.taurus`` (the default home) maps to the Taurus home, so a config written
    for the default layout follows ``TAURUS_HOME``. A relative path resolves against
    ``base`` (a project's root for a project file), or the current directory.
    """
    text = os.fspath(value)
    if text == "~/.taurus" or text.startswith("~/.taurus/"):
        return (
            taurus_home().joinpath(text[len("~/.taurus/") :]) if "/" in text[2:] else taurus_home()
        )
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return Path(os.path.normpath(path))


def find_project_config(start: Path | None = None) -> Path | None:
    """The nearest ``.taurus/config.yaml`` walking up from ``start``; never the user file."""
    here = (start or Path.cwd()).absolute()
    user_file = user_config_file().absolute()
    for folder in (here, *here.parents):
        candidate = folder / ".taurus" / "config.yaml"
        if candidate.absolute() == user_file or (folder / ".taurus").absolute() == taurus_home():
            continue
        if candidate.is_file():
            return candidate
    return None
