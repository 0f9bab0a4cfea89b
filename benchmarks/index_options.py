"""Ways to keep the search index, measured on one corpus (the comparison in README.md).

    python -m benchmarks.index_options DIR [--repeat 3] [--only zstd]
    python -m benchmarks.index_options --realistic SRC DST TEXTS   # a corpus of real text

Every option gets the same input: each session's message texts as Taurus reads them
(the shared cost of reading and parsing the files is printed once, apart). For each:
the time to build it (wall and CPU), its size beside the session files' bytes, the
time of a ``search -l`` for three terms (the candidates it gives, then the text
checked, as Taurus must: matches are substrings), and the time to replace one
session. ``--realistic`` rewrites a corpus with text cut from real files (source
code and documentation under TEXTS), since the generator's small vocabulary makes
every index look small. tantivy and apsw are used when importable.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taurus_ops.store import format as fmt
from taurus_ops.store.index.facts import read_facts
from taurus_ops.store.index.text import needle, unpack

TERMS = ["authentication", "walrus", "connection pool"]

# the trigram rows of schema 10, kept here to measure them against
MAX_GRAMS = 24  # trigrams asked for per term: a sample narrows enough, every one costs
WORDS_A_ROW = 8192  # a session's words a trigram row holds (fewer: fewer false candidates)
MAX_ROWS = 64  # trigram rows a session has at most
KEY_BITS = 40  # a trigram row's rowid: its number << KEY_BITS | the session's key, so the
# rowids of one number are as close as the keys (FTS5 stores each rowid as the difference
# to the one before: near rowids take a byte, far ones two or three)


def gram_rowid(key: int, number: int) -> int:
    return number << KEY_BITS | key


def gram_key(rowid: int) -> int:
    return rowid & ((1 << KEY_BITS) - 1)


def words_of(joined: bytes, per_row: int | None = None) -> list[str]:
    """The trigram table's rows for a session: its distinct words in order, about
    ``per_row`` (``WORDS_A_ROW``) to a row (at most ``MAX_ROWS`` rows), a newline apart."""
    words = sorted(set(joined.replace(b"\x00", b"\n").lower().split()))
    if not words:
        return []
    rows = min(MAX_ROWS, -(-len(words) // (per_row or WORDS_A_ROW)))
    size = -(-len(words) // rows)
    return [
        b"\n".join(words[i : i + size]).decode("utf-8", "replace")
        for i in range(0, len(words), size)
    ]


def gram_queries(term: str) -> list[str]:
    """FTS5 queries, one a word of ``term`` with three characters or more: each asks for
    the rows holding that word's trigrams. A session may hold the term only if each of
    them finds one of its rows (a word of the text lies in one row, but the words of a
    phrase may lie in different rows); none at all: every session may."""
    out = []
    for word in dict.fromkeys(term.encode("utf-8", "surrogatepass").lower().split()):
        text = word.decode("utf-8", "replace")
        grams = {text[i : i + 3] for i in range(len(text) - 2)}
        if grams:
            chosen = sorted(grams, key=lambda g: (-len(g.encode("utf-8", "surrogatepass")), g))
            out.append(" AND ".join('"' + g.replace('"', '""') + '"' for g in chosen[:MAX_GRAMS]))
    return out


@dataclass
class Session:
    texts: list[str]
    joined: bytes


def load(folder: Path) -> tuple[list[Session], int, float]:
    """Every session's texts, the files' bytes, and the seconds reading them took."""
    start = time.process_time()
    sessions = []
    size = 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        size += entry.stat().st_size
        facts = read_facts(entry.path)
        if facts is None or facts.text is None:
            continue
        _, joined = unpack(facts.text.body)
        sessions.append(Session(joined.decode("utf-8", "replace").split("\x00"), joined))
    return sessions, size, time.process_time() - start


def _timed(func: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = func()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _best(func: Callable[[], Any], repeat: int) -> float:
    return min(_timed(func)[0] for _ in range(repeat))


def _db(folder: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(folder / "index.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- the options ------------------------------------------------------------------------
class Option:
    name = ""

    def build(self, folder: Path, sessions: list[Session]) -> None: ...
    def search(self, term: str) -> set[int]: ...
    def replace(self, key: int, session: Session) -> None: ...


class TextKept(Option):
    """Schema 8: an FTS5 trigram table with one row per message, its text kept."""

    name = "FTS5 trigram, a row per message, text kept (schema 8)"

    def build(self, folder: Path, sessions: list[Session]) -> None:
        self.conn = conn = _db(folder)
        conn.execute(
            "CREATE VIRTUAL TABLE t USING fts5(body, tokenize='trigram case_sensitive 0',"
            " detail=none)"
        )
        conn.execute("BEGIN")
        for key, session in enumerate(sessions, 1):
            self._add(key, session)
        conn.execute("COMMIT")

    def _add(self, key: int, session: Session) -> None:
        self.conn.executemany(
            "INSERT INTO t(rowid, body) VALUES (?, ?)",
            [(key << 20 | n, text) for n, text in enumerate(session.texts) if text],
        )

    def search(self, term: str) -> set[int]:
        rows = self.conn.execute("SELECT rowid FROM t WHERE body LIKE ?", (f"%{term}%",))
        return {r[0] >> 20 for r in rows}

    def replace(self, key: int, session: Session) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute(
            "DELETE FROM t WHERE rowid BETWEEN ? AND ?", (key << 20, key << 20 | (1 << 20) - 1)
        )
        self._add(key, session)
        self.conn.execute("COMMIT")


class Contentless(Option):
    """A contentless FTS5 trigram table beside the text, zlib-compressed."""

    def __init__(
        self,
        words: bool,
        level: int,
        per_message: bool = False,
        codec: str = "zlib",
        per_row: int = 256,
    ) -> None:
        self.words, self.level, self.per_message = words, level, per_message
        self.codec, self.per_row = codec, per_row
        if words:
            what = f"distinct words, {per_row} a row" if per_row < 8192 else "distinct words"
        else:
            what = "whole text"
        rows = (
            "a row per message"
            if per_message
            else "rows per session"
            if words and per_row < 8192
            else "a row per session"
        )
        self.name = f"FTS5 trigram, contentless, {rows} over its {what}; text {codec} {level}"

    def _pack(self, raw: bytes) -> bytes:
        if self.codec == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=self.level).compress(raw)
        return zlib.compress(raw, self.level)

    def _unpack(self, body: bytes) -> bytes:
        if self.codec == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompress(body)
        return zlib.decompress(body)

    def build(self, folder: Path, sessions: list[Session]) -> None:
        self.conn = conn = _db(folder)
        conn.execute(
            "CREATE VIRTUAL TABLE g USING fts5(w, content='', tokenize='trigram"
            " case_sensitive 0', detail=none)"
        )
        conn.execute("CREATE TABLE texts(key INTEGER PRIMARY KEY, body BLOB)")
        conn.execute("BEGIN")
        for key, session in enumerate(sessions, 1):
            self._add(key, session)
        conn.execute("COMMIT")

    def _grams(self, key: int, session: Session) -> list[tuple[int, str]]:
        if self.per_message:
            return [(key << 20 | n, t) for n, t in enumerate(session.texts) if t]
        if self.words:
            return [
                (gram_rowid(key, n), w)
                for n, w in enumerate(words_of(session.joined, self.per_row))
            ]
        return [(key, session.joined.replace(b"\x00", b"\n").decode("utf-8", "replace"))]

    def _add(self, key: int, session: Session) -> None:
        body = self._pack(b"[[],[]]\x00" + session.joined)
        self.conn.execute("INSERT INTO texts VALUES (?, ?)", (key, body))
        self.conn.executemany("INSERT INTO g(rowid, w) VALUES (?, ?)", self._grams(key, session))

    def search(self, term: str) -> set[int]:
        found = needle(term, False)
        assert found is not None
        shift = 20 if self.per_message else 0
        keys: set[int] = set()
        for n, query in enumerate(gram_queries(term)):  # one a word: rows are per word
            rows = self.conn.execute("SELECT rowid FROM g WHERE g MATCH ?", (query,))
            got = {gram_key(r[0]) if self.words else r[0] >> shift for r in rows}
            keys = got if n == 0 else keys & got
        return {
            key
            for key, body in self.conn.execute(
                "SELECT key, body FROM texts WHERE key IN (SELECT value FROM json_each(?))",
                (str(sorted(keys)),),
            )
            if found in self._unpack(body).lower()
        }

    def replace(self, key: int, session: Session) -> None:
        self.conn.execute("BEGIN")
        (old,) = self.conn.execute("SELECT body FROM texts WHERE key = ?", (key,)).fetchone()
        joined = self._unpack(old).split(b"\x00", 1)[1]
        before = Session(joined.decode("utf-8", "replace").split("\x00"), joined)
        self.conn.executemany(
            "INSERT INTO g(g, rowid, w) VALUES ('delete', ?, ?)", self._grams(key, before)
        )
        self.conn.execute("DELETE FROM texts WHERE key = ?", (key,))
        self._add(key, session)
        self.conn.execute("COMMIT")


class Apsw(Contentless):
    """The same through apsw's newer SQLite, whose contentless_delete needs no old text."""

    def __init__(self) -> None:
        super().__init__(words=True, level=1)
        import apsw

        self.apsw = apsw
        self.name = f"the same, apsw (SQLite {apsw.sqlite_lib_version()}, contentless_delete)"

    def build(self, folder: Path, sessions: list[Session]) -> None:
        self.conn = conn = self.apsw.Connection(str(folder / "index.sqlite"))
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE VIRTUAL TABLE g USING fts5(w, content='', contentless_delete=1,"
            " tokenize='trigram case_sensitive 0', detail=none)"
        )
        conn.execute("CREATE TABLE texts(key INTEGER PRIMARY KEY, body BLOB)")
        with conn:
            for key, session in enumerate(sessions, 1):
                self._add(key, session)

    def replace(self, key: int, session: Session) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM g WHERE rowid = ?", (key,))
            self.conn.execute("DELETE FROM texts WHERE key = ?", (key,))
            self._add(key, session)


