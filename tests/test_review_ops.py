"""Hostile session files must give one-line errors or lenient reads, never tracebacks."""

from __future__ import annotations

import pytest

from taurus_ops.store import format as fmt
from tests.helpers.sessions import make_document, write_session


def _put(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_deeply_nested_file_is_invalid_json_not_a_crash(store, ops):
    write_session(store.session_dir, make_document("good01"))
    _put(
        store.session_dir, "2025-01-02_deep01.json", '{"messages":' + "[" * 5000 + "]" * 5000 + "}"
    )
    with pytest.raises(ValueError):
        fmt.loads((store.session_dir / "2025-01-02_deep01.json").read_bytes())
    for args in (["list"], ["search", "login"], ["stats"]):
        result = ops(*args)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
    shown = ops("show", "deep01")
    assert shown.exit_code != 0
    assert "not valid JSON" in shown.output


def test_lone_surrogate_escape_reads_as_replacement_character(store, ops, tmp_path):
    text = (
        '{"sessionId":"surr01","created":"2025-01-11T00:00:00Z",'
        '"updated":"2025-01-11T00:00:00Z","messages":[{"role":"user","content":"a\\ud800b"}]}'
    )
    _put(store.session_dir, "2025-01-11_surr01.json", text)
    assert fmt.loads(text)["messages"][0]["content"] == "a\ufffdb"
    for args in (
        ["show", "surr01"],
        ["export", "surr01"],
        ["export", "surr01", "-f", "json"],
        ["doctor"],  # exit 1: the file written here is 0644, a warning
        ["search", "a"],
    ):
        result = ops(*args)
        assert result.exit_code == (1 if args == ["doctor"] else 0), (args, result.output)
        assert "Traceback" not in result.output
