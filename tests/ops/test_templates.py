"""Session templates: built-ins, user templates, placeholders and the tutorial's manual route."""

from __future__ import annotations

import inspect
import json
import shutil
import stat
from pathlib import Path

import pytest
from helpers.paths import ROOT
from helpers.sessions import make_document, write_session

from taurus_ops.config import load_config
from taurus_ops.errors import UsageError
from taurus_ops.ops import templates as tpl

TUTORIAL_CONTENT = (
    "Please review the following code for:\n1. Security vulnerabilities\n2. Performance issues\n"
    "3. Code quality\n4. Missing tests\n\nProvide specific fixes with examples."
)


def test_contract_signature() -> None:
    params = list(inspect.signature(tpl.create_from_template).parameters)
    assert params == ["config", "store", "name", "variables", "session_id"]


def test_builtins_are_listed_and_valid(ops) -> None:
    data = json.loads(ops("template", "list", "--json").output)
    names = {t["name"]: t for t in data}
    assert {"code-review", "debugging", "post-mortem", "sprint-planning"} <= set(names)
    assert names["code-review"]["required"] == []
    assert names["debugging"]["required"] == ["problem"]
    for path in tpl.BUILTIN_DIR.glob("*.json"):  # every built-in is a loadable session file
        json.loads(path.read_text())["messages"][0]["role"]


def test_code_review_is_the_tutorials_template(store) -> None:
    session = tpl.create_from_template(load_config(), store, "code-review", {})
    assert session.messages == [{"role": "user", "content": TUTORIAL_CONTENT}]
    assert len(session.id) == 8 and session.path.exists()
    assert stat.S_IMODE(session.path.stat().st_mode) == 0o600


def test_placeholders_filled_defaults_and_today(store) -> None:
    session = tpl.create_from_template(
        load_config(), store, "post-mortem", {"incident": "Login outage"}, session_id="pm0118"
    )
    assert session.id == "pm0118"
    assert session.path.name.endswith("_pm0118.json")
    text = session.messages[0]["content"]
    assert "Login outage" in text and "{{" not in text
    assert session.title.startswith("Post-mortem: Login outage (20")  # default date = today
    assert "template" not in session.data and session.data["fromTemplate"] == "post-mortem"
    reloaded = store.load_ref("pm0118")
    assert reloaded.messages == session.messages


def test_missing_and_unknown_variables_are_clear_errors(store, ops) -> None:
    with pytest.raises(UsageError, match=r"needs --var problem=\.\.\."):
        tpl.create_from_template(load_config(), store, "debugging", {})
    with pytest.raises(UsageError, match="no variable probelm"):
        tpl.create_from_template(load_config(), store, "debugging", {"probelm": "x"})
    result = ops("template", "new", "debugging")
    assert result.exit_code != 0 and "--var problem" in result.output
    assert ops("template", "new", "debugging", "--var", "oops").exit_code != 0
    assert store.files() == []  # nothing half-made
    assert ops("template", "new", "no-such-template").exit_code != 0


def test_duplicate_id_refused(store, ops) -> None:
    assert ops("template", "new", "code-review", "--id", "rev1").exit_code == 0
    again = ops("template", "new", "code-review", "--id", "rev1")
    assert again.exit_code != 0 and "already exists" in again.output


def test_user_template_overrides_and_is_sandboxed(store, ops, taurus_home) -> None:
    folder = taurus_home / "templates"
    folder.mkdir(parents=True)
    (folder / "code-review.json").write_text(
        json.dumps({"sessionId": "new", "messages": [{"role": "user", "content": "Mine: {{ x }}"}]})
    )
    (folder / "evil.json").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
                ]
            }
        )
    )
    listed = {t["name"]: t for t in json.loads(ops("template", "list", "--json").output)}
    assert listed["code-review"]["source"] == "user" and listed["code-review"]["overrides"]
    result = ops("template", "new", "code-review", "--var", "x=42", "--json")
    assert result.exit_code == 0, result.output
    made = store.load_ref(json.loads(result.output)["id"])
    assert made.messages[0]["content"] == "Mine: 42"
    evil = ops("template", "new", "evil")
    assert evil.exit_code != 0 and "Traceback" not in evil.output
    shown = ops("template", "show", "code-review")
    assert "user" in shown.output and "Mine: {{ x }}" in shown.output


def test_manual_route_from_the_tutorial(store, ops, taurus_home) -> None:
    """cp ~/.taurus/templates/code-review.json ~/.taurus/sessions/2025-01-18_review123.json"""
    (taurus_home / "templates").mkdir(parents=True)
    user_copy = taurus_home / "templates" / "code-review.json"
    shutil.copy(tpl.BUILTIN_DIR / "code-review.json", user_copy)
    store.ensure()
    target = store.session_dir / "2025-01-18_review123.json"
    shutil.copy(user_copy, target)
    assert json.loads(target.read_text())["sessionId"] == "new"
    shown = ops("show", "review123", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["sessionId"] == "review123"
    assert data["messages"][0]["content"] == TUTORIAL_CONTENT
    # and the session is found by search and counted by stats like any other
    assert ops("search", "-l", "Security vulnerabilities").output.strip() == str(target)
    assert json.loads(ops("stats", "--json").output)["totalSessions"] == 1


def test_show_lists_variables(ops) -> None:
    out = ops("template", "show", "debugging").output
    assert "problem" in out and "(required)" in out and "default: not known yet" in out


def test_template_name_is_checked(ops) -> None:
    result = ops("template", "show", "../../etc/passwd")
    assert result.exit_code != 0 and "not a valid template name" in result.output


def test_builtin_dir_is_the_shipped_one() -> None:
    assert tpl.BUILTIN_DIR.is_dir()
    assert Path(tpl.BUILTIN_DIR).resolve().parent.name == "templates"


def test_templates_ship_in_the_package() -> None:
    """The wheel carries taurus_ops/templates (a symlink to templates/) via package-data."""
    import tomllib

    import taurus_ops

    root = ROOT
    package_dir = Path(taurus_ops.__file__).parent / "templates"
    assert package_dir.resolve() == (root / "templates").resolve()
    for name in ("export/markdown.md.j2", "export/html.html.j2", "sessions/code-review.json"):
        assert (package_dir / name).is_file()
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert "templates/**/*" in data["tool"]["setuptools"]["package-data"]["taurus_ops"]


@pytest.mark.parametrize(
    "text",
    [
        "{{ 1/0 }}",
        "{{ x + 1 }}",
        '{% include "other.json" %}',
        "{{ x|int + [] }}",
        '{{ "%(a)s"|format(b=1) }}',
        "{{ x|xmlattr }}",
        "{{ x|truncate(-5) }}",
    ],
)
def test_template_runtime_errors_are_one_line(ops, taurus_home, text) -> None:
    folder = taurus_home / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"messages": [{"role": "user", "content": text}], "template": {"defaults": {"x": "5"}}}
    (folder / "broken.json").write_text(json.dumps(doc))
    result = ops("template", "new", "broken")
    assert result.exit_code != 0
    assert "template 'broken'" in result.output
    assert not list(taurus_home.glob("sessions/*.json"))


def test_an_endless_template_file_is_refused_not_read_forever(store) -> None:
    import resource
    import subprocess
    import sys

    write_session(store.session_dir, make_document("zero01"))

    def cap_memory() -> None:  # a reader that never stops fails here instead of eating RAM
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "export", "zero01", "--template", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap_memory,
    )
    assert result.returncode != 0
    assert "larger than" in result.stderr
