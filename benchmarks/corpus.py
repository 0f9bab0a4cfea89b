"""Generate corpora of realistic sessions for the benchmarks.

    python -m benchmarks.corpus DIR --count 10k [--seed 0] [--days 90] [--jobs 2]
    python -m benchmarks.corpus --cached 1k,10k,100k     # fill benchmarks/.corpus/
    python -m benchmarks.corpus --big 100                # one 100 MB session, cached

A session is what ``taurus chat`` writes: timestamped messages, assistant turns
holding text and ``tool_use`` blocks with their per-response ``usage``, user turns
holding the ``tool_result`` blocks, flat ``toolCalls`` (target, outcome, duration,
tool-use id) and the running token totals. Tool results carry most of the bytes,
as in real transcripts: numbered source lines from ``read``, ``old_string`` /
``new_string`` of edits, whole files written, grep hits, test and git output.
Text is drawn from a Zipf-distributed vocabulary of about 5,000 words (English,
programming terms, identifiers, project words), so that word frequencies, index
sizes and compression ratios look like real ones rather than like a 26-word loop.

Sizes: most sessions are a few turns to a few hundred messages (lognormal, about
19 KB on average); one in every 2,000 is a large one of 1 to 16 MB. 1k, 10k and
100k sessions make about 20 MB, 200 MB and 2 GB. The sessions span the last
``--days`` days before today (UTC midnight), and each file's mtime is its
``updated`` time, so ``find -mtime`` agrees with the sessions' own dates.

Deterministic: session ``i`` depends only on (seed, i, days, the day it is made),
so the 1k corpus is the first thousand sessions of the 10k one, and both cores
write disjoint halves of the same corpus. ``ensure_corpus`` caches each size in
``benchmarks/.corpus/`` and makes it again when it is a week old (retention
figures depend on the sessions' ages).
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import json
import math
import multiprocessing
import os
import random
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt

CORPUS_VERSION = 3
SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000}
CACHE = Path(__file__).parent / ".corpus"
MAX_AGE_DAYS = 7
BIG_EVERY, BIG_AT = 2_000, 7  # session i is a large one when i % BIG_EVERY == BIG_AT
BIG_MB = (1.0, 12.0)  # its size, log-uniform
JSON_OVERHEAD = 1.22  # file bytes per byte the writer counts (indentation, keys)
ABSENT_WORD = "walrus"  # occurs in no session: a search that must read everything


def _split(text: str) -> list[str]:
    return text.split()


TOPICS = [
    "authentication", "password reset", "dashboard performance", "payment integration",
    "N+1 queries", "React hooks", "database connection pool", "email notifications",
    "OAuth2", "caching", "rate limiting", "CSV export", "flaky tests", "docker build",
    "websocket reconnect", "search ranking", "image upload", "feature flags",
    "timezone bugs", "memory leak", "CI pipeline", "GraphQL schema", "i18n strings",
    "billing webhooks", "session expiry", "file permissions", "dark mode", "pagination",
]  # fmt: skip
OPENERS = [
    "Help me with {topic}.", "Can you look at the {topic} code?", "Fix {topic}:",
    "I need to refactor {topic}.", "Why is {topic} broken after the last deploy?",
    "Add tests for {topic}.", "Review my change to {topic}.", "Explain how {topic} works here.",
]  # fmt: skip
MODELS = ["claude-sonnet-4-5"] * 7 + ["claude-opus-4-1"] * 2 + ["claude-haiku-4-5"]
TOOLS = ["read"] * 30 + ["edit"] * 18 + ["grep"] * 14 + ["bash"] * 11 + ["write"] * 5 + ["glob"] * 4
COMMANDS = [
    "pytest -q", "pytest tests/test_auth.py -x", "npm test", "npm run build", "make lint",
    "git status", "git diff --stat", "git log --oneline -5", "cargo test", "go test ./...",
    "ruff check .", "docker compose up -d db", "ls -la src", "tsc --noEmit",
]  # fmt: skip
ENGLISH = _split(
    """the of and to a in is it that we for this on with as be not are you at or
