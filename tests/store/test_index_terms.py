"""A term's candidates from the word table, for any text and any term: never a session
that holds the term left out (words inside words, at their ends and starts, phrases of
several words, separators of every kind, non-ASCII letters, message boundaries), and,
for a lone ASCII word, exactly the sessions that hold it (search then reads no text)."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session
from helpers.strategies import odd_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.ops.search import SearchQuery, search
from taurus_ops.store.index import Index, build, exact_word, text
from taurus_ops.store.index.schema import create_tables

PIECES = ["con", "nection", "Pool", "po", "ol", "x1", "é", "É", "_", "-", " ", ".", "  ", "\n"]
SEPARATORS = ["_", "-", " ", ".", "  ", "\n", ""]
pieces = st.lists(st.sampled_from(PIECES), min_size=1, max_size=5)


def fold(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def near(data: st.DataObject, term: list[str]) -> str:
    """Text like the term: its separators swapped for others, its letters' case changed."""
    out = []
    for piece in term:
        if piece in SEPARATORS:
            piece = data.draw(st.sampled_from(SEPARATORS))
        out.append(piece.swapcase() if data.draw(st.booleans()) else piece)
    return "".join(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    asked=st.lists(pieces, min_size=1, max_size=4),
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=6),
    whole=st.booleans(),
    data=st.data(),
)
def test_candidates_hold_every_session_with_the_term(
    asked: list[list[str]], shape: list[int], whole: bool, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        # the vocabulary read back from the table, or added to a session at a time
        patch.setattr(build, "VOCAB_FROM", 1 if whole else 10**6)
        home = Path(tmp)
        folder = home / "sessions"
        folder.mkdir()
        held: dict[str, list[str]] = {}
        for n, count in enumerate(shape):
            messages = [
                "".join(
                    data.draw(st.sampled_from(PIECES))
                    if data.draw(st.booleans())
                    else near(data, t)
                    for t in data.draw(st.lists(st.sampled_from(asked), max_size=3))
                )
                for _ in range(count)
            ]
            doc = make_document(f"s{n:03d}", n_turns=0, first=messages[0])
            doc["messages"] += [
                {"role": "assistant" if i % 2 == 0 else "user", "content": text}
                for i, text in enumerate(messages[1:])
            ]
            held[str(write_session(folder, doc))] = messages
        with Index.for_dirs(home, folder) as index:
            index.refresh()
            key_of = {row.path: row.key for row in index.rows()}
            for term in ("".join(t) for t in asked):
                if term.strip(" -_.\n") == "":
                    continue  # separators only: a search of nothing a word could find
                holding = {
                    p for p, msgs in held.items() if any(fold(term) in fold(m) for m in msgs)
                }
                keys = index.term_keys(term)
                assert keys is None or {key_of[p] for p in holding} <= keys, term
                if keys is not None and exact_word(term):
                    assert keys == {key_of[p] for p in holding}, term
                hits = search(index, SearchQuery([term], ranked=False), refresh=False)
                assert {h.path for h in hits} == holding, term


@pytest.mark.parametrize(
    ("term", "exact"),
    [("pool", True), ("POOL2", True), ("x_1", False), ("a b", False), ("café", False), ("", False)],
)
def test_exact_words_are_lone_ascii_words(term: str, exact: bool) -> None:
    assert exact_word(term) is exact


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(
        st.one_of(st.text(max_size=30), odd_text(), st.sampled_from(PIECES)),
        min_size=1,
        max_size=5,
    )
)
def test_the_word_row_a_session_is_added_with_is_the_one_it_is_deleted_with(
    texts: list[str],
) -> None:
    """A contentless word table forgets a row only when given the very tokens it was
    added with: the row packed from the texts and the row made again from the stored body
    are the same, and SQLite takes them as text (valid UTF-8) whatever the text
    holds (lone surrogates, NULs, non-ASCII letters), and deleting it leaves the table
    whole and empty."""
    packed = text.pack(["user"] * len(texts), [t.replace("\x00", "\ufffd") for t in texts])
    if packed is None:
        return
    again = text.text_from_body(packed.body)
    assert again == packed.words
    packed.words.encode("utf-8")  # raises on a lone surrogate, which SQLite would refuse
    conn = sqlite3.connect(":memory:", isolation_level=None)
    create_tables(conn)
    conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, words, 'row')")
    terms = "SELECT term FROM temp.terms"
    conn.execute("INSERT INTO words(rowid, text) VALUES (1, ?)", (packed.words,))
    assert {w.encode() for (w,) in conn.execute(terms)} == text.words_in(packed.words)
    conn.execute("INSERT INTO words(words, rowid, text) VALUES ('delete', 1, ?)", (again,))
    conn.execute("INSERT INTO words(words) VALUES ('integrity-check')")
    assert conn.execute(terms).fetchall() == []
