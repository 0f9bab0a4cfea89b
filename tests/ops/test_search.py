"""Search against grep -l on generated corpora, and search's filters and output.

"Message text" is what a message says: string content, text blocks, thinking,
tool_use name and input, tool_result content. The corpora put the search vocabulary
only there (ids, times, keys, toolCalls never hold it) and keep it free of JSON
escapes, so `grep -l WORD *.json` over the files is exactly "WORD occurs in some
message's text" and the two sets must be equal.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.quick import quick_run
from helpers.sessions import make_document, write_session

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, ensure_dir

GREP = shutil.which("grep")
VOCAB = ["apple", "banana", "cherry", "delta", "gamma", "hotel", "indigo", "kilo", "lima", "quebec"]
NOISE = ["zz", "yy", "Xw", "9", "_", "-", "ü", "café"]


def _word(rng: random.Random) -> str:
    word = rng.choice(VOCAB)
    style = rng.random()
    if style < 0.2:
        word = word.upper()
    elif style < 0.35:
        word = word.capitalize()
    if rng.random() < 0.3:  # glued into a longer token: grep matches substrings
        word = rng.choice(NOISE) + word + rng.choice(NOISE)
    return word


def _text(rng: random.Random) -> str:
    return " ".join(_word(rng) if rng.random() < 0.25 else rng.choice(NOISE) for _ in range(8))


def make_session(rng: random.Random, number: int, created: datetime) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": _text(rng)}]
    calls = []
    for turn in range(rng.randint(0, 3)):
        tool_id = f"toolu_{number}_{turn}"
        tool = rng.choice(["read", "edit", "bash"])
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": _text(rng)},
                    {"type": "text", "text": _text(rng)},
                    {"type": "tool_use", "id": tool_id, "name": tool, "input": {"q": _text(rng)}},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": _text(rng)}],
            }
        )
        calls.append({"tool": tool, "file": "src/x.py", "timestamp": fmt.format_time(created)})
        messages.append({"role": "assistant", "content": _text(rng)})
    return {
        "sessionId": f"s{number:04d}",
        "created": fmt.format_time(created),
        "updated": fmt.format_time(created + timedelta(minutes=5)),
        "messages": messages,
        "toolCalls": calls,
    }


def write_corpus(folder: Path, seed: int, count: int = 30) -> list[Path]:
    rng = random.Random(seed)
    ensure_dir(folder)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    paths = []
    for number in range(count):
        doc = make_session(rng, number, base + timedelta(days=rng.randint(0, 60)))
        path = folder / fmt.file_name(fmt.parse_time(doc["created"]), doc["sessionId"])  # type: ignore[arg-type]
        atomic_write(path, fmt.dumps(doc), durable=False)
        paths.append(path)
    return paths


def grep_l(term: str, files: list[Path], ignore_case: bool) -> set[str]:
    args = [GREP, "-l", "-F", *(["-i"] if ignore_case else []), "--", term, *map(str, files)]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    assert out.returncode in (0, 1), out.stderr
    return set(out.stdout.split())


def ops_paths(ops, *args: str) -> set[str]:
    """What ``search -l ARGS`` prints, by the command and, for the plain form, by the
    path that loads no click (the two must agree line for line)."""
    result = ops("search", "-l", *args)
    assert result.exit_code in (0, 1), result.output
    status, printed = quick_run("search", "-l", *args)
    if not any(arg.startswith("-") for arg in args):
        assert (status, printed) == (result.exit_code, result.output), args
    else:
        assert status is None, args
    return set(result.output.split())


@pytest.mark.skipif(GREP is None, reason="grep is not installed")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plain_words_find_what_grep_l_finds(store, ops, seed: int) -> None:
    files = write_corpus(store.session_dir, seed)
    skeleton = json.dumps([{**json.loads(f.read_bytes()), "messages": []} for f in files])
    terms = [*VOCAB, "ppl", "ANAN", "elt", "li", "zzapple", "é", "caf", "uebe"]
    checked = 0
    for term in terms:
        assert term.lower() not in skeleton.lower()  # only message text can hold it
        expected_i = grep_l(term, files, ignore_case=True)
        assert ops_paths(ops, term) == expected_i, term
        expected = grep_l(term, files, ignore_case=False)
        assert ops_paths(ops, "--case-sensitive", term) == expected, term
        checked += bool(expected_i)
    assert checked >= len(VOCAB)  # the corpus really contains the vocabulary


def test_dash_l_prints_real_files_in_name_order_without_names(store, ops) -> None:
    files = write_corpus(store.session_dir, 7, count=12)
    store.name(files[0].name, "favourite")
    result = ops("search", "-l", "apple")
    printed = result.output.split()
    assert printed == sorted(printed)
    assert all(Path(p).name != "favourite.json" for p in printed)
    expected = grep_l("apple", files, ignore_case=True)
    assert set(printed) == expected


def test_multiple_terms_and_phrases(store, ops) -> None:
    from helpers.sessions import make_document, write_session

    a = make_document("aaa111", first="The password reset email never arrives")
    b = make_document("bbb222", first="Reset the cache; the password is fine")
    c = make_document("ccc333", first="Unrelated work on the dashboard")
    for doc in (a, b, c):
        write_session(store.session_dir, doc)
    both = ops_paths(ops, "password", "reset")
    assert {Path(p).name for p in both} == {"2025-01-18_aaa111.json", "2025-01-18_bbb222.json"}
    phrase = ops_paths(ops, "password reset")  # one shell argument: a phrase
    assert {Path(p).name for p in phrase} == {"2025-01-18_aaa111.json"}
    assert ops("search", "-l", "password", "dashboard").exit_code == 1  # nothing has both


def test_filters_role_tool_since_archived(store, ops) -> None:
    from helpers.sessions import make_document, write_session

    old = make_document(
        "old001", created=datetime(2024, 6, 1, tzinfo=UTC), n_turns=0, first="kiwi in user"
    )
    new = make_document(
        "new001", created=datetime(2025, 3, 1, tzinfo=UTC), n_turns=0, first="plain start"
    )
    new["messages"].append({"role": "assistant", "content": "kiwi said by the assistant"})
    new["toolCalls"] = [{"tool": "write", "file": "a.py"}]
    old["toolCalls"] = [{"tool": "read", "file": "a.py"}]
    for doc in (old, new):
        write_session(store.session_dir, doc)

    def ids(*args: str) -> set[str]:
        out = ops("search", "--json", *args)
        assert out.exit_code == 0, out.output
        return {hit["id"] for hit in json.loads(out.output)}

    assert ids("kiwi") == {"old001", "new001"}
    assert ids("kiwi", "--role", "user") == {"old001"}
    assert ids("kiwi", "--role", "assistant") == {"new001"}
    assert ids("kiwi", "--tool", "write") == {"new001"}
    assert ids("kiwi", "--since", "2025-01-01") == {"new001"}
    store.archive(store.resolve("old001").path)
    assert ids("kiwi") == {"new001"}
    assert ids("kiwi", "--archived") == {"old001", "new001"}
    bad = ops("search", "kiwi", "--since", "last tuesday")
    assert bad.exit_code != 0 and "--since" in bad.output


def test_hits_are_ranked_with_highlighted_snippets(store, ops) -> None:
    from helpers.sessions import make_document, write_session

    strong = make_document("strong1", first="authentication fails: authentication token expired")
    strong["messages"].append({"role": "assistant", "content": "The authentication flow is odd."})
    weak = make_document("weak01", first="Something else entirely")
    weak["messages"].append({"role": "assistant", "content": "By the way, authentication."})
    for doc in (weak, strong):
        write_session(store.session_dir, doc)
    hits = json.loads(ops("search", "authentication", "--json").output)
    assert [h["id"] for h in hits] == ["strong1", "weak01"]
    top = hits[0]
    assert top["title"].startswith("authentication fails")
    spans = [top["snippet"][s:e] for s, e in top["highlights"]]
    assert spans and all(s.lower() == "authentication" for s in spans)
    text = ops("search", "authentication").output
    assert "[authentication]" in text and "strong1" in text  # marked when not a terminal
    assert len(json.loads(ops("search", "authentication", "--json", "--limit", "1").output)) == 1


def test_search_still_works_without_and_after_deleting_the_index(store, ops, taurus_home) -> None:
    from helpers.sessions import make_document, write_session

    write_session(store.session_dir, make_document("idx001", first="find the walrus"))
    assert ops_paths(ops, "walrus")
    (taurus_home / "index.sqlite").unlink()
    assert ops_paths(ops, "walrus")
    assert (taurus_home / "index.sqlite").exists()


def test_empty_query_is_one_clear_error(ops) -> None:
    result = ops("search", "  ")
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_a_reader_that_stops_early_is_not_an_error(store) -> None:
    import sys

    from helpers.sessions import make_document, write_session

    for n in range(5):
        write_session(store.session_dir, make_document(f"p{n:04d}", n_turns=1))
    # `true` has exited (closing the pipe) long before search writes its first line
    command = f"{sys.executable} -m taurus_ops.cli search -l login | true"
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


@pytest.mark.parametrize(
    "age",
    [
        "99999999d",
        "999999999999999999999999d",
        "9999999999999999999h",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_huge_since_age_is_a_one_line_error(ops, store, age) -> None:
    write_session(store.session_dir, make_document("since01"))
    for command in ("search", "stats"):
        args = (
            [command, "login", "--since", age] if command == "search" else [command, "--since", age]
        )
        result = ops(*args)
        assert result.exit_code != 0
        assert "--since" in result.output


def test_search_finds_text_after_a_nul_character_as_grep_does(store, ops) -> None:
    doc = {
        "sessionId": "nul001",
        "created": "2025-01-01T00:00:00Z",
        "updated": "2025-01-01T00:00:00Z",
        "messages": [
            {"role": "user", "content": "before\u0000 after zebrafish"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "x\u0000y"},
                    {"type": "text", "text": "Quagga"},
                ],
            },
        ],
    }
    write_session(store.session_dir, doc)
    for term in ("zebrafish", "quagga", "before"):
        assert "nul001" in ops("search", term).output, term
    assert "nul001" in ops("search", "--case-sensitive", "Quagga").output
    assert "nul001" not in ops("search", '"x y"').output  # no space invented
