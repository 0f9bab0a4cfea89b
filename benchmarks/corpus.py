"""Generate a corpus of realistic sessions for benchmarks.

    python -m benchmarks.corpus DIR --count 10000 [--seed 0] [--days 90]

Sessions vary in length (a few turns to a few hundred messages, about 15 KB on
average, as the tutorial's `ls -lh` shows), hold text, tool_use/tool_result
pairs and flat toolCalls, and span the last ``--days`` days. Each file's mtime is
set to its ``updated`` time, so `find -mtime` agrees with the sessions' own dates.
Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt

TOOLS = ["read"] * 30 + ["edit"] * 18 + ["grep"] * 14 + ["bash"] * 9 + ["write"] * 7 + ["glob"] * 4
FILES = [
    "src/api/users.ts", "src/auth/login.ts", "src/utils/validation.ts", "src/db/pool.py",
    "src/components/UserWidget.tsx", "tests/test_auth.py", "README.md", "migrations/0042_reset.sql",
    "src/payments/stripe.ts", "src/dashboard/index.tsx", "config/settings.yaml", "Makefile",
]  # fmt: skip
TOPICS = [
    "authentication", "password reset", "dashboard performance", "payment integration",
    "N+1 queries", "React hooks", "database connection pool", "email notifications",
    "OAuth2", "caching", "rate limiting", "CSV export", "flaky tests", "docker build",
]  # fmt: skip
WORDS = [
    "the",
    "a",
    "function",
    "returns",
    "value",
    "we",
    "should",
    "check",
    "handler",
    "request",
    "response",
    "error",
    "cache",
    "query",
    "user",
    "token",
    "session",
    "config",
    "test",
    "file",
    "module",
    "import",
    "call",
    "loop",
    "index",
    "update",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 18)) for _ in range(sentences))


def make_session(rng: random.Random, session_id: str, created: datetime) -> dict[str, Any]:
    topic = rng.choice(TOPICS)
    turns = max(1, int(rng.lognormvariate(1.6, 0.8)))
    moment = created
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"Help me with {topic}. {_paragraph(rng, 2)}"}
    ]
    calls: list[dict[str, Any]] = []
    for turn in range(turns):
        for step in range(rng.randint(0, 3)):
            tool = rng.choice(TOOLS)
            target = rng.choice(FILES)
            tool_id = f"toolu_{session_id}_{turn}_{step}"
            if tool == "bash":
                args: dict[str, Any] = {
                    "command": rng.choice(["pytest -q", "npm test", "make lint", "git status"])
                }
            elif tool in ("grep", "glob"):
                args = {"pattern": rng.choice(["login", "def .*token", "*.ts", "TODO"])}
            else:
                args = {"file": target}
            moment += timedelta(seconds=rng.randint(2, 120))
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": _sentence(rng, 10)},
                        {"type": "tool_use", "id": tool_id, "name": tool, "input": args},
                    ],
                }
            )
            output = "\n".join(_sentence(rng, 12) for _ in range(rng.randint(3, 25)))
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": output}],
                }
            )
            calls.append({"tool": tool, **args, "timestamp": fmt.format_time(moment)})
        moment += timedelta(seconds=rng.randint(10, 600))
        messages.append({"role": "assistant", "content": _paragraph(rng, rng.randint(2, 8))})
        if turn < turns - 1:
            messages.append({"role": "user", "content": _paragraph(rng, rng.randint(1, 3))})
    return {
        "sessionId": session_id,
        "created": fmt.format_time(created),
        "updated": fmt.format_time(moment),
        "version": fmt.FORMAT_VERSION,
        "cwd": f"/home/dev/{topic.replace(' ', '-')}",
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "toolCalls": calls,
        "usage": {
            "inputTokens": rng.randint(1000, 200000),
            "outputTokens": rng.randint(100, 20000),
            "cacheReadTokens": rng.randint(0, 50000),
            "cacheCreationTokens": rng.randint(0, 5000),
            "model": "claude-sonnet-4-5",
        },
    }


def generate(
    folder: Path, count: int, seed: int = 0, days: int = 90, now: datetime | None = None
) -> list[Path]:
    """Write ``count`` sessions into ``folder``; returns their paths."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = []
    taken: set[str] = set()
    for _ in range(count):
        session_id = "".join(rng.choice(fmt.ID_ALPHABET) for _ in range(fmt.ID_LENGTH))
        while session_id in taken:
            session_id = "".join(rng.choice(fmt.ID_ALPHABET) for _ in range(fmt.ID_LENGTH))
        taken.add(session_id)
        created = now - timedelta(seconds=rng.randint(3600, days * 86400))
        doc = make_session(rng, session_id, created)
        path = folder / fmt.file_name(created, session_id)
        path.write_bytes(fmt.dumps(doc))
        os.chmod(path, 0o600)
        stamp = fmt.parse_time(doc["updated"]).timestamp()  # type: ignore[union-attr]
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths


def ensure_corpus(count: int = 10_000, seed: int = 0) -> Path:
    """A cached corpus under benchmarks/.corpus/ (regenerated if the count differs)."""
    folder = Path(__file__).parent / ".corpus" / f"sessions-{count}-{seed}"
    if folder.is_dir() and sum(1 for p in folder.iterdir() if p.suffix == ".json") == count:
        return folder
    if folder.exists():
        for p in folder.iterdir():
            p.unlink()
    generate(folder, count, seed)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    paths = generate(args.folder, args.count, args.seed, args.days)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} sessions, {size / 1e6:.1f} MB, to {args.folder}")


if __name__ == "__main__":
    main()
