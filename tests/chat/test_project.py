"""A session records its project; resumed on another machine it finds the same checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.chat import Scripted
from helpers.fake_api import text

from taurus_ops.store.project import canonical, locate, project_of, without_credentials

CHAT = [sys.executable, "-m", "taurus_ops.cli.chat_main", "chat"]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def checkout(folder: Path, url: str) -> Path:
    folder.mkdir(parents=True)
    git("init", "-q", cwd=folder)
    git("remote", "add", "origin", url, cwd=folder)
    (folder / "services" / "api").mkdir(parents=True)
    return folder


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("git@github.com:acme/shop.git", "https://github.com/acme/shop"),
        ("ssh://git@GitHub.com/acme/shop.git", "https://github.com/acme/shop.git/"),
        ("https://tok@github.com/acme/shop.git", "git@github.com:acme/shop"),
    ],
)
def test_one_project_has_one_canonical_remote(a: str, b: str) -> None:
    assert canonical(a) == canonical(b) == "github.com/acme/shop"
    assert canonical("git@github.com:acme/other.git") != canonical(a)


def test_credentials_in_a_remote_url_are_never_recorded() -> None:
    assert (
        without_credentials("https://me:ghp_secret@github.com/a/b.git")
        == "https://github.com/a/b.git"
    )
    assert without_credentials("https://x-token@gitlab.com/a/b") == "https://gitlab.com/a/b"
    assert without_credentials("ssh://git@host:2222/a/b") == "ssh://git@host:2222/a/b"
    assert without_credentials("git@github.com:a/b.git") == "git@github.com:a/b.git"


@needs_git
def test_project_of_a_checkout_and_of_a_worktree(tmp_path: Path) -> None:
    repo = checkout(tmp_path / "shop", "https://me:tok3n@github.com/acme/shop.git")
    found = project_of(repo / "services" / "api")
    assert found == {
        "cwd": str(repo / "services" / "api"),
        "gitRemote": "https://github.com/acme/shop.git",
        "gitFolder": "services/api",
    }
    (repo / "f").write_text("x")
    git("add", "f", cwd=repo)
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=repo)
    assert project_of(tmp_path / "wt")["gitRemote"] == "https://github.com/acme/shop.git"
    assert project_of(tmp_path) == {"cwd": str(tmp_path)}


@needs_git
def test_locate_finds_the_checkout_by_its_remote(tmp_path: Path) -> None:
    home = tmp_path / "home"
    other = checkout(home / "code" / "other", "git@github.com:acme/other.git")
    shop = checkout(home / "code" / "shop-clone", "git@github.com:acme/shop.git")
    project = {"cwd": "/elsewhere/shop/services/api", "gitRemote": "https://github.com/acme/shop",
               "gitFolder": "services/api"}  # fmt: skip
    assert locate(project, other, [home]) == shop / "services" / "api"
    assert locate(project, shop, []) == shop / "services" / "api"
    assert locate({**project, "gitRemote": "https://github.com/acme/none"}, other, [home]) is None
    assert locate({**project, "gitFolder": "../../etc"}, shop, []) == shop


@needs_git
def test_a_chat_resumed_on_another_machine_works_in_the_same_project(
    tmp_path: Path, fake_api, store
) -> None:
    from taurus_ops.chat.app import ChatApp
    from taurus_ops.config import load_config

    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    repo_a = checkout(machine_a / "work" / "shop", "git@github.com:acme/shop.git")
    repo_b = checkout(machine_b / "src" / "shop-b", "https://github.com/acme/shop.git")
    app = ChatApp(load_config(), store, Scripted(), False, cwd=repo_a / "services" / "api")
    session = app.start_new()
    app.close()
    assert session.data["project"] == {
        "cwd": str(repo_a / "services" / "api"),
        "gitRemote": "git@github.com:acme/shop.git",
        "gitFolder": "services/api",
    }
    assert session.path is not None
    (machine_b / ".taurus" / "sessions").mkdir(parents=True)
    shutil.copy(session.path, machine_b / ".taurus" / "sessions" / session.path.name)
    shutil.rmtree(machine_a)  # the first machine's path is nowhere on this one
    fake_api.add(text("Resumed."))
    from click.testing import CliRunner

    from taurus_ops.cli.chat_main import cli as chat_cli

    os.chdir(machine_b)
    done = CliRunner().invoke(
        chat_cli,
        ["chat", "--session", session.id, "-p", "where are we?"],
        env={"HOME": str(machine_b), "TAURUS_HOME": str(machine_b / ".taurus")},
    )
    assert done.exit_code == 0, done.output
    assert "found this session's project" in done.stderr
    system = fake_api.requests[-1]["system"][0]["text"]
    assert f"The working directory is {repo_b / 'services' / 'api'}" in system


@needs_git
def test_a_project_found_nowhere_leaves_the_chat_where_it_started(tmp_path: Path, store) -> None:
    from taurus_ops.chat.app import ChatApp
    from taurus_ops.config import load_config

    store.create(
        "faraway2",
        cwd="/nowhere/shop",
        project={"cwd": "/nowhere/shop", "gitRemote": "git@github.com:acme/gone.git"},
    )
    ui = Scripted()
    app = ChatApp(load_config(), store, ui, interactive=False, cwd=tmp_path)
    app.open_ref("faraway2")
    try:
        assert ui.asked == []  # -p: nobody to ask
        assert app.cwd == Path(os.path.realpath(tmp_path))
        assert any("is not in" in line and "tools work in" in line for line in ui.out)
    finally:
        app.close()


@needs_git
def test_a_project_not_found_is_asked_for_in_a_terminal(tmp_path: Path, store) -> None:
    from taurus_ops.chat.app import ChatApp
    from taurus_ops.config import load_config

    mine = checkout(tmp_path / "mine" / "shop", "git@github.com:acme/shop.git")
    store.create(
        "faraway1",
        cwd="/nowhere/shop",
        project={
            "cwd": "/nowhere/shop",
            "gitRemote": "git@github.com:acme/shop.git",
            "gitFolder": "services/api",
        },
    )
    ui = Scripted([str(mine / "services" / "api")])
    app = ChatApp(load_config(), store, ui, interactive=True, cwd=tmp_path)
    app.open_ref("faraway1")
    try:
        assert ui.asked and "git@github.com:acme/shop.git" in ui.asked[0]
        assert app.cwd == mine / "services" / "api"
        assert app.tools.cwd == app.cwd
    finally:
        app.close()
