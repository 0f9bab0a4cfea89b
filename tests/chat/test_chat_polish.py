"""The chat's finish: /expand, /cost in dollars, /resume, diffs before questions, and a
status line only where there is a terminal to draw it on."""

from __future__ import annotations

import io
import json
from pathlib import Path

from helpers.chat import make_app
from helpers.fake_api import text, tool_use
from helpers.sessions import make_document, write_session

from taurus_ops.chat.client import Reply
from taurus_ops.chat.commands import Commands
from taurus_ops.chat.tools import ToolResult
from taurus_ops.chat.ui import TerminalUI, diff_lines


def test_expand_pages_the_whole_output_of_a_tool_run(fake_api, store):
    fake_api.add(tool_use("bash", {"command": "seq 1 200"}), text("Counted."))
    app, ui = make_app(store, ["yes"])
    app.start_new()
    app.message("count")
    commands = Commands(app)
    commands("/expand")
    (page,) = ui.paged
    assert page.startswith("── tool run 1: bash seq 1 200 (ok) ──")
    assert page.splitlines()[1:] == [str(n) for n in range(1, 201)]
    commands("/expand 1")
    assert ui.paged[-1] == page
    commands("/expand 3")
    assert "this session has 1 tool run: give 1 to 1" in ui.said
    app.close()


def test_cost_says_dollars_from_the_stats_price_table(fake_api, store):
    from taurus_ops.ops.stats import estimate_cost

    fake_api.add(text("Hi.", usage={"input_tokens": 200_000, "output_tokens": 10_000}))
    app, _ = make_app(store, model="claude-sonnet-4-5")
    app.start_new()
    app.message("hello")
    lines = app.cost_lines()
    dollars = estimate_cost("claude-sonnet-4-5", {"inputTokens": 200_000, "outputTokens": 10_000})
    assert dollars == 0.75
    assert lines[0].endswith("≈ $0.75") and lines[1].endswith("≈ $0.75")
    assert "not a bill" in lines[2]
    app.close()


def test_resume_by_reference_switches_sessions(fake_api, store):
    write_session(store.session_dir, make_document("other1"))
    app, ui = make_app(store)
    first = app.start_new()
    commands = Commands(app)
    commands("/resume other1")
    assert app.session.id == "other1" and "Resuming session from" in ui.said
    commands("/resume other1")
    assert "already in session other1" in ui.said
    app.close()
    assert Path(first.path).exists()


def test_diffs_are_trimmed_and_large_files_are_summarised():
    before = "".join(f"line {n}\n" for n in range(200))
    after = before.replace("line 3\n", "line three\n").replace("line 150\n", "")
    lines = diff_lines(before, after, "a.txt", limit=6)
    assert lines[:2] == ["--- a/a.txt", "+++ b/a.txt"]
    assert len(lines) == 7 and lines[-1].startswith("… ") and "(+1 -1)" in lines[-1]
    assert diff_lines(None, "new\n", "b.txt")[:2] == ["--- /dev/null", "+++ b/b.txt"]
    huge = "x\n" * 2_500_000
    assert "no diff shown" in diff_lines(huge, huge + "y\n", "big.txt")[0]


def test_the_status_line_is_never_drawn_off_a_terminal():
    from rich.console import Console

    out = io.StringIO()
    ui = TerminalUI(Console(file=out, force_terminal=False, width=100))
    ui.reply_start()
    ui.tokens({"input_tokens": 12_345})
    ui.text("Hello **there**.\n\n")
    ui.reply_end(Reply(content=[{"type": "text", "text": "Hello **there**."}]))
    ui.tool_start("bash", {"command": "ls"})
    ui.tool_end("bash", ToolResult("a\nb"), "ok")
    shown = out.getvalue()
    assert "Thinking" not in shown and "Running" not in shown and "\x1b" not in shown
    assert "Hello there." in shown and "(+1 line; Ctrl+O or /expand shows them)" in shown


def test_the_status_line_counts_seconds_and_tokens():
    from rich.console import Console

    ui = TerminalUI(Console(file=io.StringIO(), force_terminal=True, width=100))
    ui.status.label, ui.status.started, ui.status.tokens = "Thinking", 0.0, 12_345
    drawn = str(ui.status.__rich__())
    assert "Thinking…" in drawn and "s ·" in drawn and "12.3k tokens" in drawn


def test_a_write_asked_about_is_shown_as_the_change_it_makes(fake_api, store):
    Path("a.txt").write_text("old\n")
    fake_api.add(tool_use("write", {"file": "a.txt", "content": "new\n"}), text("ok"))
    app, ui = make_app(store, ["no"])
    app.start_new()
    app.message("replace it")
    app.close()
    (change,) = ui.changes
    assert (change.before, change.after, change.shown) == (b"old\n", b"new\n", "a.txt")
    assert Path("a.txt").read_text() == "old\n"  # refused: not written, no checkpoint kept
    calls = json.loads(Path(app.session.path).read_text())["toolCalls"]
    assert calls[0]["outcome"] == "refused" and "checkpoint" not in calls[0]


def test_terminal_notices_show_brackets_as_typed():
    import io

    from rich.console import Console

    from taurus_ops.chat.ui import TerminalUI

    out = io.StringIO()
    ui = TerminalUI(Console(file=out, width=200, color_system=None))
    # a session folder like ~/work/[draft]/sessions, an API message quoting "[/docs]"
    ui.notice("Session saved: ~/work/[draft]/s.json")
    ui.notice("rate limited (429: see [/docs]); retrying in 1.0 s")
    assert "~/work/[draft]/s.json" in out.getvalue()
    assert "see [/docs]" in out.getvalue()
