"""Layered settings: every layer, provenance, path rules, and every kind of bad file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.paths import ROOT

from taurus_ops.config import load_config, read_config_file
from taurus_ops.config.example import render
from taurus_ops.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_live_under_the_taurus_home(taurus_home: Path) -> None:
    config = load_config()
    assert config.session_dir == taurus_home / "sessions"
    assert config.archive_dir == taurus_home / "archive"
    assert config.settings.sessions.retention_days is None  # retention is off by default
    assert config.settings.sessions.max_sessions is None
    assert config.settings.sessions.auto_archive is True
    assert all(source == "default" for source in config.sources.values())


def test_each_layer_overrides_the_one_below(taurus_home: Path, tmp_path: Path, monkeypatch) -> None:
    user = write(
        taurus_home / "config.yaml",
        "model: user-model\nsessions:\n  retentionDays: 10\n  maxSessions: 50\n",
    )
    project = tmp_path / "proj"
    write(project / ".taurus" / "config.yaml", "sessions:\n  maxSessions: 20\n")
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.setenv("TAURUS_SESSIONS__RETENTION_DAYS", "5")
    flag_file = write(tmp_path / "extra.yaml", "chat:\n  bashTimeout: 9\n")

    config = load_config(config_file=flag_file, session_dir=tmp_path / "flagged")
    s = config.settings
    assert s.model == "user-model" and config.sources["model"] == str(user)
    assert s.sessions.max_sessions == 20
    assert config.sources["sessions.maxSessions"] == str(project / ".taurus" / "config.yaml")
    assert (
        s.sessions.retention_days == 5 and config.sources["sessions.retentionDays"] == "environment"
    )
    assert s.chat.bash_timeout == 9 and config.sources["chat.bashTimeout"] == str(flag_file)
    assert (
        config.session_dir == tmp_path / "flagged"
        and config.sources["sessionDirectory"] == "--session-dir"
    )
    assert config.files == [user, project / ".taurus" / "config.yaml", flag_file]


def test_project_relative_paths_resolve_against_the_project_root(
    tmp_path: Path, monkeypatch
) -> None:
    project = tmp_path / "project-a"
    write(project / ".taurus" / "config.yaml", "sessionDirectory: ./.taurus/sessions\n")
    (project / "lib").mkdir()
    monkeypatch.chdir(project / "lib")
    assert load_config().session_dir == project / ".taurus" / "sessions"


def test_tilde_taurus_follows_taurus_home(taurus_home: Path, tmp_path: Path) -> None:
    write(
        taurus_home / "config.yaml",
        "sessions:\n  archiveDirectory: ~/.taurus/archive\nsessionDirectory: ~/my-custom-sessions/\n",
    )
    config = load_config()
    assert config.archive_dir == taurus_home / "archive"
    assert config.session_dir == Path.home() / "my-custom-sessions"  # HOME is a temp folder here


def test_the_user_file_is_not_mistaken_for_a_project_file(taurus_home: Path, monkeypatch) -> None:
    write(taurus_home / "config.yaml", "model: from-user\n")
    monkeypatch.chdir(taurus_home.parent)  # the folder that holds the Taurus home
    config = load_config()
    assert config.files == [taurus_home / "config.yaml"]


def test_env_values_are_typed_and_lists_parse(monkeypatch) -> None:
    monkeypatch.setenv("TAURUS_PERMISSIONS__ALLOW", "[write, edit]")
    monkeypatch.setenv("TAURUS_SESSIONS__AUTO_ARCHIVE", "false")
    monkeypatch.setenv("TAURUS_MODEL", "123")  # a string key stays a string
    s = load_config().settings
    assert s.permissions.allow == ["write", "edit"]
    assert s.sessions.auto_archive is False
    assert s.model == "123"


BAD_FILES = [
    ("sessions: [1\n", "invalid YAML: line"),
    (
        "sessions:\n  retentionDays: -3\n",
        "sessions.retentionDays: Input should be greater than or equal to 1",
    ),
    ("sessions:\n  retentionDay: 30\n", "sessions.retentionDay: unknown key"),
    ("sessionDirectory: [a, b]\n", "sessionDirectory:"),
    ("sessions:\n  maxSessions: lots\n", "sessions.maxSessions: Input should be a valid integer"),
    ("sessions:\n  autoArchive: maybe\n", "sessions.autoArchive: Input should be a valid boolean"),
    ("- just\n- a list\n", "must hold a mapping"),
    (
        "bogus: 1\nsessions:\n  retentionDays: 0\n",
        "sessions.retentionDays: Input should be greater than or equal to 1; bogus: unknown key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_files_name_the_file_the_key_and_the_problem(
    taurus_home: Path, text: str, expected: str
) -> None:
    path = write(taurus_home / "config.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.source == str(path)
    assert expected in str(info.value)


def test_empty_file_is_fine(taurus_home: Path) -> None:
    write(taurus_home / "config.yaml", "")
    assert load_config().files == [taurus_home / "config.yaml"]


def test_unreadable_and_undecodable_files(taurus_home: Path) -> None:
    path = taurus_home / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"model: \xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config()
    with pytest.raises(ConfigError, match="no such file"):
        read_config_file(taurus_home / "missing.yaml")


def test_bad_environment_value_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("TAURUS_SESSIONS__MAX_SESSIONS", "-1")
    with pytest.raises(ConfigError, match="TAURUS_SESSIONS__MAX_SESSIONS: Input should be greater"):
        load_config()


@pytest.mark.parametrize("command", [["list"], ["config", "show"], ["show", "abc"]])
def test_cli_reports_a_bad_config_in_one_line_with_status_2(
    taurus_home: Path, command: list[str]
) -> None:
    write(taurus_home / "config.yaml", "sessions:\n  retentionDays: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "config.yaml" in lines[0] and "sessions.retentionDays" in lines[0]


def test_config_show_reports_value_and_source(ops, taurus_home: Path) -> None:
    write(taurus_home / "config.yaml", "sessions:\n  retentionDays: 30\n")
    result = ops("config", "show", "--json")
    assert result.exit_code == 0

    data = json.loads(result.output)
    assert data["sessions.retentionDays"] == {
        "value": 30,
        "source": str(taurus_home / "config.yaml"),
        "env": "TAURUS_SESSIONS__RETENTION_DAYS",
    }
    assert data["sessionDirectory"]["source"] == "default"
    text = ops("config", "show").output
    assert "sessions.retentionDays" in text and "30" in text


def test_config_validate(ops, tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "sessions:\n  maxSessions: 100\n")
    bad = write(tmp_path / "bad.yaml", "sessions:\n  maxSessions: 0\n")
    assert ops("config", "validate", str(good)).exit_code == 0
    result = ops("config", "validate", str(bad))
    assert result.exit_code == 2 and "bad.yaml" in result.output and "maxSessions" in result.output


def test_example_file_documents_every_key_with_its_default() -> None:
    example = (ROOT / "config.example.yaml").read_text()
    assert example == render(), (
        "regenerate: python -m taurus_ops.config.example > config.example.yaml"
    )
    data = yaml.safe_load(example)
    from taurus_ops.config import LEAVES

    for leaf in LEAVES:
        node = data
        for part in leaf.key.split("."):
            assert part in node, f"{leaf.key} missing from config.example.yaml"
            node = node[part]
    read_config_file(ROOT / "config.example.yaml")  # and it is itself a valid config


def test_tutorial_retention_block_is_accepted(taurus_home: Path) -> None:
    write(
        taurus_home / "config.yaml",
        "sessions:\n  retentionDays: 30\n  maxSessions: 100\n  autoArchive: true\n  archiveDirectory: ~/.taurus/archive\n",
    )
    s = load_config().settings.sessions
    assert (s.retention_days, s.max_sessions, s.auto_archive) == (30, 100, True)
    assert s.archive_directory == taurus_home / "archive"


# -- the start-up cache ---------------------------------------------------------------
def _cache_hit(**kwargs) -> bool:
    from taurus_ops.config import cache

    return (
        cache.lookup(cache.cache_key(kwargs.get("config_file"), None, None, os.environ)) is not None
    )


def test_cache_answers_the_same_configuration(taurus_home: Path) -> None:
    write(taurus_home / "config.yaml", "sessions:\n  retentionDays: 30\nmodel: m1\n")
    first = load_config()
    assert _cache_hit()
    again = load_config()
    assert type(again.settings) is not type(first.settings)  # the cached view, no pydantic
    assert again.as_dict() == first.as_dict()
    assert again.sources == first.sources and again.files == first.files
    assert again.session_dir == first.session_dir and isinstance(again.session_dir, Path)
    assert again.settings.sessions.retention_days == 30
    assert again.settings.permissions.allow == []


def test_cache_misses_when_anything_that_shaped_it_changes(
    taurus_home: Path, tmp_path: Path, monkeypatch
) -> None:
    user = write(taurus_home / "config.yaml", "model: m1\n")
    load_config()
    write(user, "model: m22\n")  # edited (size differs)
    assert load_config().settings.model == "m22"
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    monkeypatch.chdir(project / "sub")
    load_config()
    write(project / ".taurus" / "config.yaml", "model: from-project\n")  # a new project file
    assert load_config().settings.model == "from-project"
    monkeypatch.setenv("TAURUS_MODEL", "from-env")
    assert load_config().settings.model == "from-env"
    monkeypatch.delenv("TAURUS_MODEL")
    user.unlink()
    write(project / ".taurus" / "config.yaml", "sessions:\n  maxSessions: -1\n")
    with pytest.raises(ConfigError):  # an invalid file is never answered from the cache
        load_config()


def test_a_damaged_cache_is_ignored(taurus_home: Path) -> None:
    from taurus_ops.config.cache import CACHE_NAME

    write(taurus_home / "config.yaml", "model: m1\n")
    load_config()
    (taurus_home / CACHE_NAME).write_text('[{"key": 1}, "junk"')
    assert load_config().settings.model == "m1"
    (taurus_home / CACHE_NAME).write_text("[]")
    assert load_config().settings.model == "m1"
    assert oct((taurus_home / CACHE_NAME).stat().st_mode & 0o777) == "0o600"


def test_a_user_file_counts_as_validated_only_as_the_cache_saw_it(
    taurus_home: Path, monkeypatch
) -> None:
    """``cache.validated``: the user's file as a cached configuration was made from it,
    by this version of Taurus; not before, not once edited, not if invalid."""
    from taurus_ops.config import cache

    user = write(taurus_home / "config.yaml", "model: m1\n")
    assert not cache.validated(user)
    load_config()
    assert cache.validated(user)
    assert not cache.validated(write(taurus_home / "other.yaml", "model: m1\n"))
    with monkeypatch.context() as patch:
        patch.setattr(cache, "__version__", "0.0.0-other")
        assert not cache.validated(user)  # another Taurus may have validated it otherwise
    write(user, "model: m2\n")  # same size, another mtime
    assert not cache.validated(user)
    write(user, "sessions:\n  maxSessions: -1\n")
    with pytest.raises(ConfigError):
        load_config()
    assert not cache.validated(user)


def test_doctor_checks_a_cached_user_file_without_pydantic_and_an_edited_one_again(
    taurus_home: Path,
) -> None:
    user = write(taurus_home / "config.yaml", "sessions:\n  retentionDays: 30\n")
    taurus_home.chmod(0o700)  # nothing else for the doctor to warn of
    run = [sys.executable, "-X", "importtime", "-m", "taurus_ops.cli.main", "doctor"]
    env = {**os.environ, "TAURUS_HOME": str(taurus_home)}
    subprocess.run(run, capture_output=True, env=env, timeout=120, check=True)  # cached now
    again = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines()}
    assert "taurus_ops.ops.doctor" in loaded  # the import log is read
    assert "pydantic_settings" not in loaded and "taurus_ops.config.settings" not in loaded
    write(user, "sessions:\n  retentionDays: -3\n")  # now invalid: checked and reported
    bad = subprocess.run(run[:1] + run[3:], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0
    assert "config.yaml" in bad.stdout and "retentionDays" in bad.stdout


def test_no_cache_is_written_before_the_home_exists(taurus_home: Path) -> None:
    assert not taurus_home.exists()
    load_config()
    assert not taurus_home.exists()  # reading settings creates nothing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sessionDirectory: ~/.taurus\n", "sessionDirectory: .* is the Taurus home itself"),
        (
            "sessions:\n  archiveDirectory: ~/.taurus/sessions\n",
            "sessions.archiveDirectory: .* is the session directory itself",
        ),
        (
            "sessionDirectory: ~/.taurus/archive\n",
            "sessions.archiveDirectory: .* is the session directory itself",
        ),
    ],
)
def test_folders_that_must_stay_apart(taurus_home: Path, text: str, expected: str) -> None:
    path = write(taurus_home / "config.yaml", text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config()
    assert info.value.source == str(path)


def test_a_nul_in_a_configured_path_is_a_config_error(ops, taurus_home) -> None:
    taurus_home.mkdir(parents=True, exist_ok=True)
    (taurus_home / "config.yaml").write_text('sessionDirectory: "/tmp/a\\u0000b"\n')
    for args in (["list"], ["search", "x"], ["stats"], ["doctor"]):
        result = ops(*args)
        assert result.exit_code != 0
        assert "NUL" in result.output, result.output
