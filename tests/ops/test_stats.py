"""stats against the tutorial's session-stats.sh, run on the same files; tokens and cost."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.paths import RECIPES
from helpers.sessions import make_document, write_session

from taurus_ops.ops.stats import PRICES, estimate_cost, price_family
from taurus_ops.store import format as fmt

SCRIPT = RECIPES / "session-stats.sh"
needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


def run_script(taurus_home: Path) -> str:
    user_home = Path(os.environ["HOME"])
    link = user_home / ".taurus"
    if not link.exists():
        link.symlink_to(taurus_home)  # the script reads ~/.taurus/sessions
    out = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=True,
    )
    return out.stdout


def make_corpus(session_dir: Path, seed: int, count: int = 25) -> list[Path]:
    rng = random.Random(seed)
    now = time.time()
    paths = []
    for n in range(count):
        created = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 40))
        doc = make_document(
            f"st{seed}x{n:03d}", created=created, n_turns=rng.randint(0, 6), rng=rng
        )
        if n % 7 == 3:
            del doc["toolCalls"]  # jq: "Cannot iterate over null", and goes on
        path = write_session(session_dir, doc)
        age = rng.choice([0.5, 2, 5, 6.5, 8, 20, 90]) * 86400
        os.utime(path, (now - age, now - age))
        paths.append(path)
    return paths


def jq_tool_counts() -> dict[str, int]:
    """The script's tool pipeline without `head`: every tool's count."""
    full = subprocess.run(
        "jq -r '.toolCalls[].tool' ~/.taurus/sessions/*.json 2>/dev/null | sort | uniq -c",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    ).stdout
    return {line.split()[1]: int(line.split()[0]) for line in full.splitlines()}


def section(lines: list[str], title: str) -> list[str]:
    start = lines.index(title) + 1
    out = []
    for line in lines[start:]:
        if not line.strip():
            break
        out.append(line)
    return out


@needs_jq
@pytest.mark.parametrize("seed", [11, 12])
def test_same_figures_as_session_stats_sh(store, ops, taurus_home, seed: int) -> None:
    make_corpus(store.session_dir, seed)
    script = run_script(taurus_home).splitlines()
    result = ops("stats")
    assert result.exit_code == 0, result.output
    ours = result.output.splitlines()
    # the script's whole report is the start of ours, line for line
    assert ours[: len(script)] == script
    for title in ("Most used tools:", "Most modified files:"):
        assert section(script, title)  # the comparison is not vacuous
    # and the full tool counts (beyond the top 5) agree with jq's
    expected = jq_tool_counts()
    data = json.loads(ops("stats", "--json").output)
    assert data["tools"] == expected
    assert data["totalSessions"] == int(script[2].split(": ")[1])


@needs_jq
def test_names_are_counted_once_where_the_script_counts_them_twice(store, ops, taurus_home) -> None:
    paths = make_corpus(store.session_dir, 5, count=10)
    store.name(paths[0].name, "favourite")
    store.name(paths[1].name, "other")
    script = run_script(taurus_home).splitlines()
    data = json.loads(ops("stats", "--json").output)
    assert data["names"] == 2
    assert int(script[2].split(": ")[1]) == data["totalSessions"] + 2
    named = [json.loads(p.read_text()) for p in paths[:2]]
    script_tools = jq_tool_counts()
    doubled = Counter(data["tools"])
    for doc in named:
        doubled.update(call["tool"] for call in doc.get("toolCalls", []))
    assert script_tools == dict(doubled)  # exactly: the script counts named sessions twice
    assert "2 name links not counted" in ops("stats").output


def test_damaged_file_counted_in_total_only(store, ops) -> None:
    make_corpus(store.session_dir, 3, count=6)
    before = json.loads(ops("stats", "--json").output)
    (store.session_dir / "2025-02-01_broken.json").write_text('{"messages": [')
    after = json.loads(ops("stats", "--json").output)
    assert after["totalSessions"] == before["totalSessions"] + 1
    assert after["damaged"] == 1
    assert after["averageMessages"] == before["averageMessages"]
    assert after["tools"] == before["tools"]


def test_tokens_by_model_and_estimated_cost(store, ops) -> None:
    per_message = make_document("tok001", n_turns=0)
    per_message["messages"] += [
        {
            "role": "assistant",
            "content": "a",
            "usage": {
                "model": "claude-sonnet-4-5",
                "inputTokens": 1000,
                "outputTokens": 200,
                "cacheReadTokens": 50,
                "cacheCreationTokens": 10,
            },
        },
        {
            "role": "assistant",
            "content": "b",
            "usage": {
                "model": "claude-opus-4-1",
                "inputTokens": 3000,
                "outputTokens": 100,
                "cacheReadTokens": 0,
                "cacheCreationTokens": 0,
            },
        },
    ]
    # top-level totals must not be added again when per-message usage exists
    per_message["usage"] = {"model": "claude-opus-4-1", "inputTokens": 4000, "outputTokens": 300}
    totals_only = make_document("tok002", n_turns=0)
    totals_only["usage"] = {"model": "claude-sonnet-4-5", "inputTokens": 500, "outputTokens": 50,
                            "cacheReadTokens": 5, "cacheCreationTokens": 1}  # fmt: skip
    unknown = make_document("tok003", n_turns=0)
    unknown["usage"] = {"model": "mystery-model", "inputTokens": 7, "outputTokens": 7}
    for doc in (per_message, totals_only, unknown):
        write_session(store.session_dir, doc)
    data = json.loads(ops("stats", "--json").output)
    sonnet = data["tokens"]["claude-sonnet-4-5"]
    assert (sonnet["inputTokens"], sonnet["outputTokens"]) == (1500, 250)
    assert (sonnet["cacheReadTokens"], sonnet["cacheCreationTokens"]) == (55, 11)
    assert data["tokens"]["claude-opus-4-1"]["inputTokens"] == 3000
    assert data["tokens"]["mystery-model"]["estimatedCostUsd"] is None
    expected = (1500 * 3 + 250 * 15 + 55 * 0.3 + 11 * 3.75) / 1e6
    assert sonnet["estimatedCostUsd"] == pytest.approx(expected, abs=1e-4)
    assert "estimate" in data["costNote"]
    text = ops("stats").output
    assert "price unknown" in text and "≈ $" in text


def test_price_families() -> None:
    assert price_family("claude-sonnet-4-5-20250929") == "sonnet"
    assert price_family("claude-opus-4-5") == "opus-4-5"
    assert price_family("claude-3-opus-20240229") == "opus"
    assert price_family("claude-3-5-haiku-latest") == "3-5-haiku"
    assert price_family("claude-haiku-4-5") == "haiku-4-5"
    assert price_family("gpt-4o") is None
    million = {"inputTokens": 1_000_000, "outputTokens": 0, "cacheReadTokens": 0,
               "cacheCreationTokens": 0}  # fmt: skip
    assert estimate_cost("claude-opus-4", million) == PRICES["opus"][0]


def test_since_and_sessions_per_day(store, ops) -> None:
    old = make_document("old001", created=datetime(2024, 5, 1, 12, tzinfo=UTC), n_turns=1)
    new = make_document("new001", created=datetime(2025, 2, 1, 12, tzinfo=UTC), n_turns=1)
    new2 = make_document("new002", created=datetime(2025, 2, 1, 13, tzinfo=UTC), n_turns=1)
    for doc in (old, new, new2):
        write_session(store.session_dir, doc)
    data = json.loads(ops("stats", "--json", "--since", "2025-01-01").output)
    assert data["totalSessions"] == 2
    day = datetime(2025, 2, 1, 12, tzinfo=UTC).astimezone().strftime("%Y-%m-%d")
    assert data["sessionsPerDay"] == {day: 2} or sum(data["sessionsPerDay"].values()) == 2
    everything = json.loads(ops("stats", "--json").output)
    assert everything["totalSessions"] == 3


def test_no_sessions_is_not_an_error(ops) -> None:
    result = ops("stats")
    assert result.exit_code == 0
    assert "Total sessions: 0" in result.output and "n/a" in result.output


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
