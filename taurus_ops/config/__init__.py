"""Layered settings and the paths Taurus uses."""

from taurus_ops.config.paths import expand_path, find_project_config, taurus_home, user_config_file
from taurus_ops.config.settings import LEAVES, Config, Settings, load_config, read_config_file

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
