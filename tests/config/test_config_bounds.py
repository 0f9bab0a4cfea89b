"""A value that passes validation never crashes a command later.

Every numeric key of the schema (found from the schema itself, so a new key is covered
the day it is added) at huge, negative and zero values and at its own bounds: either
``config validate`` refuses it with one line naming the file and the key, or the
commands that read it run without a traceback.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.config.schema import SettingsModel


def _numeric_keys(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list:
    out = []
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop:
            ref = defs[prop["$ref"].split("/")[-1]]
            out += _numeric_keys(ref, defs, f"{prefix}{name}.")
            continue
        options = prop.get("anyOf", [prop])
        ints = [o for o in options if o.get("type") == "integer"]
        if ints:
            out.append((f"{prefix}{name}", ints[0].get("minimum"), ints[0].get("maximum")))
    return out


_SCHEMA = SettingsModel.model_json_schema(by_alias=True)
NUMERIC = _numeric_keys(_SCHEMA, _SCHEMA.get("$defs", {}))
HUGE = [800_000, 10**9, 2**63, 10**30]
ODD = [-1, 0, *HUGE]


def test_the_matrix_covers_every_numeric_key() -> None:
    keys = {key for key, _, _ in NUMERIC}
    assert {"sessions.retentionDays", "archive.retentionDays", "chat.bashTimeout"} <= keys
    assert len(keys) >= 8
    unbounded = [key for key, _, most in NUMERIC if most is None]
    assert not unbounded, f"numbers without an upper bound: {unbounded}"


def _yaml(key: str, value: int) -> str:
    section, _, leaf = key.rpartition(".")
    return f"{section}:\n  {leaf}: {value}\n" if section else f"{key}: {value}\n"


def _sessions(taurus_home: Path) -> None:
    now = datetime.now(UTC)
    for n, days in enumerate((1, 40, 400)):
        doc = make_document(f"s{n}", created=now - timedelta(days=days))
        doc["updated"] = doc["created"]
        write_session(taurus_home / "sessions", doc)
    old = make_document("old1", created=now - timedelta(days=900))
    write_session(taurus_home / "archive", old)


def _cases() -> list:
    cases = []
    for key, least, most in NUMERIC:
        values = sorted({*ODD, least or 1, most, most + 1})
        cases += [pytest.param(key, v, id=f"{key}={v}") for v in values]
    return cases


COMMANDS = [
    ["list"],
    ["list", "--archived", "--json"],
    ["cleanup", "--dry-run"],
    ["doctor"],
    ["stats"],
    ["search", "login"],
    ["config", "show"],
    ["backup", "create", "--help"],
]


@pytest.mark.parametrize(("key", "value"), _cases())
def test_a_number_is_refused_or_works(taurus_home, ops, tmp_path, key, value) -> None:
    least, most = next((lo, hi) for k, lo, hi in NUMERIC if k == key)
    config = tmp_path / "candidate.yaml"
    config.write_text(_yaml(key, value))
    checked = ops("config", "validate", str(config))
    if not (least or 1) <= value <= most:
        assert checked.exit_code == 2, checked.output  # outside the bounds: always refused
    if checked.exit_code != 0:
        assert checked.exit_code == 2, checked.output
        assert checked.output.count("\n") == 1
        assert str(config) in checked.output and key in checked.output
        return
    _sessions(taurus_home)
    (taurus_home / "config.yaml").write_text(_yaml(key, value))
    for command in COMMANDS:
        result = ops(*command)  # catch_exceptions=False: a traceback fails the test
        assert result.exit_code in (0, 1), (command, result.output)
        assert "Traceback" not in result.output

    from taurus_ops.ops.schedule import run_job

    assert run_job("cleanup") == "ok"  # the scheduler's cleanup job reads the same values
    log = (taurus_home / "logs" / "taurus-ops.log").read_text()
    assert "Traceback" not in log and "failed" not in log


def test_env_variables_are_bounded_the_same(taurus_home, ops, monkeypatch) -> None:
    monkeypatch.setenv("TAURUS_SESSIONS__RETENTION_DAYS", "800000")
    result = ops("list")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "TAURUS_SESSIONS__RETENTION_DAYS" in result.output or "retentionDays" in result.output


def test_the_chat_runs_at_the_bounds(fake_api, taurus_home) -> None:
    """The chat with every chat.* number at the largest it may take together (a reply
    must be smaller than the window): one turn with a bash tool run."""
    import subprocess
    import sys

    from helpers.fake_api import text, tool_use

    most = {key.split(".")[1]: hi for key, _, hi in NUMERIC if key.startswith("chat.")}
    most["maxTokens"] = min(most["maxTokens"], most["contextWindow"] // 2)
    taurus_home.mkdir(parents=True, exist_ok=True)
    (taurus_home / "config.yaml").write_text(
        "chat:\n" + "".join(f"  {key}: {value}\n" for key, value in most.items())
    )
    fake_api.add(tool_use("bash", {"command": "echo hi"}), text("Done."))
    done = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli.chat_main", "chat", "-p", "go", "--allow", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert "Done." in done.stdout
