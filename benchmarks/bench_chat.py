"""Chat speed: ``taurus chat -r`` to the prompt on a 20 MB session, and one autosave as a
session grows from 10 to 2,000 messages.

    python -m benchmarks.bench_chat

Compared with the tutorial's shell equivalents: reading the session with jq
(``jq -r '.messages[0].content' FILE``) and rewriting it (``jq . FILE > NEW``).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import report, time_call, time_shell
from taurus_ops.store import Session, SessionStore
from taurus_ops.store import format as fmt

TARGET_MB = 20


def big_document(session_id: str, n_messages: int, result_size: int = 2000) -> dict[str, Any]:
    """A realistic session: text turns, tool_use/tool_result pairs with sizeable outputs."""
    rng = random.Random(n_messages)
    created = datetime(2025, 1, 18, 10, 23, 45, tzinfo=UTC)
    words = [
        "the",
        "login",
        "handler",
        "checks",
        "the",
        "token",
        "before",
        "it",
        "reads",
        "the",
        "user",
        "record",
        "from",
        "the",
        "store",
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Help me debug the login issue"}]
    calls = []
    moment = created
    turn = 0
    while len(messages) < n_messages:
        turn += 1
        moment += timedelta(seconds=30)
        stamp = fmt.format_time(moment)
        tool_id = f"toolu_{turn:08d}"
        body = " ".join(rng.choice(words) for _ in range(result_size // 6))
        usage = {
            "model": "claude-sonnet-4-5",
            "inputTokens": 1000 + turn,
            "outputTokens": 80,
            "cacheReadTokens": 0,
            "cacheCreationTokens": 0,
        }
        messages += [
            {
                "role": "assistant",
                "timestamp": stamp,
                "usage": usage,
                "content": [
                    {"type": "text", "text": f"Let me read src/file{turn % 40}.ts."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "read",
                        "input": {"file": f"src/file{turn % 40}.ts"},
                    },
                ],
            },
            {
                "role": "user",
                "timestamp": stamp,
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": body}],
            },
            {
                "role": "assistant",
                "timestamp": stamp,
                "usage": usage,
                "content": f"I found the issue in src/file{turn % 40}.ts:{turn}. " + body[:300],
            },
            {"role": "user", "timestamp": stamp, "content": f"Thanks, next step {turn}."},
        ]
        calls.append(
            {
                "tool": "read",
                "file": f"src/file{turn % 40}.ts",
                "timestamp": stamp,
                "outcome": "ok",
                "durationMs": 3,
            }
        )
    messages = messages[:n_messages]
    return {
        "sessionId": session_id,
        "created": fmt.format_time(created),
        "updated": fmt.format_time(moment),
        "version": 1,
        "cwd": os.getcwd(),
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "toolCalls": calls,
    }


def time_to_prompt(env: dict[str, str], cwd: str, repeat: int = 5) -> float:
    import pexpect

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        child = pexpect.spawn(
            sys.executable,
            ["-m", "taurus_ops.cli.chat_main", "chat", "-r"],
            env=env,
            cwd=cwd,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 120),
        )
        child.expect("taurus>")
        best = min(best, time.perf_counter() - start)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        child.close()
    return best


def main() -> None:
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = SessionStore(home / "sessions", home / "archive")
        store.ensure()
        # size the session to ~20 MB
        doc = big_document("big00001", 4000, result_size=4000)
        session = Session(doc)
        session.path = store.path_for("big00001", doc["created"])
        store.save(session, touch=False)
        size = session.path.stat().st_size
        scale = TARGET_MB * 1024 * 1024 / size
        doc = big_document("big00001", int(4000 * scale) // 4 * 4, result_size=4000)
        session = Session(doc)
        session.path = store.path_for("big00001", doc["created"])
        store.save(session, touch=False)
        size = session.path.stat().st_size
        env = {
            **os.environ,
            "TAURUS_HOME": str(home),
            "HOME": tmp,
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",
        }
        print(f"session: {len(doc['messages'])} messages, {size / 1e6:.1f} MB")
        ours = time_to_prompt(env, tmp)
        theirs = time_shell(f"jq -r '.messages[0].content' {session.path} > /dev/null")
        rows.append((f"chat -r to prompt ({size / 1e6:.0f} MB)", ours, theirs))
        python = time_shell([sys.executable, "-c", "pass"])
        print(f"(python start-up alone: {python:.3f} s)")

        from benchmarks.corpus import ensure_corpus
        from taurus_ops.store.summary import SessionSummary

        corpus = Path(ensure_corpus(10_000))
        many = SessionStore(corpus, None)
        full_read = max(many.summaries(), key=SessionSummary.sort_key)  # every file parsed
        assert str(many.latest().path) == full_read.path
        ours = time_call(many.latest)
        theirs = time_shell(f"ls -t {corpus}/*.json | head -1")
        rows.append(("-r: latest of 10,000 sessions", ours, theirs))

        for n in (10, 100, 500, 1000, 2000):
            doc = big_document(f"grow{n:04d}", n)
            session = Session(doc)
            session.path = store.path_for(doc["sessionId"], doc["created"])
            store.save(session, touch=False)
            ours = time_call(lambda s=session: store.save(s), repeat=20)
            out = Path(tmp) / "jq-out.json"
            theirs = time_shell(f"jq . {session.path} > {out}", repeat=3)
            kb = session.path.stat().st_size / 1024
            rows.append((f"autosave at {n} messages ({kb:.0f} KB)", ours, theirs))
    report(rows)


if __name__ == "__main__":
    main()
