"""Hostile session files must give one-line errors or lenient reads, never tracebacks."""

from __future__ import annotations

import json

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


def test_redact_masks_quoted_values_with_spaces_and_secret_named_fields(store, ops) -> None:
    doc = make_document("sec002", first='Connect with password = "correct horse battery" now')
    doc["messages"][1]["content"][1]["input"] = {
        "command": "mysql",
        "password": "hunter2",
        "env": {"GITLAB_TOKEN": "glpat-zzzzzzzzzzzzzzzzzzzz", "TOKEN_FILE": "None"},
    }
    write_session(store.session_dir, doc)
    for fmt_name in ("markdown", "json", "html"):
        result = ops("export", "sec002", "--redact", "--format", fmt_name)
        assert result.exit_code == 0
        for secret in ("horse", "hunter2", "glpat-zzz"):
            assert secret not in result.output, (fmt_name, secret)
        assert "masked 3 secrets" in result.output
    # names of secrets and placeholders stay readable
    as_json = json.loads(
        ops("export", "sec002", "--redact", "-f", "json").output.split("\nRedaction")[0]
    )
    tool_input = as_json["messages"][1]["content"][1]["input"]
    assert tool_input["command"] == "mysql"
    assert tool_input["password"] == "[REDACTED:password]"
    assert tool_input["env"]["TOKEN_FILE"] == "None"


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


def test_doctor_fix_with_archive_directory_equal_to_sessions_keeps_every_session(
    ops, taurus_home
) -> None:
    folder = taurus_home / "sessions"
    for n in range(2):
        write_session(folder, make_document(f"same0{n}"))
    (taurus_home / "config.yaml").write_text(f"sessions:\n  archiveDirectory: {folder}\n")
    result = ops("doctor", "--fix")
    assert "share the id" not in result.output
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "2025-01-18_same00.json",
        "2025-01-18_same01.json",
    ]
    assert not list(taurus_home.glob("quarantine/*/*.json"))


