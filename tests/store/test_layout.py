"""Large sessions read a message at a time, and saves that copy the unchanged messages' bytes.

The reader must give exactly what parsing the whole file gives, whatever the file's
formatting; a save must leave exactly the document in memory, whatever was changed
since the last load or save and whatever happened to the file meanwhile.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.store import SessionStore
from taurus_ops.store import format as fmt
from taurus_ops.store.layout import document_bytes, load_session, save_document
from taurus_ops.store.mend import mend_tool_uses
from taurus_ops.store.session import parse_session

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30)}),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": st.text(min_size=1, max_size=8),
            "name": st.just("read"),
            "input": st.dictionaries(st.text(max_size=5), json_values, max_size=2),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": st.text(max_size=8), "content": st.text()}
    ),
)
message_values = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]),
        "content": st.text(max_size=40) | st.lists(blocks, max_size=3),
    },
    optional={"usage": json_values, "timestamp": st.text(max_size=24), "x": json_values},
)
documents = st.builds(
    lambda messages, extra, calls: {
        "sessionId": "abc123",
        "created": "2025-01-18T10:23:45.123Z",
        "updated": "2025-01-18T10:30:00.000Z",
        **extra,
        "messages": messages,
        "toolCalls": calls,
    },
    st.lists(message_values, max_size=6),
    st.dictionaries(
        st.sampled_from(["title", "model", "usage", "cwd", "zz"]), json_values, max_size=3
    ),
    st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=3),
)

FORMATS = {
    "taurus": fmt.dumps,
    "compact": lambda doc: json.dumps(doc, separators=(",", ":")).encode(),
    "stdlib indent 2": lambda doc: json.dumps(doc, indent=2, ensure_ascii=False).encode(),
    "stdlib indent 4": lambda doc: json.dumps(doc, indent=4).encode(),
    "crlf": lambda doc: fmt.dumps(doc).replace(b"\n", b"\r\n"),
    "tabs": lambda doc: json.dumps(doc, indent="\t").encode(),
}


def _serialisable(doc: dict[str, Any]) -> bool:
    try:
        orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=documents, form=st.sampled_from(sorted(FORMATS)))
def test_read_a_message_at_a_time_is_the_whole_file_parse(
    tmp_path: Path, doc: dict[str, Any], form: str
) -> None:
    path = tmp_path / "2025-01-18_abc123.json"
    raw = FORMATS[form](doc)
    path.write_bytes(raw)
    streamed = load_session(path, stream_from=0)
    assert streamed.data == parse_session(raw, path).data
    if form in ("taurus", "stdlib indent 2") and doc["messages"] and all(doc["messages"]):
        image = streamed.image
        assert image is not None
        for index, message in enumerate(streamed.messages):
            start = image.base + (image.ends[index - 1] + 1 if index else 0)
            assert fmt.loads(raw[start : image.base + image.ends[index]]) == message
    elif form in ("compact", "stdlib indent 4", "crlf", "tabs"):
        assert streamed.image is None  # not the layout: read whole, as before


items = st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values
after_messages = st.builds(
    lambda calls, more: {"toolCalls": calls, **more},
    st.lists(items, max_size=6),
    st.dictionaries(
        st.sampled_from(["checkpoints", "zz", 'x"y']),
        st.lists(items, max_size=6) | json_values,
        max_size=2,
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=documents, after=after_messages, form=st.sampled_from(["taurus", "stdlib indent 2"]))
def test_the_arrays_after_the_messages_cut_out_and_read_in_blocks_are_the_whole_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], after: Any, form: str
) -> None:
    """A large tail (toolCalls of a long session) has its arrays of objects read a few
    items at a time: here every tail is large and every item a block of its own."""
    from taurus_ops.store import layout

    monkeypatch.setattr(layout, "TAIL_WHOLE", 0)
    monkeypatch.setattr(layout, "ITEMS_BLOCK", 1)
    doc = {**{k: v for k, v in doc.items() if k != "toolCalls"}, **after}
    path = tmp_path / "2025-01-18_abc123.json"
    raw = FORMATS[form](doc)
    path.write_bytes(raw)
    assert load_session(path, stream_from=0).data == parse_session(raw, path).data


def test_long_integers_lone_surrogates_and_look_alike_keys_read_as_a_whole_parse(
    tmp_path: Path,
) -> None:
    """The exact reader still serves what orjson alone would get wrong, message by message,
    and a nested key that looks like the array's line is not taken for it."""
    path = tmp_path / "2025-01-18_abc123.json"
    doc = {
        "sessionId": "abc123",
        "project": {"messages": [{"role": "user", "content": "not these"}]},
        "messages": [
            {"role": "user", "content": "a", "n": 2**70 + 1},
            {"role": "assistant", "content": "b", "exact": 123456789012345678901234567890},
            {"role": "user", "content": "c"},
        ],
    }
    raw = fmt.dumps(doc).replace(b'"c"', b'"\\ud800c"')
    path.write_bytes(raw)
    session = load_session(path, stream_from=0)
    assert session.data == parse_session(raw, path).data
    assert session.messages[0]["n"] == 2**70 + 1
    assert session.messages[2]["content"] == "\ufffdc"
    assert session.image is not None


