"""What the index keeps beside the rows to store and search their text: the zstd
dictionary the text is compressed with (trained once, on a sample of the first files a
big refresh reads), and the vocabulary, every word of the word table, in rows of
sorted words, which a search scans for the words a term can be part of."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

from taurus_ops.store.index import text
from taurus_ops.store.index.text import train_dictionary, unpack, vocab_chunks

if TYPE_CHECKING:
    from taurus_ops.store.index.build import FolderWork

VOCAB_ROWS = 32  # rows of words added since, beyond the whole ones, before they are merged


# -- the dictionary the stored text is compressed with ----------------------------------------
SAMPLE_MAX_BYTES = 1 << 20  # a file larger than this is not read to train the dictionary


def stored_dictionary(conn: sqlite3.Connection) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'dictionary'").fetchone()
    return row[0] if row and isinstance(row[0], bytes) else None


def dictionary(conn: sqlite3.Connection, work: list[FolderWork]) -> bytes | None:
    """The zstd dictionary the index's text is compressed with. An index has none until
    a refresh reads ``DICTIONARY_FROM`` files or more; that one trains it on a sample
    of them, and it is kept as long as the index (a body names the dictionary it needs,
    so the text stored before it stays readable)."""
    stored = stored_dictionary(conn)
    paths = [(w.found.get(p, (0,))[0], p) for w in work for p in w.to_read]
    if stored is not None or len(paths) < text.DICTIONARY_FROM:
        return stored
    from taurus_ops.store.index.facts import read_facts

    small = [p for size, p in paths if size <= SAMPLE_MAX_BYTES]
    step = max(len(small) // text.DICTIONARY_SAMPLES, 1)
    samples = []
    for path in small[::step][: text.DICTIONARY_SAMPLES]:
        facts = read_facts(path)
        if facts is not None and facts.text is not None:
            samples.append(unpack(facts.text.body)[1])
    data = train_dictionary(samples)
    if data is None:
        return None
    conn.execute("BEGIN IMMEDIATE")
    try:
        stored = stored_dictionary(conn)  # unless another process trained one meanwhile
        if stored is None:
            conn.execute("INSERT INTO meta(key, value) VALUES ('dictionary', ?)", (data,))
            stored = data
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return stored


# -- the vocabulary -------------------------------------------------------------------------------
def vocab_again(conn: sqlite3.Connection) -> None:
    """The vocabulary read back whole from the word table (what is gone goes with it)."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.word_list USING fts5vocab(main, words, 'row')"
    )
    words = [
        r[0].encode("utf-8", "surrogatepass")
        for r in conn.execute("SELECT term FROM temp.word_list")
    ]
    _replace_vocab(conn, words)


def add_vocab(conn: sqlite3.Connection, words: set[bytes]) -> None:
    """Add a few sessions' words to the vocabulary (which may then hold a word twice),
    in chunks the last of which is short; when more than ``VOCAB_ROWS`` rows are short
    (each addition leaves one), all are merged."""
    conn.executemany(
        "INSERT INTO vocab(words) VALUES (?)", [(c,) for c in vocab_chunks(sorted(words))]
    )
    (short,) = conn.execute(
        "SELECT count(*) FROM vocab WHERE length(words) < ?", (text.CHUNK_BYTES,)
    ).fetchone()
    if short > VOCAB_ROWS:
        every: set[bytes] = set()
        for (chunk,) in conn.execute("SELECT words FROM vocab"):
            every.update(chunk.split())
        _replace_vocab(conn, sorted(every))


def _replace_vocab(conn: sqlite3.Connection, words: list[bytes]) -> None:
    """The vocabulary, whole, in place of its rows."""
    conn.execute("DELETE FROM vocab")
    conn.executemany("INSERT INTO vocab(words) VALUES (?)", [(c,) for c in vocab_chunks(words)])
