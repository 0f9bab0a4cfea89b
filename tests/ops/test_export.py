"""Export: golden Markdown and HTML, fences, the sandbox, redaction, --all."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import GOLDEN, RECIPES
from helpers.sessions import make_document, write_session
from hypothesis import given, settings
from hypothesis import strategies as st

from taurus_ops import __version__
from taurus_ops.ops.export import build_context, code, fence, render, segments
from taurus_ops.ops.redact import redact, redact_text
from taurus_ops.store.session import Session

EXPORTED = "2025-01-19T08:00:00.000Z"
RECIPE = RECIPES / "export-session.sh"


def golden_document() -> dict[str, Any]:
    return {
        "sessionId": "gold01",
        "created": "2025-01-18T10:23:45.123Z",
        "updated": "2025-01-18T11:45:12.456Z",
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "user", "content": "Help me debug the login issue <script>alert(1)</script>"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Start with the login handler."},
                    {"type": "text", "text": "Let me read it:\n```ts\nlogin(user)\n```"},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "read",
                        "input": {"file": "src/auth/login.ts"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "/** docs with ``` fences and ```` more */\nexport function login() {}",
                    }
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Now the tests."},
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "bash",
                        "input": {"command": "npm test"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": "1 failing",
                        "is_error": True,
                    }
                ],
            },
            {"role": "assistant", "content": "I found the issue in src/auth/login.ts:45."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_3", "name": "edit", "input": {"file": "x"}}
                ],
                "interrupted": True,
            },
        ],
        "toolCalls": [
            {"tool": "read", "file": "src/auth/login.ts", "timestamp": "2025-01-18T10:24:15.789Z"},
            {"tool": "bash", "command": "npm test", "timestamp": "2025-01-18T10:25:00.000Z"},
            {"tool": "edit", "file": "x", "timestamp": "2025-01-18T10:26:00.000Z"},
        ],
    }


def _rendered(fmt_name: str) -> str:
    session = Session(golden_document(), path=Path("/s/2025-01-18_gold01.json"))
    text = render(session, fmt_name, names=["login-bug"], exported=EXPORTED).text
    return text.replace(__version__, "VERSION")


@pytest.mark.parametrize("fmt_name,suffix", [("markdown", "md"), ("html", "html")])
def test_golden(fmt_name: str, suffix: str) -> None:
    golden = GOLDEN / f"export.{suffix}"
    text = _rendered(fmt_name)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_markdown_keeps_the_recipes_layout_and_fences_hold() -> None:
    text = _rendered("markdown")
    lines = text.splitlines()
    assert lines[0] == "# Taurus Session Export"
    order = [
        next(i for i, line in enumerate(lines) if marker in line)
        for marker in ("**Created:**", "**Messages:** 7", "**Tools Used:** 3", "## Conversation")
    ]
    assert order == sorted(order)
    headings = [line for line in lines if line.startswith("### ")]
    # one heading per message, plus the result mend adds for the dangling tool_use
    assert headings[:3] == ["### USER", "### ASSISTANT", "### TOOL RESULT"]
    assert len(headings) == 8
    assert "Interrupted: this tool did not finish" in text
    # the result holding ``` and ```` sits in a 5-backtick fence that nothing closes early
    assert "`````\n/** docs with ``` fences and ```` more */" in text


def test_fence_and_code_filters() -> None:
    assert fence("plain") == "```\nplain\n```"
    assert fence("a ```` b", "py").startswith("`````py\n")
    assert code("x`y") == "``x`y``"
    assert code("`x") == "`` `x ``"
    parts = segments("intro\n```py\nprint(1)\n```\noutro")
    assert [p["kind"] for p in parts] == ["text", "code", "text"]
    assert parts[1]["lang"] == "py" and parts[1]["body"] == "print(1)"


def test_html_is_self_contained_escaped_and_printable() -> None:
    html = _rendered("html")
    assert "<script>" not in html  # the user's text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing external
    assert "<link" not in html and "@media print" in html
    assert html.count("<article") == 8


def test_cli_export_to_file_and_stdout(store, ops, tmp_path) -> None:
    write_session(store.session_dir, make_document("abc123"))
    out = tmp_path / "out.html"
    result = ops("export", "abc123", "--format", "html", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = ops("export", "abc123", "--format", "html", "-o", str(out))
    assert again.exit_code != 0 and "--force" in again.output
    md = ops("export", "abc123")
    assert md.output.startswith("# Taurus Session Export")
    doc = json.loads(ops("export", "abc123", "--format", "json").output)
    assert doc["sessionId"] == "abc123"
    inside = ops("export", "abc123", "-o", str(store.session_dir / "x.md"))
    assert inside.exit_code != 0 and "refusing" in inside.output


def test_export_all(store, ops, tmp_path) -> None:
    for sid in ("aaa001", "bbb002"):
        write_session(store.session_dir, make_document(sid))
    (store.session_dir / "2025-01-18_broken.json").write_text("{nope")
    target = tmp_path / "exports"
    result = ops("export", "--all", "-o", str(target), "--format", "html")
    assert result.exit_code == 1  # one file could not be exported, and says so
    assert "broken" in result.output
    assert sorted(p.name for p in target.iterdir()) == [
        "2025-01-18_aaa001.html",
        "2025-01-18_bbb002.html",
    ]
    assert ops("export", "--all").exit_code != 0  # needs -o


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_same_sections_as_export_session_sh(store, tmp_path) -> None:
    path = write_session(store.session_dir, make_document("cmp001", n_turns=2))
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    subprocess.run(["bash", str(RECIPE), str(copy)], check=True, capture_output=True)
    theirs = copy.with_suffix(".md").read_text().splitlines()
    ours = render(Session(json.loads(path.read_text()), path=path)).text.splitlines()
    assert ours[0] == theirs[0]
    for label in ("**Created:**", "**Messages:**", "**Tools Used:**"):
        (their_line,) = [line for line in theirs if line.startswith(label)]
        (our_line,) = [line for line in ours if label in line]
        assert our_line.startswith("- " + their_line)
    their_heads = [line for line in theirs if line.startswith("### ")]
    our_heads = [line.replace("TOOL RESULT", "USER") for line in ours if line.startswith("### ")]
    assert our_heads == their_heads


# -- the sandbox ---------------------------------------------------------------------------
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ session.__class__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ '{0.__class__}'.format(session) }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../../../etc/passwd' %}",
    "{% import '/etc/hostname' as h %}",
    "{% extends '/etc/passwd' %}",
    "{{ turns.append(1) }}",
    "{{ session.update({'id': 'x'}) }}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ config }}",
    "{{ get_flashed_messages.__globals__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_user_template_cannot_escape(store, ops, tmp_path, source: str) -> None:
    write_session(store.session_dir, make_document("abc123"))
    template = tmp_path / "evil.md.j2"
    template.write_text(source)
    result = ops("export", "abc123", "--template", str(template))
    assert result.exit_code != 0, result.output
    assert "template error" in result.output
    assert "Traceback" not in result.output
    assert "root:" not in result.output


def test_user_template_renders_the_data(store, ops, tmp_path) -> None:
    write_session(store.session_dir, make_document("abc123"))
    template = tmp_path / "summary.txt.j2"
    template.write_text(
        "{{ session.id }} {{ session.messages }}\n"
        "{% for t in turns %}{{ t.heading }};{% endfor %}\n"
        "{% include 'markdown.md.j2' %}"
    )
    result = ops("export", "abc123", "--template", str(template))
    assert result.exit_code == 0, result.output
    first, heads = result.output.splitlines()[:2]
    assert first == "abc123 13"
    assert heads.startswith("USER;ASSISTANT;TOOL RESULT;")
    assert "# Taurus Session Export" in result.output  # built-ins may be included


def test_syntax_error_names_the_line(store, ops, tmp_path) -> None:
    write_session(store.session_dir, make_document("abc123"))
    template = tmp_path / "bad.md.j2"
    template.write_text("ok\n{% for x in %}\n")
    result = ops("export", "abc123", "--template", str(template))
    assert result.exit_code != 0 and "line 2" in result.output


# -- redaction -------------------------------------------------------------------------------
SECRETS = [
    ("anthropic-key", "key sk-ant-api03-" + "A1b2" * 20 + "xyz"),
    ("openai-key", "OPENAI_API_KEY=sk-proj-" + "Zz9_" * 12),
    ("openai-key", "use sk-" + "a" * 48),
    ("aws-access-key", "id AKIAIOSFODNN7EXAMPLE here"),
    ("aws-secret-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github-token", "token ghp_" + "x" * 36),
    ("github-token", "github_pat_11ABCDEFG0" + "y" * 60),
    ("slack-token", "xoxb-1234567890-0987654321-AbCdEfGhIjKl"),
    ("slack-webhook", "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("bearer-token", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"),
    (
        "private-key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----",
    ),
    ("private-key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
    ("password", "password=hunter2"),
    ("password", 'DB_PASSWORD: "s3cr3t!"'),
    ("password", "client_secret = 'abc123def'"),
]


FRAGMENTS = [
    "A1b2A1b2",
    "Zz9_Zz9_",
    "aaaaaaaa",
    "IOSFODNN7",
    "bPxRfiCY",
    "xxxxxxxx",
    "yyyyyyyy",
    "AbCdEfGh",
    "XXXXXXXX",
    "eyJzdWIi",
    "MIIE",
    "hunter2",
    "s3cr3t",
    "abc123def",
]


@pytest.mark.parametrize("kind,text", SECRETS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SECRETS)])
def test_each_kind_of_secret_is_masked(kind: str, text: str) -> None:
    from taurus_ops.ops.redact import Redaction

    found = Redaction()
    masked = redact_text(text, found)
    assert f"[REDACTED:{kind}]" in masked
    assert found.counts[kind] >= 1
    for fragment in FRAGMENTS:
        assert fragment not in masked


def test_ordinary_text_is_left_alone() -> None:
    from taurus_ops.ops.redact import Redaction

    found = Redaction()
    text = (
        "The password reset flow: ask-ant-colony, AKIA is a prefix, bearer of news, sk-short,"
        " password=None, token = get_token(), PASSWORD=${DB_PASSWORD}, secret: ****"
    )
    assert redact_text(text, found) == text
    assert found.total == 0


def test_redaction_walks_the_whole_document_and_reports(store, ops, tmp_path) -> None:
    doc = make_document("sec001", first="my key is sk-ant-api03-" + "Q" * 40)
    doc["messages"][1]["content"][1]["input"] = {
        "command": "curl -H 'Authorization: Bearer abcdefghijklmnop'"
    }
    doc["title"] = "password=hunter2"
    write_session(store.session_dir, doc)
    result = ops("export", "sec001", "--redact", "-o", str(tmp_path / "out.md"))
    assert result.exit_code == 0
    assert "masked 3 secrets" in result.output
    text = (tmp_path / "out.md").read_text()
    assert "sk-ant" not in text and "abcdefghijklmnop" not in text and "hunter2" not in text
    as_json = ops("export", "sec001", "--redact", "--format", "json")
    assert "QQQQQQQQ" not in as_json.output
    assert json.loads(as_json.output.split("\nRedaction")[0])["sessionId"] == "sec001"
    # the session file itself is untouched
    assert "sk-ant-api03" in store.resolve("sec001").path.read_text()


def test_redact_keeps_keys_and_structure() -> None:
    value = {"password": "password=x1", "list": ["ghp_" + "k" * 36, 3, None]}
    out = redact(value)
    assert set(out) == {"password", "list"}
    assert out["list"][1:] == [3, None]
    assert out["list"][0] == "[REDACTED:github-token]"


def test_context_is_plain_data() -> None:
    context = build_context(golden_document())
    json.dumps(context)  # nothing but JSON-able values reaches a template


_PIECES = [*"ab `~\n-=:_/", "```", "sk-ant-", "ghp_", "password=", "Bearer ", "x" * 20]
_TEXTS = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@settings(max_examples=100, deadline=None)
@given(_TEXTS)
def test_fence_is_longer_than_any_backtick_run(text: str) -> None:
    block = fence(text)
    marks = block.split("\n", 1)[0]
    assert block.endswith("\n" + marks)
    assert max((len(r) for r in re.findall("`+", text)), default=0) < len(marks)


@settings(max_examples=100, deadline=None)
@given(_TEXTS)
def test_redaction_is_idempotent(text: str) -> None:
    from taurus_ops.ops.redact import Redaction

    once = redact_text(text)
    again = Redaction()
    assert redact_text(once, again) == once
    assert again.total == 0


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
