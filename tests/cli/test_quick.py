"""``taurus-ops search -l TERM...`` without click (``cli.quick``): it runs exactly the
plain form, prints what the command proper prints, and leaves everything else to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.quick import quick_run
from helpers.sessions import make_document, write_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.cli.quick import plain_search

ACCEPTED = [
    (["search", "-l", "login"], ["login"]),
    (["search", "login", "-l"], ["login"]),
    (["search", "--files-with-matches", "login", "reset"], ["login", "reset"]),
    (["search", "-l", "password reset", "-l"], ["password reset"]),
    (["search", "-l", "é", "Café"], ["é", "Café"]),
]
DECLINED = [
    [],
    ["search"],
    ["search", "-l"],
    ["search", "login"],  # ranked hits with snippets: the command proper
    ["list", "-l", "login"],
    ["search", "-l", "--json", "login"],
    ["search", "-l", "-s", "login"],
    ["search", "-ll", "login"],
    ["search", "-l", "--", "login"],
    ["search", "-l", "-h"],
    ["search", "-l", "--help"],
    ["search", "-l", "--limit", "2", "login"],
    ["search", "-l", ""],
    ["--session-dir", "/tmp", "search", "-l", "login"],
    ["search", "-l", "-login"],
]


@pytest.mark.parametrize(("args", "terms"), ACCEPTED)
def test_the_plain_form_is_taken(args: list[str], terms: list[str]) -> None:
    assert plain_search(args) == terms


@pytest.mark.parametrize("args", DECLINED)
def test_every_other_form_is_left_to_the_command(args: list[str]) -> None:
    assert plain_search(args) is None
    assert quick_run(*args) == (None, "")


@pytest.fixture
def sessions(store) -> list[Path]:
    texts = ["login works", "the password reset mail", "Login and RESET", "café au lait", "other"]
    paths = []
    for n, text in enumerate(texts):
        doc = make_document(f"q{n:04d}", n_turns=1)
        doc["messages"][0]["content"] = text
        paths.append(write_session(store.session_dir, doc))
    return paths


TOKENS = ["search", "-l", "--files-with-matches", "-s", "--json", "-n", "2", "--", "", "login"]
TOKENS += ["LOGIN", "reset", "password reset", "café", "é", "-", "nothing", '"login', "mail"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(TOKENS), max_size=5))
def test_whatever_it_takes_it_prints_as_the_command_does(sessions, ops, args: list[str]) -> None:
    args = ["search", *args] if args[:1] != ["search"] else args
    status, printed = quick_run(*args)
    if status is None:
        return
    assert plain_search(args) is not None
    result = ops(*args)
    assert (status, printed) == (result.exit_code, result.output)


def test_it_finds_what_the_command_finds(sessions, ops) -> None:
    status, printed = quick_run("search", "-l", "login")
    assert status == 0
    assert printed.split() == sorted(str(p) for p in sessions if "ogin" in p.read_text())
    assert printed == ops("search", "-l", "login").output
    assert quick_run("search", "-l", "walrus") == (1, "")


def _ops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_it_loads_no_click_and_exits_with_greps_status(sessions) -> None:
    none = _ops("-m", "taurus_ops.cli.main", "search", "-l", "walrus")  # the config cached
    assert (none.returncode, none.stdout, none.stderr) == (1, "", "")
    found = _ops("-X", "importtime", "-m", "taurus_ops.cli.main", "search", "-l", "reset")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(sessions[1]), str(sessions[2])]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in found.stderr.splitlines()}
    assert "taurus_ops.store.index" in loaded  # the import log is read
    assert not {"click", "anthropic", "pydantic_settings"} & loaded


def test_an_error_is_reported_by_the_command_proper(sessions, taurus_home: Path) -> None:
    (taurus_home / "config.yaml").write_text("sessions: [oops\n")
    bad = _ops("-m", "taurus_ops.cli.main", "search", "-l", "login")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("Error: ") and "config.yaml" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1


PROPER = (
    "import sys; from taurus_ops.cli.group import cli; cli(sys.argv[1:], prog_name='taurus-ops')"
)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("output", [">&-", "> /dev/full", "| true"])
def test_an_output_that_fails_ends_as_it_does_for_the_command_proper(sessions, output) -> None:
    """Standard output closed, on a full disk, or read by no one: the same status and
    the same one line (or none) from both paths, never a traceback."""
    python = sys.executable
    ran = {}
    for way, command in {
        "quick": f"{python} -m taurus_ops.cli.main search -l login {output}",
        "proper": f'{python} -c "{PROPER}" search -l login {output}',
    }.items():
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120
        )
        assert "Traceback" not in done.stderr, done.stderr
        ran[way] = (done.returncode, done.stderr)
    assert ran["quick"] == ran["proper"]