class Tantivy(Option):
    """tantivy (Rust, its own threads): trigrams of the text, doc ids only; the text stored."""

    def __init__(self) -> None:
        import tantivy

        self.t = tantivy
        self.name = "tantivy 0.27: 3-gram terms, doc ids only, text in its compressed doc store"

    def build(self, folder: Path, sessions: list[Session]) -> None:
        t = self.t
        schema = t.SchemaBuilder()
        schema.add_integer_field("key", stored=True, indexed=True, fast=True)
        schema.add_text_field("body", stored=True, tokenizer_name="tri", index_option="basic")
        self.index = t.Index(schema.build(), path=str(folder))
        analyzer = t.TextAnalyzerBuilder(t.Tokenizer.ngram(3, 3, False)).filter(
            t.Filter.lowercase()
        )
        self.index.register_tokenizer("tri", analyzer.build())
        writer = self.index.writer(heap_size=200_000_000, num_threads=2)
        for key, session in enumerate(sessions, 1):
            writer.add_document(t.Document(key=key, body=session.joined.decode("utf-8", "replace")))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def search(self, term: str) -> set[int]:
        t = self.t
        grams = {w[i : i + 3] for w in term.lower().split() for i in range(len(w) - 2)}
        query = t.Query.boolean_query(
            [(t.Occur.Must, t.Query.term_query(self.index.schema, "body", g)) for g in grams]
        )
        searcher = self.index.searcher()
        hits = searcher.search(query, limit=1_000_000).hits
        found = term.lower()
        out = set()
        for _, address in hits:
            doc = searcher.doc(address)
            if found in doc["body"][0].lower():
                out.add(doc["key"][0])
        return out

    def replace(self, key: int, session: Session) -> None:
        writer = self.index.writer(heap_size=50_000_000, num_threads=1)
        writer.delete_documents_by_term("key", key)
        writer.add_document(
            self.t.Document(key=key, body=session.joined.decode("utf-8", "replace"))
        )
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()