have from by but can if will an so what all one when which do there use need
should would could then also just like now here how new more some only first way
make sure check see look try add fix change keep let still before after because
into out up down over again error value file line code test call run work case
time data type name list return set get read write find show start end other
same each most both next last good right wrong problem issue change works fails
instead without through between while since already every thing part point place
"""
)
TERMS = _split(
    """function method class module package import export return value variable
parameter argument handler request response server client query cache token session
user config setting option default index table column row schema migration model
view component state props hook render route endpoint middleware controller service
repository interface struct enum constant string integer boolean array object map
dict tuple promise async await callback event listener queue worker thread process
lock mutex timeout retry backoff exception traceback stack frame buffer stream
socket connection pool transaction commit rollback branch merge rebase build deploy
container image volume network proxy header cookie payload json yaml regex pattern
parser lexer compiler runtime memory pointer reference closure decorator iterator
generator fixture mock assertion coverage benchmark profile latency throughput"""
)
PROJECT = _split(
    """acme billing ledger invoice customer order cart checkout catalog product
inventory shipment warehouse tenant account profile avatar upload thumbnail report
export audit notification mailer digest webhook subscription plan coupon refund
dashboard widget chart metric alert incident oncall scheduler cron job task"""
)
SYLLABLES = _split(
    """ka lo ter min vex dra pol sun rik mar ten bel cor dum fal gim hox jun
