"""Shared fixtures. Every test runs with TAURUS_HOME and HOME in a temporary folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers importable as `helpers`


@pytest.fixture(autouse=True)
def taurus_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Taurus home (and user home) for each test; nothing touches real data."""
    home = tmp_path / "taurus-home"
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    monkeypatch.setenv("TAURUS_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user_home / ".config"))
    for name in list(os.environ):
        if name.startswith("TAURUS_") and name != "TAURUS_HOME":
            monkeypatch.delenv(name)
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):  # no real AWS settings; never the instance metadata service
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default layout: the Taurus home is ~/.taurus inside the user's home (returned)."""
    user = tmp_path / "user-home"
    monkeypatch.setenv("TAURUS_HOME", str(user / ".taurus"))
    return user


@pytest.fixture
def store(taurus_home: Path):
    from taurus_ops.config import load_config
    from taurus_ops.store import SessionStore

    return SessionStore.from_config(load_config())


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def ops(cli_runner):
    """Run ``taurus-ops ARGS`` in-process; returns the click Result."""
    from taurus_ops.cli.group import cli

    def run(*args: str, input: str | None = None):
        return cli_runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch):
    """A fake Anthropic Messages API on 127.0.0.1 (tests/helpers/fake_api.py).

    ANTHROPIC_BASE_URL points at it and ANTHROPIC_API_KEY holds a dummy key.
    """
    from helpers.fake_api import FakeAPI

    api = FakeAPI().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-dummy")
    yield api
    api.close()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (tests/helpers/s3_server.py), one per test process."""
    from helpers.s3_server import S3Server

    server = S3Server()
    yield server
    server.close()