def test_many_long_digit_runs_across_blocks_read_exactly(tmp_path: Path) -> None:
    """Digit runs in strings and numbers past 64 bits, in most messages of a file read in
    many blocks: each message that holds one is read exactly, the others by orjson."""
    path = tmp_path / "2025-01-18_abc123.json"
    messages = [
        {"role": "user", "content": f"order {10**25 + n} " * (n % 7), "n": 2**64 + n * (n % 3)}
        for n in range(6000)
    ]
    raw = fmt.dumps({"sessionId": "abc123", "messages": messages})
    assert len(raw) > 1 << 20  # more than one block
    path.write_bytes(raw)
    session = load_session(path, stream_from=0)
    assert session.messages == messages
    assert session.data == parse_session(raw, path).data and session.image is not None


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # cut off mid-write
        lambda raw: raw + b"garbage",
        lambda raw: raw.replace(b'"role": "user"', b'"role": "user",, ', 1),
        lambda raw: raw.replace(b"\n  ]", b"\n  ", 1),
    ],
    ids=["cut", "trailing", "bad-message", "unclosed"],
)
def test_a_damaged_file_gives_the_whole_parse_error(tmp_path: Path, damage: Any) -> None:
    from helpers.sessions import make_document

    from taurus_ops.errors import SessionFormatError

    path = tmp_path / "2025-01-18_abc123.json"
    raw = damage(fmt.dumps(make_document("abc123", n_turns=20)))
    path.write_bytes(raw)
    with pytest.raises(SessionFormatError) as streamed:
        load_session(path, stream_from=0)
    with pytest.raises(SessionFormatError) as whole:
        parse_session(raw, path)
    assert str(streamed.value) == str(whole.value)


@settings(max_examples=150, deadline=None)
@given(doc=documents)
def test_a_save_writes_format_dumps_bytes(doc: dict[str, Any]) -> None:
    written = document_bytes(doc)
    assert fmt.loads(written) == fmt.loads(fmt.dumps(doc))
    if _serialisable(doc):
        assert written == fmt.dumps(doc)


# -- saves after changes -------------------------------------------------------------------
def _message(rng: random.Random, n: int) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"role": "user", "content": f"message {n} " + "x" * rng.randint(0, 300)}
    return {
        "role": "assistant",
        "content": [
            {"type": "text", "text": f"reply {n}"},
            {"type": "tool_use", "id": f"t{n}", "name": "read", "input": {"file": "a.py"}},
        ],
        "usage": {"inputTokens": n, "outputTokens": 2},
    }


def _change(
    rng: random.Random, messages: list[dict[str, Any]], data: dict[str, Any], n: int
) -> str:
    """One change of the kinds Taurus makes (and a few more); returns its name."""
    kind = rng.choice(
        ["append", "append", "append", "last-in-place", "replace", "insert", "delete",
         "truncate", "field", "mend", "new-list", "nothing"]
    )  # fmt: skip
    where = rng.randrange(len(messages)) if messages else 0
    if kind == "append" or not messages:
        messages.append(_message(rng, n))
        return "append"
    if kind == "last-in-place":  # the chat adds a tool result to its last message
        last = messages[-1]
        if isinstance(last["content"], list):
            last["content"].append({"type": "text", "text": f"more {n}"})
        else:
            last["content"] += f" more {n}"
    elif kind == "replace":
        messages[where] = {**messages[where], "content": f"replaced {n}"}
    elif kind == "insert":
        messages.insert(where, _message(rng, n))
    elif kind == "delete":
        del messages[where]
    elif kind == "truncate":
        del messages[where:]
    elif kind == "field":
        data["title"] = f"title {n}"
        data.setdefault("toolCalls", []).append({"tool": "read", "n": n})
    elif kind == "mend":
        mend_tool_uses(messages)
    elif kind == "new-list":
        data["messages"] = [*messages]  # the same messages in a new list
    return kind