lep nor pra qui sto tul vor wen yal zer bri cla dro fen gra hul jor kel"""
)
FILE_DIRS = ["src/api", "src/auth", "src/db", "src/utils", "src/components", "src/payments",
             "src/jobs", "src/models", "lib", "tests", "scripts", "config", "web/pages"]  # fmt: skip
FILE_EXTS = [".py"] * 5 + [".ts"] * 4 + [".tsx"] * 2 + [".go", ".sql", ".yaml", ".md", ".rs"]


# -- the language: a vocabulary, a prose stream and a pool of source lines, made once ------------
@dataclass(frozen=True)
class Language:
    prose: list[str]  # a long stream of words, sentences marked (capital, full stop)
    code: list[str]  # source lines, indented
    files: list[str]  # project file paths
    idents: list[str]


def _ident(rng: random.Random, parts: list[str]) -> str:
    a, b = rng.choice(parts), rng.choice(parts)
    style = rng.random()
    if style < 0.5:
        return f"{rng.choice(['get', 'set', 'is', 'load', 'parse', 'build', 'to', 'on'])}_{a}_{b}"
    if style < 0.8:
        return f"{a}{b.capitalize()}"
    return f"{a.capitalize()}{b.capitalize()}"


def _zipf(rng: random.Random, words: list[str], k: int, s: float = 1.05) -> list[str]:
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(len(words))))
    return rng.choices(words, cum_weights=cumulative, k=k)


@functools.cache
def language() -> Language:
    """The shared vocabulary and text pools (fixed seed: every corpus speaks the same language)."""
    rng = random.Random("taurus-corpus-language")
    parts = TERMS + PROJECT
    idents = sorted({_ident(rng, parts) for _ in range(2500)})
    rng.shuffle(idents)
    made = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(1800)}
    pseudo = sorted(w for w in made if ABSENT_WORD not in w)
    rng.shuffle(pseudo)
    files = sorted(
        {f"{rng.choice(FILE_DIRS)}/{rng.choice(parts)}_{rng.choice(parts)}{rng.choice(FILE_EXTS)}"
         for _ in range(400)}
    )  # fmt: skip
    tail = TERMS + PROJECT + idents[:1200] + pseudo + files[:200]
    rng.shuffle(tail)
    vocabulary = ENGLISH + tail
    assert not any(ABSENT_WORD in w for w in vocabulary)
    words = _zipf(rng, vocabulary, 1_200_000)
    at = 0
    while at < len(words):
        end = min(at + rng.randint(5, 20), len(words)) - 1
        words[at] = words[at].capitalize()
        words[end] += rng.choice([".", ".", ".", ".", "?", ":"])
        if rng.random() < 0.15 and end - at > 6:
            words[at + 3] += ","
        at = end + 1
    return Language(words, _code_pool(rng, idents), files, idents)


def _code_pool(rng: random.Random, idents: list[str]) -> list[str]:
    """Lines of plausible source code, in functions and blocks, with comments."""
    common = idents[:300]

    def name() -> str:
        return rng.choice(common) if rng.random() < 0.7 else rng.choice(idents)

    templates = [
        lambda: f"def {name()}({name()}, {name()}=None):",
        lambda: f"return {name()}.{name()}({name()})",
        lambda: f"{name()} = {name()}.get({rng.choice(TERMS)!r}, {rng.randint(0, 500)})",
        lambda: f"if {name()} is None or not {name()}.{rng.choice(TERMS)}:",
        lambda: f"raise ValueError(f\"{rng.choice(TERMS)} {{{name()}}} is not valid\")",
        lambda: f"for {rng.choice(TERMS)} in {name()}({name()}):",
        lambda: f"# {rng.choice(ENGLISH)} {rng.choice(TERMS)} {rng.choice(ENGLISH)} {name()}",
        lambda: f"from {rng.choice(PROJECT)}.{rng.choice(TERMS)} import {name()}",
        lambda: f"const {name()} = await {name()}({name()}, {{ {rng.choice(TERMS)}: true }});",
        lambda: f"export function {name()}({name()}: {rng.choice(['string', 'number', 'User'])}) {{",
        lambda: f"logger.{rng.choice(['info', 'debug', 'warning'])}(\"{rng.choice(TERMS)} %s\", {name()})",
        lambda: f"assert {name()}({name()}) == {rng.randint(0, 99)}",
        lambda: f"self.{name()} = {name()}",
        lambda: "}",
        lambda: "",
        lambda: f"SELECT {rng.choice(TERMS)}, {rng.choice(TERMS)} FROM {rng.choice(PROJECT)} WHERE id = ${rng.randint(1, 9)};",
    ]  # fmt: skip
    weights = [6, 8, 10, 5, 2, 4, 5, 3, 5, 2, 3, 3, 5, 4, 6, 1]
    lines: list[str] = []
    depth = 0
    for template in rng.choices(templates, weights=weights, k=250_000):
        line = template()
        lines.append("    " * depth + line if line else "")
        if line.endswith((":", "{")):
            depth = min(depth + 1, 4)
        elif depth and (line == "}" or line.startswith("return") or rng.random() < 0.12):
            depth -= 1
    return lines


# -- one session ----------------------------------------------------------------------------------
class _Writer:
    """Builds one session's messages, keeping count of their bytes as it goes."""

    def __init__(self, rng: random.Random, session_id: str, start: float) -> None:
        self.rng = rng
        self.lang = language()
        self.sid = session_id
        self.moment = start
        self.size = 0
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.stamps: list[tuple[dict[str, Any], float]] = []
        self.model = rng.choice(MODELS)
        self.totals = dict.fromkeys(
            ("inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens"), 0
        )

    def words(self, n: int) -> str:
        prose = self.lang.prose
        at = self.rng.randrange(len(prose) - n)
        return " ".join(prose[at : at + n])

    def lines(self, n: int) -> list[str]:
        code = self.lang.code
        n = min(n, len(code) - 1)
        at = self.rng.randrange(len(code) - n)
        return code[at : at + n]

    def tick(self, low: int, high: int) -> float:
        self.moment += self.rng.uniform(low, high)
        return self.moment

    def add(self, message: dict[str, Any], size: int) -> None:
        self.messages.append(message)
        self.stamps.append((message, self.moment))
        self.size += size + 60

    def user(self, text: str) -> None:
        self.tick(5, 400)
        self.add({"role": "user", "content": text}, len(text))

    def usage(self) -> dict[str, Any]:
        rng = self.rng
        entry: dict[str, Any] = {
            "model": self.model,
            "inputTokens": rng.randint(3, 4000),
            "outputTokens": rng.randint(20, 2500),
            "cacheReadTokens": rng.randint(0, 120_000),
            "cacheCreationTokens": rng.randint(0, 8000),
        }
        for key in self.totals:
            self.totals[key] += entry[key]
        return entry

    def assistant_text(self) -> None:
        rng = self.rng
        text = self.words(rng.randint(10, 90))
        if rng.random() < 0.3:
            block = "\n".join(self.lines(rng.randint(3, 15)))
            text += f"\n\n```\n{block}\n```\n\n" + self.words(rng.randint(5, 40))
        self.tick(3, 90)
        self.add({"role": "assistant", "content": text, "usage": self.usage()}, len(text) + 150)

    def tool_step(self, turn: int, step: int) -> None:
        rng, lang = self.rng, self.lang
        tool = rng.choice(TOOLS)
        use_id = f"toolu_{self.sid}{turn:04d}{step}{rng.getrandbits(40):010x}"
        target = rng.choice(lang.files)
        args: dict[str, Any]
        outcome = "ok"
        if tool == "read":
            args = {"file": target}
            count = min(int(rng.lognormvariate(2.6, 1.0)) + 3, 2000)
            first = 1
            if count > 200 and rng.random() < 0.5:
                first = rng.randint(1, 400)
                args |= {"offset": first, "limit": count}
            result = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(self.lines(count), first))
        elif tool == "edit":
            old = "\n".join(self.lines(rng.randint(1, 8)))
            new = "\n".join(self.lines(rng.randint(1, 10)))
            args = {"file": target, "old_string": old, "new_string": new}
            result = f"Edited {target}: replaced 1 occurrence ({len(new.splitlines())} lines)."
        elif tool == "write":
            content = "\n".join(self.lines(rng.randint(5, 60))) + "\n"
            args = {"file": target, "content": content}
            result = f"Wrote {len(content.encode())} bytes to {target}."
        elif tool == "grep":
            args = {"pattern": rng.choice(lang.idents[:400])}
            hits = [
                f"{rng.choice(lang.files)}:{rng.randint(1, 900)}: {line.strip()}"
                for line in self.lines(rng.randint(0, 15))
            ]
            result = "\n".join(hits) or "No matches."
        elif tool == "glob":
            args = {"pattern": rng.choice(["**/*.py", "src/**/*.ts", "tests/*", "*.md"])}
            result = "\n".join(rng.sample(lang.files, rng.randint(1, 25)))
        else:
            args = {"command": rng.choice(COMMANDS)}
            out = [self.words(rng.randint(4, 14)) for _ in range(rng.randint(1, 16))]
            if rng.random() < 0.25:
                out += [f"    {line}" for line in self.lines(rng.randint(3, 12))]
                out.append(f"[exit status {rng.choice([1, 1, 2, 127])}]")
                outcome = "error"
            out.append(f"{rng.randint(1, 400)} passed in {rng.uniform(0.1, 90):.2f}s")
            result = "\n".join(out)
        say = self.words(rng.randint(4, 30))
        self.tick(2, 60)
        input_size = sum(len(str(v)) for v in args.values())
        self.add(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": say},
                    {"type": "tool_use", "id": use_id, "name": tool, "input": args},
                ],
                "usage": self.usage(),
            },
            len(say) + input_size + 250,
        )
        started = self.moment
        self.tick(0, 20)
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": use_id, "content": result}
        if outcome == "error":
            block["is_error"] = True
        self.add({"role": "user", "content": [block]}, len(result) + 100)
        fields = {k: v for k, v in args.items() if k not in ("content", "old_string", "new_string")}
        if tool == "write":
            fields["bytes"] = len(args["content"].encode())
        self.calls.append(
            {
                "tool": tool,
                **fields,
                "timestamp": self.moment,
                "outcome": outcome,
                "durationMs": int((self.moment - started) * 1000),
                "toolUseId": use_id,
            }
        )
        self.size += 150