def options() -> list[Option]:
    out: list[Option] = [
        TextKept(),
        Contentless(words=False, level=1, per_message=True),
        Contentless(words=False, level=1),
        Contentless(words=True, level=1),
        Contentless(words=True, level=6),
        Contentless(words=True, level=3, codec="zstd"),
        Contentless(words=True, level=3, codec="zstd", per_row=1024),
        Contentless(words=True, level=3, codec="zstd", per_row=8192),  # what Taurus keeps
    ]
    for extra in (Apsw, Tantivy):
        try:
            out.append(extra())
        except ImportError:
            print(f"({extra.__name__}: not installed)")
    return out


def compare(folder: Path, repeat: int, only: str | None = None) -> None:
    sessions, size, took = load(folder)
    print(
        f"{len(sessions)} sessions, {size / 1e6:.0f} MB; reading and parsing them: {took:.2f} s CPU"
    )
    print(
        "| option | build (wall / CPU) | size | of the sessions | "
        + " | ".join(f"`{t}`" for t in TERMS)
        + " | one replaced |"
    )
    print("| --- " * (6 + len(TERMS) - 1) + "|")
    rng = random.Random(0)
    for option in options():
        if only is not None and only not in option.name:
            continue
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            wall, cpu, _ = _timed(lambda o=option, d=Path(tmp): o.build(d, sessions))
            if isinstance(getattr(option, "conn", None), sqlite3.Connection):
                option.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            bytes_ = _size(Path(tmp))
            searches = [_best(lambda o=option, t=term: o.search(t), repeat) for term in TERMS]
            key = rng.randrange(1, len(sessions))
            one = _best(lambda o=option, k=key: o.replace(k, sessions[k - 1]), repeat)
            print(
                f"| {option.name} | {wall:.1f} s / {cpu:.1f} s | {bytes_ / 1e6:.0f} MB | {bytes_ / size:.2f} | "
                + " | ".join(f"{s * 1000:.0f} ms" for s in searches)
                + f" | {one * 1000:.0f} ms |"
            )


