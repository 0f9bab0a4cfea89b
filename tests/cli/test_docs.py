"""Every command explains itself: --help with an example, and a place in the README."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers.paths import ROOT

from taurus_ops.cli.group import cli

README = (ROOT / "README.md").read_text()


def _walk(group: click.Group, prefix: list[str]) -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        out.append(([*prefix, name], command))
        if isinstance(command, click.Group):
            out.extend(_walk(command, [*prefix, name]))
    return out


def all_commands() -> list[tuple[str, list[str], click.Command]]:
    found = [("taurus-ops", path, cmd) for path, cmd in _walk(cli, [])]
    try:
        from taurus_ops.cli.chat_main import cli as chat_cli
    except ImportError:
        return found
    if isinstance(chat_cli, click.Group):
        found += [("taurus", path, cmd) for path, cmd in _walk(chat_cli, [])]
    return found


COMMANDS = all_commands()


@pytest.mark.parametrize(
    ("prog", "path", "command"), COMMANDS, ids=[" ".join([p, *c]) for p, c, _ in COMMANDS]
)
def test_help_has_an_example_and_the_readme_documents_it(
    prog: str, path: list[str], command: click.Command
) -> None:
    root = cli
    if prog == "taurus":
        from taurus_ops.cli.chat_main import cli as root
    result = CliRunner().invoke(root, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output, f"{prog} {' '.join(path)} --help has no Examples section"
    invocation = " ".join([prog, *path])
    example_lines = result.output.split("Examples:", 1)[1]
    assert invocation in example_lines, f"the examples of {invocation} do not show it being run"
    assert f"{invocation}" in README, f"README.md does not mention `{invocation}`"


def test_the_readme_opens_with_exactly_two_setup_commands() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(first_block) == 2
    assert first_block[0].startswith("pip install -e .")
    assert first_block[1] == "pip install -e '.[test]' && python -m pytest -n auto"
    ci = (ROOT / ".ci" / "run").read_text()
    assert first_block[1] in ci


def test_ruff_lint_and_format_are_clean() -> None:
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    form = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert form.returncode == 0, form.stdout + form.stderr


def test_mypy_is_clean_on_the_package() -> None:
    """The typed seams hold: mypy (configured in pyproject.toml) finds nothing."""
    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert found.returncode == 0, found.stdout[-4000:] + found.stderr[-2000:]


HEAVY = (
    "anthropic",
    "httpx",
    "rich",
    "jinja2",
    "apscheduler",
    "sqlalchemy",
    "prompt_toolkit",
    "pydantic",
    "starlette",
    "uvicorn",
    "markdown_it",
    "pygments",
    "playwright",
    "boto3",
    "botocore",
    "cryptography",
)
REMOTE_CLIENTS = ("boto3", "botocore", "s3transfer", "cryptography")


@pytest.mark.parametrize("remote", [False, True], ids=["no-remote", "remote"])
@pytest.mark.parametrize(
    "args", [["--help"], ["list"], ["list", "--json"], ["show", "--help"], ["serve", "--help"]]
)
def test_light_commands_do_not_import_heavy_modules(
    args: list[str], remote: bool, taurus_home: Path
) -> None:
    taurus_home.mkdir(mode=0o700)
    if remote:
        (taurus_home / "config.yaml").write_text(
            "remote:\n  url: s3://team-bucket/alice\n  endpointUrl: http://127.0.0.1:9\n"
        )
    warm = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "list"], capture_output=True, timeout=60
    )
    assert warm.returncode == 0  # validates the settings once and caches them
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['taurus-ops', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('taurus_ops.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print('HEAVY:' + ','.join(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY:")][-1]
    assert line == "HEAVY:", f"taurus-ops {' '.join(args)} imported {line[6:]}"


VALIDATION = ("pydantic", "pydantic_core", "pydantic_settings", "yaml")

_IMPORTED = (
    "import sys, runpy\n"
    "sys.argv = ['taurus-ops', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('taurus_ops.cli', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    f"found = sorted({{m.split('.')[0] for m in sys.modules}} & set({VALIDATION!r}))\n"
    "print('VALIDATION:' + ','.join(found), file=sys.stderr)\n"
)


def _validation_imported(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """The validation modules (pydantic, pydantic-settings, yaml) a command imported."""
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return [x for x in proc.stderr.splitlines() if x.startswith("VALIDATION:")][-1][11:]


SETTINGS_SHAPES = {
    "defaults": ("", "", {}),
    "retention rules": (
        "sessions:\n  retentionDays: 30\n  maxSessions: 1\narchive:\n  retentionDays: 5\n",
        "",
        {},
    ),
    "project file and variable": ("", "chat:\n  maxTokens: 1000\n", {"TAURUS_MODEL": "x"}),
}


@pytest.mark.parametrize("shape", list(SETTINGS_SHAPES))
def test_list_with_a_valid_settings_cache_does_not_import_pydantic(
    shape: str, taurus_home: Path, tmp_path: Path
) -> None:
    """Validation (pydantic, pydantic-settings, YAML) is paid once; a later `list` with the
    same settings answers from the cache, retention warning included. Changing a config
    file invalidates the cache and validates again (so the probe sees the import)."""
    from datetime import UTC, datetime

    from helpers.sessions import make_document, write_session

    user_text, project_text, variables = SETTINGS_SHAPES[shape]
    taurus_home.mkdir(mode=0o700)
    for day in (1, 2, 3):
        created = datetime(2025, 1, day, 10, tzinfo=UTC)
        write_session(taurus_home / "sessions", make_document(f"s{day}", created))
    if user_text:
        (taurus_home / "config.yaml").write_text(user_text)
    project = tmp_path / "project"
    project.mkdir()
    if project_text:
        (project / ".taurus").mkdir()
        (project / ".taurus" / "config.yaml").write_text(project_text)
    env = {**os.environ, **variables}
    assert _validation_imported(["list"], project, env)  # the first run validates, then caches
    for args in (["list"], ["list", "--json"], ["list", "--limit", "1"]):
        assert _validation_imported(args, project, env) == "", args
    config = project / ".taurus" / "config.yaml" if project_text else taurus_home / "config.yaml"
    before = config.read_text() if config.exists() else ""
    config.write_text(before + "model: claude-sonnet-4-5\n")
    assert "pydantic" in _validation_imported(["list"], project, env).split(",")


def test_chat_does_not_import_the_remote_client(taurus_home: Path, fake_api) -> None:
    """A chat with a remote configured starts and answers without boto3 (or cryptography)."""
    from helpers.fake_api import text

    taurus_home.mkdir(mode=0o700)
    (taurus_home / "config.yaml").write_text(
        "remote:\n  url: s3://team-bucket/alice\n  endpointUrl: http://127.0.0.1:9\n"
    )
    fake_api.add(text("Hello."))
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['taurus', 'chat', '-p', 'hi']\n"
        "try:\n"
        "    runpy.run_module('taurus_ops.cli.chat_main', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"found = sorted(m for m in sys.modules if m.split('.')[0] in {REMOTE_CLIENTS!r})\n"
        "print('REMOTE:' + ','.join(found), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "Hello." in proc.stdout, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("REMOTE:")][-1]
    assert line == "REMOTE:", f"taurus chat imported {line[7:]}"