def make_session(
    rng: random.Random,
    session_id: str,
    created: datetime,
    target_bytes: int | None = None,
    latest: datetime | None = None,
) -> dict[str, Any]:
    """One session document: about ``target_bytes`` long if given, else a lognormal length.

    A session that would end after ``latest`` is moved back to end at a random time
    in the three days before it.
    """
    topic = rng.choice(TOPICS)
    w = _Writer(rng, session_id, created.timestamp())
    opener = rng.choice(OPENERS).format(topic=topic)
    w.add({"role": "user", "content": f"{opener} {w.words(rng.randint(8, 60))}"}, 200)
    turns = max(1, int(rng.lognormvariate(1.0, 0.85))) if target_bytes is None else 10**9
    for turn in range(turns):
        for step in range(rng.choices([0, 1, 2, 3, 4, 6], weights=[20, 30, 22, 14, 9, 5])[0]):
            w.tool_step(turn, step)
        w.assistant_text()
        if target_bytes is not None and w.size * JSON_OVERHEAD >= target_bytes:
            break
        if turn < turns - 1:
            w.user(w.words(rng.randint(5, 70)))
    shift = 0.0
    if latest is not None and w.moment > latest.timestamp():
        # end at a random time in the last three days, not all at ``latest``
        shift = latest.timestamp() - w.moment - rng.uniform(0, 3 * 86400)
    for message, moment in w.stamps:
        message["timestamp"] = _iso(moment + shift)
    for call in w.calls:
        call["timestamp"] = _iso(call["timestamp"] + shift)
    return {
        "sessionId": session_id,
        "created": _iso(created.timestamp() + shift),
        "updated": _iso(w.moment + shift),
        "version": fmt.FORMAT_VERSION,
        "cwd": f"/home/dev/{topic.replace(' ', '-').lower()}",
        "model": w.model,
        "messages": w.messages,
        "toolCalls": w.calls,
        "usage": {"model": w.model, **w.totals},
    }