# -- a corpus of real text ------------------------------------------------------------------
def realistic(source: Path, target: Path, texts: Path, seed: int = 0) -> None:
    """``source``'s sessions with every text replaced by real text of the same length."""
    pool = []
    for path in sorted(texts.rglob("*")):
        if path.suffix in (".py", ".rst", ".txt", ".md") and path.is_file():
            pool.append(path.read_text("utf-8", "replace"))
    corpus = "\n".join(pool)
    rng = random.Random(seed)

    def real(length: int) -> str:
        start = rng.randrange(0, max(1, len(corpus) - length))
        return corpus[start : start + length]

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in ("text", "thinking", "content") and isinstance(v, str):
                    out[k] = real(len(v))
                else:
                    out[k] = swap(v)
            return out
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        doc = fmt.loads(Path(entry.path).read_bytes())
        doc["messages"] = swap(doc["messages"])
        out = target / entry.name
        out.write_bytes(fmt.dumps(doc))
        st = entry.stat()
        os.utime(out, (st.st_atime, st.st_mtime))
    shutil.copymode(source, target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="only the options whose name holds this (e.g. zstd)")
    parser.add_argument("--realistic", nargs=3, type=Path, metavar=("SRC", "DST", "TEXTS"))
    args = parser.parse_args()
    if args.realistic:
        realistic(*args.realistic)
        return
    if args.folder is None:
        parser.error("give the folder of sessions to measure on")
    compare(args.folder, args.repeat, args.only)


if __name__ == "__main__":
    sys.exit(main())
