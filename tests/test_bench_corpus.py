"""The benchmark corpus: deterministic, sessions Taurus and the API accept, fair recipes.

The benchmarks' figures are only worth something if the generated sessions are what
a chat writes (the doctor finds nothing wrong, the Messages API would accept each
history), if the same seed gives the same corpus on any number of processes, and if
the one-pass ``session-stats-find.sh`` a benchmark compares with prints the same
figures as the tutorial's ``session-stats.sh``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from helpers.doctoring import assert_api_accepts

from benchmarks.corpus import ABSENT_WORD, generate, parse_count, session_id

RECIPES = Path(__file__).parent.parent / "benchmarks" / "recipes"
ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "sessions"
    generate(folder, 60, seed=4, days=20, now=ANCHOR, jobs=1)
    return folder


def test_same_corpus_on_any_number_of_processes_and_sizes(corpus: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    generate(two, 60, seed=4, days=20, now=ANCHOR, jobs=2)
    assert contents(two) == contents(corpus)
    smaller = tmp_path / "smaller"
    generate(smaller, 25, seed=4, days=20, now=ANCHOR, jobs=1)
    mine = contents(smaller)
    assert len(mine) == 25 and mine.items() <= contents(corpus).items()
    other = tmp_path / "other"
    generate(other, 25, seed=5, days=20, now=ANCHOR, jobs=1)
    assert not set(contents(other)) & set(mine)


def test_ids_are_distinct() -> None:
    ids = [session_id(i, 0) for i in range(200_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]{8}", i) for i in ids[:1000])


def test_sessions_are_what_a_chat_writes(corpus: Path, tmp_path: Path) -> None:
    files = sorted(corpus.iterdir())
    assert len(files) == 60
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
        raw = path.read_bytes()
        assert ABSENT_WORD not in raw.decode().lower()
        doc = orjson.loads(raw)
        assert path.name == f"{doc['created'][:10]}_{doc['sessionId']}.json"
        updated = datetime.fromisoformat(doc["updated"].replace("Z", "+00:00"))
        assert abs(path.stat().st_mtime - updated.timestamp()) < 0.01
        assert updated < ANCHOR
        assert doc["messages"][0]["role"] == "user"
        assert_api_accepts(doc["messages"])
        uses = [b["id"] for m in doc["messages"] if isinstance(m["content"], list)
                for b in m["content"] if b["type"] == "tool_use"]  # fmt: skip
        assert [c["toolUseId"] for c in doc["toolCalls"]] == uses
    env = {**os.environ, "TAURUS_HOME": str(tmp_path / "home")}
    run = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli.main", "--session-dir", str(corpus), "doctor",
         "--json"], env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(run.stdout)
    assert (run.returncode, report["checked"], report["problems"]) == (0, 60, [])


def _figures(text: str) -> list[list[str]]:
    """Each line of the stats output as its words (the tutorial's uniq -c pads counts)."""
    return [line.split() for line in text.splitlines() if line.strip()]


def test_one_pass_stats_recipe_agrees_with_the_tutorials(corpus: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".taurus").mkdir(parents=True)
    (home / ".taurus" / "sessions").symlink_to(corpus)
    env = {**os.environ, "HOME": str(home)}

    def run(*command: str) -> list[list[str]]:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return _figures(done.stdout)

    tutorial = run("bash", str(RECIPES / "session-stats.sh"))
    one_pass = run("bash", str(RECIPES / "session-stats-find.sh"))
    assert len(tutorial) == len(one_pass) and ["Total", "sessions:", "60"] in one_pass
    for theirs, ours in zip(tutorial, one_pass, strict=True):
        # equal counts may come in another order: compare the counts, and names of unique ones
        assert theirs[0] == ours[0], (theirs, ours)
    counts = [line[0] for line in one_pass]
    for theirs, ours in zip(tutorial, one_pass, strict=True):
        if counts.count(ours[0]) == 1:
            assert theirs == ours


@pytest.mark.parametrize(("text", "count"), [("1k", 1000), ("100k", 100_000), ("2500", 2500)])
def test_sizes(text: str, count: int) -> None:
    assert parse_count(text) == count