def _iso(stamp: float) -> str:
    return fmt.format_time(datetime.fromtimestamp(stamp, UTC))


# -- a corpus -------------------------------------------------------------------------------------
ID_SPACE = len(fmt.ID_ALPHABET) ** fmt.ID_LENGTH
ID_STEP = 2_654_435_761  # prime, so i -> id is one-to-one over the whole id space


def session_id(i: int, seed: int) -> str:
    """The id of session ``i``: distinct for distinct ``i``, random-looking."""
    n = (i * ID_STEP + seed * 7_919 + 12_345) % ID_SPACE
    chars = []
    for _ in range(fmt.ID_LENGTH):
        n, digit = divmod(n, len(fmt.ID_ALPHABET))
        chars.append(fmt.ID_ALPHABET[digit])
    return "".join(chars)


def today() -> datetime:
    """UTC midnight today: the corpus's "now"."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Plan:
    folder: Path
    seed: int
    days: int
    anchor: datetime


def write_session(plan: Plan, i: int) -> int:
    """Write session ``i`` of ``plan``; returns its size in bytes."""
    rng = random.Random(f"taurus-corpus:{plan.seed}:{i}")
    sid = session_id(i, plan.seed)
    latest = plan.anchor - timedelta(minutes=5)
    created = plan.anchor - timedelta(seconds=rng.uniform(3 * 3600, plan.days * 86400))
    target = None
    if i % BIG_EVERY == BIG_AT:
        low, high = BIG_MB
        target = int(1e6 * math.exp(rng.uniform(math.log(low), math.log(high))))
    doc = make_session(rng, sid, created, target, latest)
    raw = fmt.dumps(doc)
    path = plan.folder / fmt.file_name(fmt.parse_time(doc["created"]), sid)  # type: ignore[arg-type]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(raw)
    stamp = fmt.parse_time(doc["updated"]).timestamp()  # type: ignore[union-attr]
    os.utime(path, (stamp, stamp))
    return len(raw)


def _write_range(job: tuple[Plan, int, int]) -> tuple[int, int]:
    plan, start, stop = job
    return stop - start, sum(write_session(plan, i) for i in range(start, stop))


def generate(
    folder: Path,
    count: int,
    seed: int = 0,
    days: int = 90,
    now: datetime | None = None,
    jobs: int | None = None,
) -> int:
    """Write ``count`` sessions into ``folder`` on ``jobs`` processes; returns their bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    plan = Plan(folder, seed, days, now or today())
    language()  # built once here, inherited by the workers
    chunk = 200
    work = [(plan, start, min(start + chunk, count)) for start in range(0, count, chunk)]
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or count <= chunk:
        return sum(_write_range(job)[1] for job in work)
    gc.freeze()  # the workers share the pools' pages instead of copying them on a collection
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs) as pool:
        return sum(size for _, size in pool.imap_unordered(_write_range, work))


