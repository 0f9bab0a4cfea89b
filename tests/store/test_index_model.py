"""The index against a brute-force reading of the files, after any sequence of changes.

Whatever happens to the session files (created, rewritten, edited in place, deleted,
archived, unarchived, renamed, damaged, given names that are not UTF-8), and however
the folders' own stamps fall (a fresh change, or a folder whose stamp is old so the
quick look trusts it), every answer the index gives is the answer of reading every
file: search hits (ranked and ``-l``, case, roles, phrases, short terms), the
statistics, list's order and limit, cleanup's plan and the pending-rule warning. The
oracle here reads the files itself, with its own reading of message text.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.ops import cleanup
from taurus_ops.ops.search import SearchQuery, search
from taurus_ops.ops.stats import compute
from taurus_ops.store import SessionStore, changes
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.index import Index, build, text, words
from taurus_ops.store.summary import summarize

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WORDS = ["apple", "Banana", "cherry", "DELTA", "kilo lima", "zz", "a_b", "50%", "café", "日本語"]
TERMS = ["apple", "APPLE", "banana", "kilo lima", "lima", "zz", "a_b", "50%", "café", "本語", "x"]


# -- the files ----------------------------------------------------------------------------
def _text(rng: random.Random) -> str:
    return " ".join(rng.choice([*WORDS, "filler", "text"]) for _ in range(rng.randint(0, 6)))


def make_doc(rng: random.Random, sid: str) -> dict[str, Any]:
    created = NOW - timedelta(days=rng.randint(0, 120), seconds=rng.randint(0, 86400))
    messages: list[Any] = [{"role": "user", "content": _text(rng)}]
    calls = []
    for turn in range(rng.randint(0, 3)):
        tool = rng.choice(["read", "edit", "write", "bash"])
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": _text(rng)},
                    {"type": "thinking", "thinking": _text(rng)},
                    {
                        "type": "tool_use",
                        "id": f"t{turn}",
                        "name": tool,
                        "input": {"q": _text(rng)},
                    },
                ],
                "usage": {"inputTokens": rng.randint(0, 500), "outputTokens": rng.randint(0, 50)},
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"t{turn}", "content": _text(rng)}
                ],
            }
        )
        calls.append({"tool": tool, "file": rng.choice(["a.py", "b.ts"])})
    doc: dict[str, Any] = {"sessionId": sid, "created": fmt.format_time(created)}
    kind = rng.random()
    if kind < 0.7:
        doc["updated"] = fmt.format_time(created + timedelta(minutes=rng.randint(0, 50)))
    elif kind < 0.85:
        later = created + timedelta(minutes=rng.randint(0, 50))
        doc["updated"] = later.astimezone().isoformat()  # an offset: not the stored format
    doc.update(messages=messages, toolCalls=calls, model="claude-sonnet-4-5")
    return doc


DAMAGE = [b"", b"{not json", b"[1, 2]", b'{"messages": "none"}', b"\xff\xfe garbage"]


@dataclass
class World:
    """A Taurus home whose files the test changes, and what it has changed."""

    root: Path
    rng: random.Random
    store: SessionStore
    serial: int = 0
    in_place: bool = False  # an edit the quick look is allowed not to see yet
    log: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / ".taurus"

    def files(self, archived: bool = False) -> list[Path]:
        return sorted(self.store.files(archived=archived))

    def pick(self, archived: bool = False) -> Path | None:
        files = self.files(archived)
        return self.rng.choice(files) if files else None

    def new_name(self, odd: bool) -> Path:
        self.serial += 1
        raw = f"2025-0{self.rng.randint(1, 5)}-01_s{self.serial:03d}".encode()
        if odd:
            raw += b"\xff\xe9"
        return self.store.session_dir / os.fsdecode(raw + b".json")

    def write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, durable=False)
        stamp = (NOW - timedelta(days=self.rng.randint(0, 90))).timestamp()
        os.utime(path, (stamp, stamp))

    # the operations
    def create(self, odd: bool) -> None:
        path = self.new_name(odd)
        self.write(path, fmt.dumps(make_doc(self.rng, f"s{self.serial:03d}")))

    def rewrite(self) -> None:
        path = self.pick()
        if path is not None:
            self.write(path, fmt.dumps(make_doc(self.rng, path.name[11:15])))

    def edit_in_place(self) -> None:
        path = self.pick()
        if path is None:
            return
        data = path.read_bytes()
        for a, b in ((b"apple", b"zebra"), (b"cherry", b"apple"), (b"filler", b"cherry")):
            if a in data:
                data = data.replace(a, b, 1)
                break
        st = path.stat()
        with open(path, "r+b") as handle:  # same inode, same size: only the mtime moves
            handle.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        self.in_place = True

    def delete(self) -> None:
        path = self.pick()
        if path is not None:
            path.unlink()

    def archive(self) -> None:
        path = self.pick()
        if path is not None and not (self.store.archive_dir / path.name).exists():
            self.store.archive(path)

    def unarchive(self) -> None:
        path = self.pick(archived=True)
        if path is not None and not (self.store.session_dir / path.name).exists():
            self.store.unarchive(path)

    def rename(self, odd: bool) -> None:
        path = self.pick()
        if path is not None:
            os.rename(path, self.new_name(odd))

    def damage(self) -> None:
        path = self.pick()
        if path is not None:
            self.write(path, self.rng.choice(DAMAGE))

    def name(self) -> None:
        path = self.pick()
        if path is not None:
            with contextlib.suppress(Exception):
                self.store.name(path.name, f"n{self.serial}{self.rng.randint(0, 9)}", replace=True)

    def save(self) -> None:
        """A turn of a chat: under the session's lock, through the store (in the journal)."""
        path = self.pick()
        if path is None:
            return
        with self.store.lock(path):
            try:
                session = self.store.load(path)
            except Exception:
                return  # a damaged file: a chat would not resume it
            session.data["messages"].append({"role": "user", "content": _text(self.rng)})
            self.store.save(session, touch=self.rng.random() < 0.5, durable=False)

    def start(self) -> None:
        """A new chat: a session made by the store (in the journal)."""
        self.serial += 1
        self.store.create(f"s{self.serial:03d}", messages=[{"role": "user", "content": "hi"}])

    def journal(self) -> None:
        """The journal lost, or a line of it damaged: the index must look for itself."""
        path = self.home / changes.JOURNAL_FILE
        if self.rng.random() < 0.5:
            path.unlink(missing_ok=True)
        else:
            with open(path, "ab") as handle:
                handle.write(self.rng.choice([b"{not json\n", b"[1]\n", b'{"dir": 1}\n']))

    def age(self) -> None:
        """Make the folders' own stamps old, so the next full look is trusted afterwards."""
        old = (NOW - timedelta(days=200)).timestamp()
        for folder in (self.store.session_dir, self.store.archive_dir):
            os.utime(folder, (old, old))