@pytest.mark.parametrize("seed", range(6))
def test_every_save_leaves_exactly_the_document_in_memory(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = SessionStore(tmp_path / "sessions")
    session = store.create("abc123")
    for n in range(120):
        session.messages.append(_message(rng, n))
    store.save(session)
    assert session.path is not None
    session = load_session(session.path, stream_from=0)
    reused = 0
    for n in range(120, 300):
        kind = _change(rng, session.messages, session.data, n)
        session.image = save_document(session.path, session.data, session.image, False, 0)
        assert session.path.read_bytes() == fmt.dumps(session.data), kind
        assert os.stat(session.path).st_mode & 0o777 == 0o600
        assert session.image is not None
        reused += session.image.copied > 0
    assert reused > 100  # most saves copied the unchanged messages


def test_appending_copies_all_but_the_last_message(tmp_path: Path) -> None:
    from helpers.sessions import make_document, write_session

    path = write_session(tmp_path, make_document("abc123", n_turns=400))
    session = load_session(path, stream_from=0)
    image = session.image
    assert image is not None and len(session.messages) == 1601
    session.messages.append({"role": "user", "content": "one more"})
    saved = save_document(path, session.data, image, durable=False)
    assert saved is not None
    assert saved.copied == image.ends[-2] > 64 << 10  # every message but the last saved one
    assert path.read_bytes() == fmt.dumps(session.data)


def _replace_with_a_copy(path: Path) -> None:
    raw = path.read_bytes()
    path.unlink()
    path.write_bytes(raw.replace(b"Thanks", b"THANKS"))  # a new inode, the same size


def _edit_in_place(path: Path) -> None:
    st = os.stat(path)
    with open(path, "r+b") as handle:  # the same inode and size, a new mtime
        raw = handle.read()
        handle.seek(0)
        handle.write(raw.replace(b"Thanks", b"THANKS"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _grow_keeping_the_mtime(path: Path) -> None:
    st = os.stat(path)
    with open(path, "r+b") as handle:  # the same inode and mtime, a new size
        raw = handle.read()
        handle.seek(0)
        handle.write(raw.replace(b"Thanks", b"Thanks!!"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    "change",
    [_replace_with_a_copy, _edit_in_place, _grow_keeping_the_mtime],
    ids=["new-inode", "new-mtime", "new-size"],
)
def test_a_file_changed_since_its_image_is_written_whole(tmp_path: Path, change: Any) -> None:
    from helpers.sessions import make_document, write_session

    path = write_session(tmp_path, make_document("abc123", n_turns=400))
    session = load_session(path, stream_from=0)
    change(path)
    session.messages.append({"role": "user", "content": "one more"})
    saved = save_document(path, session.data, session.image, durable=False)
    assert saved is not None and saved.copied == 0
    assert path.read_bytes() == fmt.dumps(session.data)
    assert b"THANKS" not in path.read_bytes()  # the document in memory, as ever


def test_a_big_session_loads_and_saves_within_twice_its_size(tmp_path: Path) -> None:
    """Peak memory (VmHWM) of a child process loading and saving a 24 MB session."""
    from helpers.sessions import make_document, write_session

    doc = make_document("big00001", n_turns=6000)
    for message in doc["messages"]:
        if isinstance(message["content"], list) and message["content"][0]["type"] == "tool_result":
            message["content"][0]["content"] = "the login handler checks the token " * 100
    path = write_session(tmp_path / "sessions", doc)
    size = path.stat().st_size
    assert size > 20 << 20
    probe = textwrap.dedent(
        f"""
        import gc, sys
        from pathlib import Path
        from taurus_ops.store import SessionStore
        def peak():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        store = SessionStore(Path({str(path.parent)!r}))
        gc.collect()
        before = peak()
        session = store.load(Path({str(path)!r}))
        loaded = peak() - before
        session.messages.append({{"role": "user", "content": "one more"}})
        store.save(session)
        saved = peak() - before
        print(loaded, saved, session.image is not None and session.image.copied > 0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    loaded, saved, copied = int(out[0]), int(out[1]), out[2]
    assert loaded <= 2 * size, f"loading took {loaded / size:.2f}x the file"
    assert saved <= 2 * size, f"saving took {saved / size:.2f}x the file"
    assert copied == "True"
    assert fmt.loads(path.read_bytes())["messages"][-1] == {"role": "user", "content": "one more"}


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taurus_ops.store import SessionStore
    store = SessionStore(Path(sys.argv[1]))
    session = store.load(Path(sys.argv[2]))
    n = len(session.messages)
    print("ready", flush=True)
    while True:
        session.messages.append({"role": "user", "content": f"m{n}"})
        store.save(session)
        n += 1
    """
)


def test_sigkill_during_saves_that_copy_never_breaks_the_file(tmp_path: Path) -> None:
    """Writers of a 2 MB session killed mid-save: the file is always whole, and a prefix."""
    from helpers.sessions import make_document, write_session

    doc = make_document("abc123", n_turns=3000)
    path = write_session(tmp_path / "sessions", doc)
    base = len(doc["messages"])
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(7)
    previous = 0
    for _round in range(25):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path.parent), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        messages = json.loads(path.read_bytes())["messages"]
        assert messages[:base] == doc["messages"]
        added = messages[base:]
        assert added == [{"role": "user", "content": f"m{base + i}"} for i in range(len(added))]
        assert len(added) >= previous
        previous = len(added)
    assert previous > 10
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    assert len(leftovers) <= 25  # at most one temporary file per killed writer