def parse_count(text: str) -> int:
    """``"10k"`` -> 10000, ``"1m"`` -> 1000000, ``"2500"`` -> 2500."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (say 1k, 10k, 100k)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return value


def size_label(count: int) -> str:
    """``10000`` -> ``"10k"``."""
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def _marker_path(folder: Path) -> Path:
    """Where a cached corpus's description is kept: beside its folder, not among the sessions."""
    return folder.with_name(folder.name + ".json")


def corpus_record(folder: Path) -> dict[str, Any] | None:
    """What a cached corpus was made from, its bytes and how long it took; None if unknown."""
    try:
        found = json.loads(_marker_path(folder).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def ensure_corpus(count: int = 10_000, seed: int = 0, days: int = 90, quiet: bool = False) -> Path:
    """The cached corpus of ``count`` sessions under benchmarks/.corpus/ (made if missing or old)."""
    folder = CACHE / f"sessions-{size_label(count)}-{seed}-v{CORPUS_VERSION}"
    found = corpus_record(folder)
    if found and found.get("days") == days and folder.is_dir():
        age = today() - datetime.fromisoformat(found["anchor"])
        if age < timedelta(days=MAX_AGE_DAYS):
            return folder
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    if not quiet:
        print(f"generating {count:,} sessions in {folder} ...", flush=True)
    started = time.perf_counter()
    anchor = today()
    size = generate(scratch, count, seed, days, anchor)
    seconds = time.perf_counter() - started
    record = {"version": CORPUS_VERSION, "count": count, "seed": seed, "days": days,
              "anchor": anchor.isoformat(), "bytes": size, "seconds": round(seconds, 1)}  # fmt: skip
    _marker_path(folder).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    _marker_path(folder).write_text(json.dumps(record) + "\n")
    if not quiet:
        print(f"  {size / 1e6:,.0f} MB in {seconds:.1f} s", flush=True)
    return folder


def corpus_bytes(folder: Path) -> int:
    """The sessions' total size (from the marker when it is a cached corpus)."""
    found = corpus_record(folder)
    if found and isinstance(found.get("bytes"), int):
        return found["bytes"]
    return sum(p.stat().st_size for p in folder.glob("*.json"))


def big_session(mb: int = 100, seed: int = 0) -> Path:
    """A cached session of about ``mb`` MB (10**6 bytes), for ``chat -r`` and autosave."""
    CACHE.mkdir(parents=True, exist_ok=True)
    sid = f"big{mb}mb"
    path = CACHE / f"{sid}-{seed}-v{CORPUS_VERSION}.json"
    if path.exists():
        return path
    rng = random.Random(f"taurus-corpus-big:{seed}:{mb}")
    created = datetime(2025, 1, 18, 10, 23, 45, tzinfo=UTC)
    doc = make_session(rng, sid, created, target_bytes=int(mb * 1e6))
    partial = path.with_suffix(".partial")
    partial.write_bytes(fmt.dumps(doc))
    os.chmod(partial, 0o600)
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--count", type=parse_count, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--cached", help="make the cached corpora of these sizes (1k,10k,100k)")
    parser.add_argument("--big", type=int, metavar="MB", help="make the cached MB-sized session")
    args = parser.parse_args()
    if args.big:
        started = time.perf_counter()
        path = big_session(args.big, args.seed)
        took = time.perf_counter() - started
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB ({took:.1f} s)")
    for label in args.cached.split(",") if args.cached else []:
        folder = ensure_corpus(parse_count(label), args.seed, args.days)
        print(f"{folder}: {corpus_bytes(folder) / 1e6:,.0f} MB")
    if args.folder:
        started = time.perf_counter()
        size = generate(args.folder, args.count, args.seed, args.days, jobs=args.jobs)
        took = time.perf_counter() - started
        print(
            f"wrote {args.count:,} sessions, {size / 1e6:,.1f} MB, to {args.folder} in {took:.1f} s"
        )
    elif not args.big and not args.cached:
        parser.error("give a folder, --cached or --big")


if __name__ == "__main__":
    main()