OPS = ["create", "create_odd", "rewrite", "edit_in_place", "delete", "archive", "unarchive",
       "rename", "rename_odd", "damage", "name", "save", "save", "start", "journal"]  # fmt: skip


def run_op(world: World, op: str) -> None:
    world.log.append(op)
    if op.endswith("_odd"):
        getattr(world, op[: -len("_odd")])(odd=True)
    elif op in ("create", "rename"):
        getattr(world, op)(odd=False)
    else:
        getattr(world, op)()


# -- the oracle ---------------------------------------------------------------------------
def oracle_text(message: Any) -> str:
    """Message text, read independently of the index's own code."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        text = ""
        if kind == "text":
            text = block.get("text", "")
        elif kind == "thinking":
            text = block.get("thinking", "")
        elif kind == "tool_use":
            text = f"{block.get('name')}\n{json.dumps(block.get('input', {}), ensure_ascii=False)}"
        elif kind == "tool_result":
            text = block.get("content", "")
        if text:
            parts.append(text)
    return "\n".join(parts).replace("\x00", "\ufffd")


def read_doc(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def ascii_fold(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def oracle_hits(world: World, term: str, case: bool, role: str | None, archived: bool) -> set[str]:
    folders = [False, True] if archived else [False]
    out = set()
    for folder in folders:
        for path in world.files(folder):
            doc = read_doc(path)
            if doc is None or not isinstance(doc.get("messages"), list):
                continue
            for message in doc["messages"]:
                if role is not None and (
                    not isinstance(message, dict) or message.get("role") != role
                ):
                    continue
                text = oracle_text(message)
                if (term in text) if case else (ascii_fold(term) in ascii_fold(text)):
                    out.add(str(path))
                    break
    return out


def oracle_stats(world: World) -> dict[str, Any]:
    tools: Counter[str] = Counter()
    modified: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    total = damaged = messages = 0
    for path in world.files():
        total += 1
        doc = read_doc(path)
        if doc is None:
            damaged += 1
            continue
        msgs = doc.get("messages") if isinstance(doc.get("messages"), list) else []
        messages += len(msgs)
        for call in doc.get("toolCalls", []) if isinstance(doc.get("toolCalls"), list) else []:
            tools[call["tool"]] += 1
            if call["tool"] in ("edit", "write"):
                modified[call["file"]] += 1
        for message in msgs:
            usage = message.get("usage", {}) if isinstance(message, dict) else {}
            for key in ("inputTokens", "outputTokens"):
                tokens[key] += usage.get(key, 0)
    readable = total - damaged
    return {
        "total": total,
        "damaged": damaged,
        "tools": dict(tools),
        "modified": dict(modified),
        "average": messages / readable if readable else None,
        "tokens": {k: v for k, v in tokens.items() if v},
    }


def oracle_listing(world: World, archived: bool) -> list[str]:
    """Paths newest ``updated`` first (the file's time where there is none)."""
    rows = []
    for folder in [False, True] if archived else [False]:
        for path in world.files(folder):
            summary = summarize(path, folder)
            rows.append((summary.sort_key(), summary.path))
    return [p for _, p in sorted(rows, key=lambda r: r[0], reverse=True)]


# -- the comparison -----------------------------------------------------------------------
@contextlib.contextmanager
def world_at(seed: int) -> Iterator[World]:
    saved = {k: os.environ.get(k) for k in ("HOME", "TAURUS_HOME")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root)
        os.environ["TAURUS_HOME"] = str(root / ".taurus")
        config_text = (
            "sessions:\n  retentionDays: 60\n  maxSessions: 6\narchive:\n  retentionDays: 100\n"
        )
        (root / ".taurus").mkdir(mode=0o700)
        (root / ".taurus" / "config.yaml").write_text(config_text)
        store = SessionStore(root / ".taurus" / "sessions", root / ".taurus" / "archive")
        store.ensure()
        store.archive_dir.mkdir(mode=0o700)
        store.index_home = root / ".taurus"
        try:
            yield World(root, random.Random(seed), store)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def check(world: World) -> None:
    from taurus_ops.config import load_config

    config = load_config()
    with Index(config) as index:
        index.refresh()
        for term in TERMS:
            for case, role, archived in (
                (False, None, False),
                (True, None, True),
                (False, "user", True),
            ):
                want = world.log, term, case, role, archived
                expected = oracle_hits(world, term, case, role, archived)
                for ranked in (True, False):
                    query = SearchQuery(
                        [term], role=role, archived=archived, case_sensitive=case, ranked=ranked
                    )
                    assert {h.path for h in search(index, query, refresh=False)} == expected, want
        pair = SearchQuery(["apple", "kilo lima"], archived=True)
        both = oracle_hits(world, "apple", False, None, True) & oracle_hits(
            world, "kilo lima", False, None, True
        )
        assert {h.path for h in search(index, pair)} == both
        found = compute(index, now=NOW)
        truth = oracle_stats(world)
        assert (found.total, found.damaged) == (truth["total"], truth["damaged"]), world.log
        assert dict(found.tools) == truth["tools"] and dict(found.modified) == truth["modified"]
        assert (
            found.average_messages == pytest.approx(truth["average"])
            if truth["average"] is not None  # 0.0: readable sessions, none with messages
            else found.average_messages is None
        )
        tokens = Counter()
        for counts in found.tokens.values():
            tokens.update({k: v for k, v in counts.items() if v})
        assert dict(tokens) == truth["tokens"], world.log
    for archived in (False, True):
        listed = [s.path for s in world.store.summaries(archived=archived)]
        order = oracle_listing(world, archived)
        assert sorted(listed) == sorted(order), world.log
        keys = {p: summarize(Path(p), False).sort_key() for p in listed}
        assert [keys[p] for p in listed] == [keys[p] for p in order]  # newest first
        assert (
            world.store.summaries(archived=archived, limit=3)
            == world.store.summaries(archived=archived)[:3]
        )
    plain = SessionStore(world.store.session_dir, world.store.archive_dir)  # no index: every file
    for archived in (False, True):
        assert [s.as_json() for s in world.store.summaries(archived=archived)] == [
            s.as_json() for s in plain.summaries(archived=archived)
        ]
        assert world.store.listing(archived=archived, limit=2) == plain.listing(
            archived=archived, limit=2
        )
    indexed_plan = cleanup.make_plan(config, world.store, NOW).as_json()
    assert indexed_plan == cleanup.make_plan(config, plain, NOW).as_json(), world.log
    names = plain.names()
    brute = cleanup.Snapshot(
        tuple(cleanup.read_entry(p, False, names) for p in plain.files()),
        tuple(cleanup.read_entry(p, True, names) for p in plain.files(archived=True)),
    )
    assert (
        indexed_plan
        == cleanup.plan_cleanup(cleanup.Rules.from_config(config), brute, NOW).as_json()
    )
    assert cleanup.pending_warning(config, world.store, NOW) == cleanup.pending_warning(
        config, plain, NOW
    )


@settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    seed=st.integers(0, 10**6),
    ops=st.lists(st.tuples(st.sampled_from(OPS), st.booleans()), min_size=1, max_size=6),
)
def test_index_answers_equal_reading_every_file(seed: int, ops: list[tuple[str, bool]]) -> None:
    """Each change is checked against a fresh folder stamp, or (aged) against one the
    quick look trusts: the next change must still be seen. A vocabulary of a few words a
    row, merged after a few additions and read back whole from a build of two sessions,
    takes every path a vocabulary does; a word found in more than two words narrows
    nothing; a head of a few bytes leaves most matches to the compressed text; a look
    between gives way to a full look after one changed name, or after many."""
    with world_at(seed) as world, pytest.MonkeyPatch.context() as patch:
        patch.setattr(text, "CHUNK_BYTES", 16)
        patch.setattr(text, "MAX_TERMS", 2)
        patch.setattr(build, "VOCAB_FROM", 2)
        patch.setattr(words, "VOCAB_ROWS", 3)
        patch.setattr(text, "HEAD", 10)
        if seed % 2:  # a look between that finds more changed than it may stat looks fully
            patch.setattr(build, "BETWEEN_MAX", 1)
        if seed % 3 == 0:  # a journal started again every few changes
            patch.setattr(changes, "JOURNAL_MAX", 400)
        for _ in range(4):
            world.create(odd=False)
        world.age()
        check(world)  # builds the index
        for op, aged in ops:
            run_op(world, op)
            if aged:
                world.age()
            if world.in_place:  # only a full look sees it: as if the trusted while had passed
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(build, "TRUST_SECONDS", 0.0)
                    check(world)
                world.in_place = False
            else:
                check(world)
