"""Session homes for the web viewer's tests: a rich session, a hostile one, a long one."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers.sessions import make_document, write_session
from taurus_ops.store import format as fmt

T0 = datetime(2025, 1, 18, 10, 0, 0, tzinfo=UTC)
PROJECTS = ["/home/dev/webapp", "/home/dev/payments", "/srv/api", "/home/dev/dashboard"]

# Everything a transcript could hold that must never run in the viewer's page.
HOSTILE = [
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned='img'; alert('img')\">",
    "[click me](javascript:window.__pwned='link';alert('link'))",
    "[data](data:text/html,<script>alert('data')</script>)",
    '<a href="javascript:alert(1)">raw link</a>',
    "<svg onload=\"alert('svg')\"></svg>",
    "<iframe src=\"javascript:alert('frame')\"></iframe>",
    "![tracker](http://198.51.100.7/pixel.png)",
    '"><script>alert("attr")</script>',
    '<style>body{display:none}</style><div style="position:fixed">styled</div>',
    "<details open ontoggle=\"alert('toggle')\">x</details>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(\'meta\')">',
]
HOSTILE_TEXT = "\n\n".join(HOSTILE)


def _usage(n: int) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "inputTokens": 1200 + n,
        "outputTokens": 300 + n,
        "cacheReadTokens": 5000,
        "cacheCreationTokens": 100,
    }


def rich_document(session_id: str = "rich0001") -> dict[str, Any]:
    """Markdown, code, every kind of tool call, thinking, an interrupted reply, a dangling call."""
    stamp = [T0]

    def at() -> str:
        stamp[0] += timedelta(seconds=30)
        return fmt.format_time(stamp[0])

    code = "def login(user, password):\n    if not user:\n        return None\n    return check(user, password)\n"
    read_out = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(code.splitlines(), 10))
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "timestamp": at(),
            "content": "Help me debug the **login** issue in `src/auth/login.py`.\n\n"
            "| step | status |\n|:--|--:|\n| read | done |\n| fix | todo |",
        },
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(1),
            "content": [
                {"type": "thinking", "thinking": "The user wants the login bug found. Read first."},
                {
                    "type": "text",
                    "text": "Let me read the file first.\n\n```python\nprint('hi')\n```",
                },
                {
                    "type": "tool_use",
                    "id": "toolu_read",
                    "name": "read",
                    "input": {"file": "src/auth/login.py", "offset": 10, "limit": 4},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_read", "content": read_out}],
        },
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(2),
            "content": [
                {"type": "text", "text": "The check is missing for empty passwords. Fixing it."},
                {
                    "type": "tool_use",
                    "id": "toolu_edit",
                    "name": "edit",
                    "input": {
                        "file": "src/auth/login.py",
                        "old_string": "    if not user:\n        return None",
                        "new_string": "    if not user or not password:\n        return None",
                    },
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_edit",
                    "content": "Edited src/auth/login.py at line 11",
                }
            ],
        },
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(3),
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_bash",
                    "name": "bash",
                    "input": {"command": "pytest -q tests/test_login.py"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_bash",
                    "is_error": True,
                    "content": "F.\nFAILED tests/test_login.py::test_empty - AssertionError\n"
                    "1 failed, 1 passed in 0.02s\n[exit status 1]",
                },
            ],
        },
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(4),
            "interrupted": True,
            "content": "One test still fails; the empty-password test expects a",
        },
        {"role": "user", "timestamp": at(), "content": "Go on, and write a note in NOTES.md."},
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(5),
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_write",
                    "name": "write",
                    "input": {
                        "file": "NOTES.md",
                        "content": "# Notes\n\n- login: empty passwords\n",
                    },
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_write",
                    "content": "Created NOTES.md (3 lines)",
                }
            ],
        },
        {
            "role": "assistant",
            "timestamp": at(),
            "usage": _usage(6),
            "content": [
                {"type": "text", "text": "Searching for other callers."},
                {
                    "type": "tool_use",
                    "id": "toolu_grep",
                    "name": "grep",
                    "input": {"pattern": "login\\(", "path": "src"},
                },
            ],
        },
    ]
    calls = [
        {"tool": "read", "file": "src/auth/login.py", "offset": 10, "limit": 4,
         "timestamp": fmt.format_time(T0), "outcome": "ok", "durationMs": 3, "toolUseId": "toolu_read"},
        {"tool": "edit", "file": "src/auth/login.py", "timestamp": fmt.format_time(T0),
         "outcome": "ok", "durationMs": 5, "toolUseId": "toolu_edit"},
        {"tool": "bash", "command": "pytest -q tests/test_login.py", "timestamp": fmt.format_time(T0),
         "outcome": "error", "durationMs": 1400, "toolUseId": "toolu_bash"},
        {"tool": "write", "file": "NOTES.md", "timestamp": fmt.format_time(T0),
         "outcome": "ok", "durationMs": 2, "toolUseId": "toolu_write"},
    ]  # fmt: skip
    return {
        "sessionId": session_id,
        "created": fmt.format_time(T0),
        "updated": fmt.format_time(stamp[0]),
        "version": 1,
        "cwd": PROJECTS[0],
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "toolCalls": calls,
        "usage": {**_usage(21), "inputTokens": 7300, "outputTokens": 1821},
    }


def hostile_document(session_id: str = "hostile1") -> dict[str, Any]:
    """A transcript full of markup and script in every place a session can hold text."""
    messages = [
        {"role": "user", "content": "Review this: " + HOSTILE_TEXT},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": HOSTILE_TEXT},
                {"type": "text", "text": HOSTILE_TEXT},
                {
                    "type": "tool_use",
                    "id": "toolu_x1",
                    "name": "bash",
                    "input": {"command": "echo '<script>alert(1)</script>'"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_x1", "content": HOSTILE_TEXT}
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_x2",
                    "name": "<img src=x onerror=alert('name')>",
                    "input": {
                        "<script>k</script>": HOSTILE_TEXT,
                        "file": '"><script>alert(2)</script>',
                    },
                },
                {
                    "type": "tool_use",
                    "id": "toolu_x3",
                    "name": "edit",
                    "input": {"file": "x.html", "old_string": HOSTILE[0], "new_string": HOSTILE[1]},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_x4",
                    "name": "read",
                    "input": {"file": "evil.html"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_x2", "content": HOSTILE_TEXT},
                {"type": "tool_result", "tool_use_id": "toolu_x3", "content": HOSTILE[2]},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_x4",
                    "content": "\n".join(f"{n:>6}\t{h}" for n, h in enumerate(HOSTILE, 1)),
                },
            ],
        },
        {"role": "assistant", "content": "Done. " + HOSTILE[0]},
    ]
    return {
        "sessionId": session_id,
        "created": fmt.format_time(T0 + timedelta(days=1)),
        "updated": fmt.format_time(T0 + timedelta(days=1, minutes=5)),
        "cwd": "/home/dev/<script>alert('cwd')</script>",
        "model": "<b>model</b>",
        "title": None,
        "messages": messages,
        "toolCalls": [{"tool": "bash", "command": HOSTILE[0], "timestamp": fmt.now_iso()}],
    }


def long_document(session_id: str, messages: int, result_size: int = 400) -> dict[str, Any]:
    """A long agentic session: read calls with results, text turns, usage on every reply."""
    rng = random.Random(session_id)
    doc: list[dict[str, Any]] = [{"role": "user", "content": "Refactor the payments module."}]
    calls = []
    moment = T0
    turn = 0
    while len(doc) < messages:
        turn += 1
        moment += timedelta(seconds=20)
        tid = f"toolu_{turn:06d}"
        doc.append(
            {
                "role": "assistant",
                "timestamp": fmt.format_time(moment),
                "usage": _usage(turn),
                "content": [
                    {"type": "text", "text": f"Step {turn}: reading file {turn % 30}."},
                    {
                        "type": "tool_use",
                        "id": tid,
                        "name": "read",
                        "input": {"file": f"src/pay/f{turn % 30}.py"},
                    },
                ],
            }
        )
        body = "\n".join(
            f"{n:>6}\tvalue_{rng.randint(0, 999)} = compute({n})"
            for n in range(1, result_size // 30 + 2)
        )
        doc.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tid, "content": body}],
            }
        )
        calls.append({"tool": "read", "file": f"src/pay/f{turn % 30}.py", "toolUseId": tid})
        if turn % 5 == 0:
            doc.append({"role": "assistant", "content": f"Checkpoint {turn}: all good so far."})
            doc.append({"role": "user", "content": f"Continue with part {turn // 5 + 1}."})
    return {
        "sessionId": session_id,
        "created": fmt.format_time(T0 - timedelta(days=2)),
        "updated": fmt.format_time(moment),
        "cwd": PROJECTS[1],
        "model": "claude-sonnet-4-5",
        "messages": doc[:messages],
        "toolCalls": calls,
    }


def populate(store: Any, extra: int = 60) -> dict[str, Path]:
    """A session folder and archive with every kind of session the pages show.

    ``rich0001`` (named ``login-fix``), ``hostile1``, ``long0001`` (300 messages),
    ``parent01`` (archived) continued by ``child001``, a damaged ``broken01``, and
    ``extra`` ordinary sessions over four projects.
    """
    sessions, archive = store.session_dir, store.archive_dir
    paths = {
        "rich": write_session(sessions, rich_document()),
        "hostile": write_session(sessions, hostile_document()),
        "long": write_session(sessions, long_document("long0001", 300)),
    }
    parent = make_document("parent01", created=T0 - timedelta(days=5), n_turns=2)
    parent["cwd"] = PROJECTS[2]
    paths["parent"] = write_session(archive, parent)
    child = make_document(
        "child001",
        created=T0 - timedelta(days=4),
        n_turns=1,
        first="Summary of the earlier session: the API rate limiter.",
    )
    child["parentSession"] = "parent01"
    child["cwd"] = PROJECTS[2]
    paths["child"] = write_session(sessions, child)
    broken = sessions / "2025-01-10_broken01.json"
    broken.write_bytes(b'{"sessionId": "broken01", "messages": [{"role": "user", "cont')
    broken.chmod(0o600)
    paths["broken"] = broken
    rng = random.Random(7)
    for n in range(extra):
        created = T0 - timedelta(days=rng.randint(0, 40), minutes=n)
        doc = make_document(
            f"s{n:07d}",
            created=created,
            n_turns=rng.randint(1, 4),
            rng=rng,
            first=f"Task {n}: {rng.choice(['caching', 'OAuth2', 'CSV export'])}",
        )
        doc["cwd"] = PROJECTS[n % len(PROJECTS)]
        doc["messages"][1]["usage"] = _usage(n)
        write_session(sessions, doc)
    store.name("rich0001", "login-fix")
    return paths