@pytest.mark.parametrize(
    "age",
    [
        "99999999d",
        "999999999999999999999999d",
        "9999999999999999999h",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_huge_since_age_is_a_one_line_error(ops, store, age) -> None:
    write_session(store.session_dir, make_document("since01"))
    for command in ("search", "stats"):
        args = (
            [command, "login", "--since", age] if command == "search" else [command, "--since", age]
        )
        result = ops(*args)
        assert result.exit_code != 0
        assert "--since" in result.output


def test_session_with_a_time_at_the_calendar_edge_does_not_break_the_others(store, ops) -> None:
    write_session(store.session_dir, make_document("fine01"))
    edge = {
        "sessionId": "edge01",
        "created": "0001-01-01T00:00:00+01:00",
        "updated": "9999-12-31T23:59:59-05:00",
        "messages": [{"role": "user", "content": "edge of time"}],
    }
    (store.session_dir / "2025-01-01_edge01.json").write_text(json.dumps(edge))
    assert fmt.parse_time(edge["created"]) is None and fmt.parse_time(edge["updated"]) is None
    for args in (["list"], ["show", "edge01"], ["search", "edge"], ["stats"], ["export", "edge01"]):
        result = ops(*args)
        assert result.exit_code == 0, (args, result.output)
    assert "fine01" in ops("list").output


def test_an_absurd_token_count_does_not_break_search_and_stats(store, ops) -> None:
    write_session(store.session_dir, make_document("fine02"))
    doc = make_document("huge01")
    doc["usage"] = {"inputTokens": 10**30, "outputTokens": 5}
    doc["messages"][1]["usage"] = {"model": "claude-opus-4", "inputTokens": 2**63}
    write_session(store.session_dir, doc)
    found = ops("search", "login").output
    assert "fine02" in found and "huge01" in found
    result = ops("stats", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totalSessions"] == 2


def test_a_file_time_past_2262_does_not_break_search_and_stats(store, ops) -> None:
    import os

    write_session(store.session_dir, make_document("fine03"))
    odd = write_session(store.session_dir, make_document("future"))
    os.utime(odd, (99999999999, 99999999999))  # the year 5138: ns past 64 bits
    found = ops("search", "login")
    assert found.exit_code == 0, found.output
    assert "fine03" in found.output and "future" in found.output
    result = ops("stats", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totalSessions"] == 2
    assert ops("index", "status").exit_code == 0
    assert ops("search", "login").exit_code == 0  # the second refresh sees no change


def test_a_nul_in_a_configured_path_is_a_config_error(ops, taurus_home) -> None:
    taurus_home.mkdir(parents=True, exist_ok=True)
    (taurus_home / "config.yaml").write_text('sessionDirectory: "/tmp/a\\u0000b"\n')
    for args in (["list"], ["search", "x"], ["stats"], ["doctor"]):
        result = ops(*args)
        assert result.exit_code != 0
        assert "NUL" in result.output, result.output


def test_search_finds_text_after_a_nul_character_as_grep_does(store, ops) -> None:
    doc = {
        "sessionId": "nul001",
        "created": "2025-01-01T00:00:00Z",
        "updated": "2025-01-01T00:00:00Z",
        "messages": [
            {"role": "user", "content": "before\u0000 after zebrafish"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "x\u0000y"},
                    {"type": "text", "text": "Quagga"},
                ],
            },
        ],
    }
    write_session(store.session_dir, doc)
    for term in ("zebrafish", "quagga", "before"):
        assert "nul001" in ops("search", term).output, term
    assert "nul001" in ops("search", "--case-sensitive", "Quagga").output
    assert "nul001" not in ops("search", '"x y"').output  # no space invented


def test_an_index_path_that_is_a_link_never_touches_its_target(store, ops, tmp_path) -> None:
    import os
    import stat

    write_session(store.session_dir, make_document("link01"))
    outside = tmp_path / "outside.txt"
    outside.write_text("not an index\n")
    outside.chmod(0o644)
    index = store.session_dir.parent / "index.sqlite"
    index.symlink_to(outside)
    assert "link01" in ops("search", "login").output
    assert ops("stats").exit_code == 0
    assert outside.read_text() == "not an index\n"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o644
    assert not index.is_symlink() and index.is_file()


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


@pytest.mark.parametrize(
    "text",
    [
        '{{ "%(a)s"|format(b=1) }}',
        "{{ session.title|xmlattr }}",
        "{{ session.title|truncate(-5) }}",
        '{{ "x"|urlize(rel=[1]) }}',
        "{{ 1/0 }}",
    ],
)
def test_export_template_runtime_errors_are_one_line(store, ops, tmp_path, text) -> None:
    write_session(store.session_dir, make_document("tmpl01"))
    template = tmp_path / "report.md.j2"
    template.write_text(text)
    result = ops("export", "tmpl01", "--template", str(template))
    assert result.exit_code != 0
    assert "template error" in result.output


@pytest.mark.parametrize(
    "text",
    [
        # the read tool with a limit: BEGIN and the first lines, no END
        "     1\t-----BEGIN RSA PRIVATE KEY-----\n     2\tMIIEowIBAAKCAQEAsecretline1\n"
        "     3\tSECRETLINE2abcdef+/==\n",
        # a capped output keeps the tail: key lines and END, no BEGIN
        "(cut here)\nSECRETLINE2abcdef+/==\nMIIEowIBAAKCAQEAsecretline1\n"
        "-----END OPENSSH PRIVATE KEY-----\n(after)",
    ],
)
def test_redact_masks_a_private_key_cut_short(text: str) -> None:
    from taurus_ops.ops.redact import Redaction, redact_text

    found = Redaction()
    masked = redact_text(text, found)
    assert "secretline1" not in masked and "SECRETLINE2" not in masked
    assert "[REDACTED:private-key]" in masked and found.counts["private-key"] == 1
    assert redact_text(masked) == masked
    assert "(cut here)" in masked or "     1\t" in masked  # the text around it is kept


def test_escape_sequences_in_a_shared_session_never_reach_the_terminal(store, ops) -> None:
    osc = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    doc = make_document("esc001", first=f"hello {osc} world")
    doc["title"] = "T\x1b]0;PWNED\x07itle"
    doc["messages"][1]["content"][0]["text"] = "line one\nline \x9b2J two"
    doc["toolCalls"].append({"tool": "edit", "file": "src/\x1b[2Jx.ts"})
    write_session(store.session_dir, doc)
    for args in (["list"], ["show", "esc001"], ["search", "hello"], ["search", "line"], ["stats"]):
        out = ops(*args).output
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, (args, out)
    assert "hello \ufffd]52;c;ZXZpbA==\ufffd world" in ops("show", "esc001").output
