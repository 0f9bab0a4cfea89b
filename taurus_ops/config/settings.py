"""Layered settings: defaults < user file < project file < TAURUS_* variables < flags.

Each layer is validated on its own, so an error names the file (or variable) it came
from; then the layers are merged key by key into a pydantic-settings ``Settings``
(whose only source is that merged mapping: Taurus reads TAURUS_* variables itself,
with the names ``config show`` prints), and the source of every effective value is
recorded for ``taurus-ops config show``.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from taurus_ops.config.effective import Config
from taurus_ops.config.paths import expand_path, find_project_config, taurus_home, user_config_file
from taurus_ops.config.schema import SettingsModel
from taurus_ops.errors import ConfigError

ENV_PREFIX = "TAURUS_"
DEFAULT = "default"


@dataclass(frozen=True)
class Leaf:
    """One settable key: its dotted camelCase name, env variable and field."""

    key: str
    path: tuple[str, ...]  # python attribute path
    env: str
    info: FieldInfo

    @property
    def is_path(self) -> bool:
        return _annotation_is(self.info.annotation, Path)

    @property
    def is_text(self) -> bool:
        return _annotation_is(self.info.annotation, str)


def _annotation_is(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # Optional[kind]
        return any(arg is kind for arg in typing.get_args(annotation))
    return False


def _snake_upper(camel: str) -> str:
    out: list[str] = []
    for ch in camel:
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


def _walk(
    model: type[BaseModel], prefix: tuple[str, ...] = (), keys: tuple[str, ...] = ()
) -> Iterator[Leaf]:
    for name, info in model.model_fields.items():
        alias = info.alias or name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, (*prefix, name), (*keys, alias))
            continue
        dotted = (*keys, alias)
        env = ENV_PREFIX + "__".join(_snake_upper(k) for k in dotted)
        yield Leaf(".".join(dotted), (*prefix, name), env, info)


LEAVES: tuple[Leaf, ...] = tuple(_walk(SettingsModel))
LEAF_BY_KEY = {leaf.key: leaf for leaf in LEAVES}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted not in LEAF_BY_KEY:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _text_of(item: Any) -> str:
    """A validation error's message without pydantic's ``Value error, `` prefix."""
    return str(item["msg"]).removeprefix("Value error, ")


def _messages(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = _text_of(item)
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{key}: {msg}")
    return out


@dataclass
class Layer:
    """One source of settings, already validated, with paths made absolute."""

    label: str
    values: dict[str, Any]  # flat dotted key -> value


def _validate_layer(label: str, data: Any, base: Path | None) -> Layer:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(label, ["the file must hold a mapping of keys (key: value)"])
    try:
        SettingsModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(label, _messages(exc)) from None
    flat = _flatten(data)
    for key, value in list(flat.items()):
        leaf = LEAF_BY_KEY.get(key)
        if leaf is not None and leaf.is_path and value is not None:
            if "\x00" in str(value):  # no file system takes it: every command would fail
                raise ConfigError(label, [f"{key}: a path cannot contain a NUL character"])
            flat[key] = str(expand_path(str(value), base))
    return Layer(label, flat)


def read_config_file(path: Path, base: Path | None = None) -> Layer:
    """Read and validate one YAML config file; any problem is a ConfigError naming it."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            label, [f"cannot read: {getattr(exc, 'strerror', None) or exc}"]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(label, [f"invalid YAML: {where}{problem}"]) from None
    return _validate_layer(label, data, base)


def _env_layer(environ: Mapping[str, str]) -> Layer:
    flat: dict[str, Any] = {}
    labels = []
    for leaf in LEAVES:
        if leaf.env not in environ:
            continue
        raw = environ[leaf.env]
        value: Any = raw
        if not (leaf.is_text or leaf.is_path):
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                value = raw
        flat[leaf.key] = value
        labels.append(leaf.env)
    layer_label = "environment"
    try:
        SettingsModel.model_validate(_unflatten(flat))
    except ValidationError as exc:
        msgs = []
        for item in exc.errors():
            dotted = ".".join(str(p) for p in item["loc"])
            env = LEAF_BY_KEY[dotted].env if dotted in LEAF_BY_KEY else dotted
            msgs.append(f"{env}: {_text_of(item)}")
        raise ConfigError(layer_label, msgs) from None
    for key in list(flat):
        if LEAF_BY_KEY[key].is_path and flat[key] is not None:
            flat[key] = str(expand_path(flat[key]))
    return Layer(layer_label, flat)


class Settings(SettingsModel, BaseSettings):
    """The effective settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(extra="forbid", populate_by_name=True, validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def build_config(
    config_file: Path | None = None,
    session_dir: Path | str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate every layer and build the effective configuration (no cache)."""
    environ = os.environ if environ is None else environ
    layers: list[Layer] = []
    files: list[Path] = []
    user_file = user_config_file()
    if user_file.is_file() or user_file.is_symlink():
        layers.append(read_config_file(user_file, base=taurus_home()))
        files.append(user_file)
    project_file = find_project_config(cwd)
    if project_file is not None:
        layers.append(read_config_file(project_file, base=project_file.parent.parent))
        files.append(project_file)
    layers.append(_env_layer(environ))
    if config_file is not None:
        config_file = Path(config_file)
        layers.append(read_config_file(config_file, base=config_file.absolute().parent))
        files.append(config_file)
    if session_dir is not None:
        layers.append(
            Layer("--session-dir", {"sessionDirectory": str(expand_path(str(session_dir), cwd))})
        )
    sources = {leaf.key: DEFAULT for leaf in LEAVES}
    for layer in layers:
        for key in layer.values:
            if key in sources:
                sources[key] = layer.label
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.values)
    try:
        settings = Settings(**_unflatten(merged))
    except ValidationError as exc:  # pragma: no cover - each layer was validated already
        raise ConfigError("configuration", _messages(exc)) from None
    _check_folders(settings, sources)
    return Config(settings=settings, sources=sources, files=files)


def _check_folders(settings: Settings, sources: dict[str, str]) -> None:
    """Folders that must stay apart, or cleanup, backup and the doctor would mix them up."""
    home = taurus_home()
    sessions = Path(os.path.normpath(settings.session_directory))
    folders = {"sessions.archiveDirectory": settings.sessions.archive_directory}
    if sessions == home:
        raise ConfigError(
            sources["sessionDirectory"],
            [f"sessionDirectory: {sessions} is the Taurus home itself; use a folder inside it"],
        )
    for key, folder in folders.items():
        if Path(os.path.normpath(folder)) == sessions:
            source = sources[key] if sources[key] != DEFAULT else sources["sessionDirectory"]
            raise ConfigError(
                source,
                [f"{key}: {folder} is the session directory itself; give it a folder of its own"],
            )
