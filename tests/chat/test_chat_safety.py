"""The chat's tools at their edges: confinement, odd names and text, bad input, huge output.

- a confinement matrix (symlinked file, folder and parent, ``..``, absolute paths,
  ``/proc/self/root``, a dangling link, planted temporary names, and links inside
  that lead inside) run against every file tool;
- file names of arbitrary bytes and text with lone surrogates and invalid UTF-8, from
  the tools to a saved session;
- any tool input, valid for the schema or not, ends as a tool_result (through the engine);
- ``bash`` output read in bounded memory, head and tail kept, the rest counted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.chat.client import Reply
from taurus_ops.chat.conversation import Conversation
from taurus_ops.chat.engine import Engine
from taurus_ops.chat.permissions import Permissions
from taurus_ops.chat.tools import TOOL_NAMES, TOOL_SPECS, CappedOutput, Tools, check_input
from taurus_ops.store import SessionStore
from taurus_ops.store.format import clean_text

SECRET = "SECRET from outside"
INSIDE = "INSIDE text"


# -- the confinement matrix --------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A working directory full of links, next to a folder it must never reach."""
    work = Path.cwd()
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "sub" / "deep.txt").write_text(SECRET + " (deep)\n")
    (work / "inside.txt").write_text(INSIDE + "\n")
    (work / "docs").mkdir()
    (work / "docs" / "guide.txt").write_text(INSIDE + " (guide)\n")
    (work / "nest").mkdir()
    os.symlink(outside / "secret.txt", work / "linkfile.txt")  # a file leading out
    os.symlink(outside, work / "linkdir")  # a folder leading out
    os.symlink(outside / "sub", work / "nest" / "inner")  # a parent deeper down leading out
    os.symlink(outside / "missing.txt", work / "dangling.txt")  # writing it would create it
    os.symlink("inside.txt", work / "goodlink.txt")  # inside, to inside: fine
    os.symlink("docs", work / "gooddir")
    return {"work": work, "outside": outside}


OUTSIDE_LINKS = 4  # linkfile.txt, linkdir, nest/inner, dangling.txt


def _cases() -> list[tuple[str, str, bool]]:
    """(case, path as the model gives it, whether the path is really inside)."""
    return [
        ("symlinked file", "linkfile.txt", False),
        ("symlinked folder", "linkdir/secret.txt", False),
        ("symlinked parent", "nest/inner/deep.txt", False),
        ("dangling link out", "dangling.txt", False),
        ("dot-dot", "../outside/secret.txt", False),
        ("dot-dot after a folder", "docs/../../outside/secret.txt", False),
        ("absolute", "{outside}/secret.txt", False),
        ("home", "~/../outside/secret.txt", False),
        ("/proc/self/root", "/proc/self/root{outside}/secret.txt", False),
        ("/proc/self/cwd", "/proc/self/cwd/../outside/secret.txt", False),
        ("link inside to a file inside", "goodlink.txt", True),
        ("link inside to a folder inside", "gooddir/guide.txt", True),
        ("dot-dot after a link, back inside", "linkdir/../work/inside.txt", True),
        ("absolute inside", "{work}/inside.txt", True),
        ("/proc/self/root inside", "/proc/self/root{work}/inside.txt", True),
    ]


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            out[key] = (
                os.readlink(path)
                if path.is_symlink()
                else (path.read_bytes() if path.is_file() else "dir")
            )
    return out


def _split(path: str) -> tuple[str, str]:
    folder, _, name = path.rpartition("/")
    return (folder or ".") if not path.startswith("/") or folder else "/", name


def check_read(tools: Tools, path: str, inside: bool, real: Path) -> None:
    result = tools.run("read", {"file": path})
    assert SECRET not in result.content
    if inside:
        assert not result.is_error and INSIDE in result.content, result.content
    else:
        assert result.is_error and "outside the working directory" in result.content


def check_write(tools: Tools, path: str, inside: bool, real: Path) -> None:
    was_link = os.path.islink(os.path.expanduser(path))
    result = tools.run("write", {"file": path, "content": "NEW\n"})
    if inside:
        assert not result.is_error, result.content
        assert real.read_text() == "NEW\n"
        assert os.path.islink(os.path.expanduser(path)) == was_link  # a link stays a link
    else:
        assert result.is_error and "outside the working directory" in result.content


def check_edit(tools: Tools, path: str, inside: bool, real: Path) -> None:
    old = "INSIDE" if inside else "SECRET"
    result = tools.run("edit", {"file": path, "old_string": old, "new_string": "EDITED"})
    if inside:
        assert not result.is_error, result.content
        assert real.read_text().startswith("EDITED")
    else:
        assert result.is_error and "outside the working directory" in result.content


def check_grep(tools: Tools, path: str, inside: bool, real: Path) -> None:
    result = tools.run("grep", {"pattern": "SECRET|INSIDE", "path": path})
    assert SECRET not in result.content
    if inside:
        assert not result.is_error and INSIDE in result.content, result.content
    else:
        assert result.is_error and "outside the working directory" in result.content


def check_glob(tools: Tools, path: str, inside: bool, real: Path) -> None:
    folder, name = _split(path)
    result = tools.run("glob", {"pattern": name, "path": folder})
    listed = [line for line in result.content.splitlines() if not line.startswith("[")]
    if inside:
        assert not result.is_error and [Path(x).name for x in listed] == [name], result
    elif result.is_error:
        assert "outside the working directory" in result.content
    else:  # the folder is inside and the name a link leading out: skipped, and said so
        assert (
            listed == ["no files match"] and "skipped 1 symlink leading outside" in result.content
        )


CHECKS = {
    "read": check_read,
    "write": check_write,
    "edit": check_edit,
    "grep": check_grep,
    "glob": check_glob,
}
FILE_TOOLS = [name for name in TOOL_NAMES if name != "bash"]


def test_the_matrix_covers_every_file_tool():
    assert sorted(CHECKS) == sorted(FILE_TOOLS)


@pytest.mark.parametrize("tool", FILE_TOOLS)
@pytest.mark.parametrize(("case", "raw", "inside"), _cases(), ids=[c[0] for c in _cases()])
def test_confinement_matrix(tree, tool, case, raw, inside):
    path = raw.format(work=tree["work"], outside=tree["outside"])
    real = Path(os.path.realpath(os.path.expanduser(path)))
    before = _snapshot(tree["outside"])
    CHECKS[tool](Tools(tree["work"]), path, inside, real)
    assert _snapshot(tree["outside"]) == before  # nothing outside was written or created


@pytest.mark.parametrize("git", [False, True], ids=["plain folder", "git work tree"])
def test_grep_and_glob_skip_every_link_leading_out_and_say_so(tree, git):
    if git:
        subprocess.run(["git", "init", "-q"], check=True)
    tools = Tools(tree["work"])
    found = tools.run("grep", {"pattern": "SECRET|INSIDE"})
    assert SECRET not in found.content and not found.is_error
    assert f"skipped {OUTSIDE_LINKS} symlinks leading outside" in found.content
    hits = {line.split(":")[0] for line in found.content.splitlines() if ":" in line[:40]}
    assert {"inside.txt", "docs/guide.txt", "goodlink.txt"} <= hits
    listed = tools.run("glob", {"pattern": "**/*.txt"})
    names = set(listed.content.splitlines()[:-1])
    assert {"inside.txt", "goodlink.txt", "docs/guide.txt"} <= names
    assert not any("secret" in n or "deep" in n or "dangling" in n for n in names), names
    assert listed.content.endswith(
        f"[skipped {OUTSIDE_LINKS} symlinks leading outside the working directory: "
        "dangling.txt, linkdir, linkfile.txt, nest/inner]"
    )


def test_a_link_loop_inside_is_walked_once(tree):
    os.symlink("..", tree["work"] / "docs" / "up")
    tools = Tools(tree["work"])
    listed = tools.run("glob", {"pattern": "**/guide.txt"}).content.splitlines()
    assert listed[0] == "docs/guide.txt" and len([x for x in listed if "guide" in x]) == 1


def test_a_symlink_loop_is_an_error_result_and_never_hangs_a_walk(tree):
    os.symlink("loop", tree["work"] / "loop")
    tools = Tools(tree["work"])
    result = tools.run("read", {"file": "loop"})
    assert result.is_error and "symlink that cannot be followed" in result.content
    assert INSIDE in tools.run("grep", {"pattern": "INSIDE"}).content
    assert "inside.txt" in tools.run("glob", {"pattern": "*"}).content
    assert tools.run("write", {"file": "loop/x", "content": "x"}).is_error


def test_grep_never_blocks_on_a_fifo(tree):
    os.mkfifo(tree["work"] / "pipe.txt")
    tools = Tools(tree["work"])
    assert INSIDE in tools.run("grep", {"pattern": "INSIDE"}).content
    result = tools.run("read", {"file": "pipe.txt"})
    assert result.is_error and "not a regular file" in result.content


@pytest.mark.parametrize("tool", ["write", "edit"])
def test_a_planted_temporary_name_is_never_written_through(tree, tool, monkeypatch):
    import taurus_ops.store.atomic as atomic

    work, outside = tree["work"], tree["outside"]
    legacy = work / ".inside.txt.taurus-tmp"  # the fixed name older versions wrote through
    os.symlink(outside / "planted-legacy.txt", legacy)
    planted = work / ".inside.txt.tmp-guessed"
    os.symlink(outside / "planted.txt", planted)
    args = {"file": "inside.txt", "content": "NEW\n"}
    if tool == "edit":
        args = {"file": "inside.txt", "old_string": "INSIDE", "new_string": "NEW"}
    before = _snapshot(outside)
    tools = Tools(work)
    assert not tools.run(tool, args).is_error  # the random name: done, the legacy link ignored
    assert _snapshot(outside) == before and os.readlink(legacy) == str(
        outside / "planted-legacy.txt"
    )
    # a name guessed and planted before the write: the exclusive create refuses it
    monkeypatch.setattr(atomic, "temp_name", lambda target: planted)
    (work / "inside.txt").write_text(INSIDE + "\n")
    result = tools.run(tool, args)
    # (every retry meets the same planted name, so the write gives up)
    assert result.is_error and "no free temporary name" in result.content
    assert _snapshot(outside) == before
    assert (work / "inside.txt").read_text() == INSIDE + "\n" and planted.is_symlink()


def test_write_keeps_a_files_mode_and_gives_a_new_one_the_umask(tree):
    tools = Tools(tree["work"])
    script = tree["work"] / "run.sh"
    script.write_text("echo old\n")
    os.chmod(script, 0o751)
    assert not tools.run("write", {"file": "run.sh", "content": "echo new\n"}).is_error
    assert script.stat().st_mode & 0o7777 == 0o751
    umask = os.umask(0o022)
    try:
        assert not tools.run("write", {"file": "new/fresh.txt", "content": "x"}).is_error
    finally:
        os.umask(umask)
    assert (tree["work"] / "new" / "fresh.txt").stat().st_mode & 0o777 == 0o644
    assert not [n for n in os.listdir(tree["work"]) if ".tmp-" in n]


def test_extra_roots_are_allowed_too(tree):
    tools = Tools(tree["work"], extra_roots=[tree["outside"] / "sub"])
    assert "deep" in tools.run("read", {"file": "nest/inner/deep.txt"}).content
    assert tools.run("read", {"file": "linkfile.txt"}).is_error
    assert (
        not Tools(tree["work"], allow_outside_cwd=True)
        .run("read", {"file": "linkfile.txt"})
        .is_error
    )


# -- names and text that are not UTF-8 ------------------------------------------------------------
odd_names = st.binary(min_size=1, max_size=12).filter(
    lambda b: not set(b"/\0\n") & set(b) and b not in (b".", b"..")
)
odd_text = st.one_of(
    st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=30),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(st.sampled_from(["\ud800", "\udfff", "\udce9", "ok", "é", "\n"]), max_size=6).map(
        "".join
    ),
)
FUZZ = settings(
    max_examples=int(os.environ.get("CHAT_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class QuietUI:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: "no" if name == "ask_permission" else None


def run_engine(
    folder: Path, uses: list[dict[str, Any]], user_text: str = "go", model_text: str = "done"
) -> dict[str, Any]:
    """One turn through the real engine: the model asks for ``uses``, then says
    ``model_text``; returns the session document read back from the saved file."""
    store = SessionStore(folder / "sessions")
    session = store.create(cwd=os.fsdecode(folder))
    conversation = Conversation(session, lambda: store.save(session))
    replies = [
        Reply(content=uses, stop_reason="tool_use", model="m"),
        Reply(content=[{"type": "text", "text": model_text}], stop_reason="end_turn", model="m"),
    ]

    def send(history: list[dict[str, Any]], ui: Any) -> Reply:
        return replies.pop(0)

    tools = Tools(folder / "work", bash_timeout=5, output_limit=2000)
    permissions = Permissions.build(["*"], [], interactive=False)
    Engine(conversation, send, tools, permissions, QuietUI()).turn(user_text)
    raw = Path(session.path or "").read_bytes()
    return json.loads(raw.decode("utf-8"))  # strict: the file is valid UTF-8 JSON


def assert_paired(doc: dict[str, Any]) -> None:
    """Every tool_use has exactly one tool_result in the next message, and one toolCalls entry."""
    messages = doc["messages"]
    for index, message in enumerate(messages):
        content = message["content"]
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        uses = [b["id"] for b in content if b["type"] == "tool_use"]
        if not uses:
            continue
        following = messages[index + 1]["content"]
        results = [b["tool_use_id"] for b in following if b["type"] == "tool_result"]
        assert sorted(results) == sorted(uses)
    calls = [c["toolUseId"] for c in doc["toolCalls"]]
    every_use = [
        b["id"]
        for m in messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    assert sorted(calls) == sorted(every_use)


@FUZZ
@given(names=st.lists(odd_names, min_size=1, max_size=4, unique=True), body=st.binary(max_size=40))
def test_file_names_of_any_bytes_reach_the_session_as_text(names, body):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        work = folder / "work"
        os.makedirs(os.path.join(os.fsencode(work), b"sub\xff"))
        for name in names:
            with open(os.path.join(os.fsencode(work), b"sub\xff", name), "wb") as handle:
                handle.write(b"needle " + body.replace(b"\0", b"") + b"\n")
        uses = [
            {"type": "tool_use", "id": "t1", "name": "glob", "input": {"pattern": "**/*"}},
            {"type": "tool_use", "id": "t2", "name": "grep", "input": {"pattern": "needle"}},
            {"type": "tool_use", "id": "t3", "name": "bash", "input": {"command": "ls sub*"}},
        ]
        doc = run_engine(folder, uses)
        assert_paired(doc)
        results = doc["messages"][2]["content"]
        assert all(not r.get("is_error") for r in results[:2]), results
        glob_lines = results[0]["content"].split("\n")
        shown = {clean_text(os.fsdecode(n)) for n in names}  # U+FFFD for each bad byte
        assert {line.split("/", 1)[1] for line in glob_lines} == shown
        assert all(line.startswith("sub\ufffd/") for line in glob_lines)
        assert len(results[1]["content"].split("\n")) == len(names)
        assert doc["messages"][-1]["content"] == "done"  # the turn is kept


@FUZZ
@given(user=odd_text, model=odd_text, arg=odd_text)
def test_lone_surrogates_and_bad_bytes_never_stop_a_save(user, model, arg):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "work").mkdir()
        uses = [
            {"type": "tool_use", "id": "t1", "name": "read", "input": {"file": arg or "x"}},
            {
                "type": "tool_use",
                "id": "t2",
                "name": "write",
                "input": {"file": "w.txt", "content": arg},
            },
            {"type": "tool_use", "id": "t3", "name": "grep", "input": {"pattern": arg or "x"}},
        ]
        doc = run_engine(folder, uses, user_text="q " + user, model_text="a " + model)
        assert_paired(doc)
        assert doc["messages"][0]["content"].startswith("q ")
        assert doc["messages"][-1]["content"].startswith("a ")
        text = json.dumps(doc, ensure_ascii=False)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)  # every surrogate replaced


# -- tool input checked against the schema --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        ("read", {"file": "a", "offset": "abc"}, "offset must be an integer, not the string 'abc'"),
        ("read", {"file": "a", "limit": 0}, "limit must be at least 1, not 0"),
        ("read", {"file": "a", "offset": True}, "offset must be an integer, not true"),
        ("read", {}, "file is required"),
        ("read", {"file": 42}, "file must be a string, not the number 42"),
        ("read", ["a"], "the input must be a JSON object"),
        ("bash", {"command": "ls", "timeout": "soon"}, "timeout must be an integer"),
        ("glob", {"pattern": "*", "junk": [1]}, "unknown field 'junk'"),
        ("grep", {"pattern": "x", "ignore_case": "yes"}, "ignore_case must be true or false"),
        (
            "edit",
            {"file": "a", "old_string": None, "new_string": "b"},
            "old_string must be a string, not null",
        ),
    ],
)
def test_bad_input_is_refused_in_one_line_the_model_can_act_on(name, args, problem):
    _, found = check_input(name, args)
    assert found is not None and problem in found and "\n" not in found
    assert "the fields are" in found
    result = Tools(Path.cwd()).run(name, args)
    assert result.is_error and problem in result.content


def test_integral_floats_count_as_integers():
    assert check_input("read", {"file": "a", "offset": 3.0}) == ({"file": "a", "offset": 3}, None)
    assert check_input("read", {"file": "a", "offset": 3.5})[1] is not None


HARMLESS = ("true", "echo hi", "exit 3", "printf '\\xff'")


def _valid_input(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    schema = spec["input_schema"]
    kinds = {
        "string": st.text(max_size=20),
        "integer": st.integers(min_value=1, max_value=10**12),
        "boolean": st.booleans(),
    }
    if spec["name"] == "bash":  # real commands run: only harmless ones, briefly
        kinds = {**kinds, "string": st.sampled_from(HARMLESS), "integer": st.integers(1, 3)}
    required = {k: kinds[schema["properties"][k]["type"]] for k in schema["required"]}
    optional = {
        k: kinds[p["type"]] for k, p in schema["properties"].items() if k not in schema["required"]
    }
    return st.fixed_dictionaries(required, optional=optional)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)
any_input = st.one_of(
    *[_valid_input(spec).map(lambda a, n=spec["name"]: (n, a)) for spec in TOOL_SPECS],
    st.tuples(st.sampled_from([*TOOL_NAMES, "frobnicate", ""]), json_values),
    st.tuples(
        st.sampled_from(TOOL_NAMES),
        st.dictionaries(
            st.sampled_from(
                [
                    "file",
                    "offset",
                    "limit",
                    "pattern",
                    "path",
                    "content",
                    "old_string",
                    "new_string",
                    "command",
                    "timeout",
                    "include",
                    "ignore_case",
                    "x",
                ]
            ),
            json_values,
            max_size=4,
        ),
    ),
)


def _harmless(name: str, args: Any) -> Any:
    """The input with any bash command not in HARMLESS made ``true`` (commands really run)."""
    command = args.get("command") if isinstance(args, dict) else None
    if name == "bash" and isinstance(command, str) and command not in HARMLESS:
        return {**args, "command": "true"}
    return args


@FUZZ
@given(calls=st.lists(any_input, min_size=1, max_size=4))
def test_any_tool_input_ends_as_a_tool_result(calls):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "work").mkdir()
        (folder / "work" / "a").write_bytes(b"caf\xe9 latin-1\n")  # edit refuses it politely
        uses = [
            {"type": "tool_use", "id": f"t{i}", "name": name, "input": _harmless(name, args)}
            for i, (name, args) in enumerate(calls)
        ]
        doc = run_engine(folder, uses)
        assert_paired(doc)
        results = doc["messages"][2]["content"]
        for call, result in zip(doc["toolCalls"], results, strict=True):
            assert call["outcome"] in ("ok", "error")
            assert call["outcome"] == ("error" if result.get("is_error") else "ok")
            assert isinstance(result["content"], str) and result["content"]
            assert "Traceback" not in result["content"]
        assert doc["messages"][-1]["content"] == "done"


# -- bash output in bounded memory ----------------------------------------------------------------
def test_capped_output_keeps_head_and_tail_and_counts_the_rest():
    kept = CappedOutput(10, 5)
    data = "".join(f"{n}," for n in range(2000)).encode()
    for start in range(0, len(data), 7):
        kept.add(data[start : start + 7])
    assert bytes(kept.head) == data[:10] and bytes(kept.tail) == data[-5:]
    assert kept.dropped == len(data) - 15
    assert (
        kept.text()
        == f"{data[:10].decode()}\n[... {len(data) - 15} bytes dropped ...]\n{data[-5:].decode()}"
    )
    cut = CappedOutput(4, 2)  # a character cut at either edge is dropped whole, and counted
    cut.add(("aaaé" + "x" * 20 + "éb").encode())  # 28 bytes: "aaa" and "b" are whole
    assert cut.text() == "aaa\n[... 24 bytes dropped ...]\nb"


@given(
    chunks=st.lists(st.binary(max_size=50), max_size=30),
    head=st.integers(0, 40),
    tail=st.integers(0, 40),
)
def test_capped_output_is_exact_for_any_stream(chunks, head, tail):
    kept = CappedOutput(head, tail)
    for chunk in chunks:
        kept.add(chunk)
    data = b"".join(chunks)
    assert kept.total == len(data)
    if len(data) <= head + tail:
        assert bytes(kept.head + kept.tail) == data and kept.dropped == 0
    else:
        assert bytes(kept.head) == data[:head]
        assert bytes(kept.tail) == (data[len(data) - tail :] if tail else b"")
        assert kept.dropped == len(data) - head - tail
        said = re.search(r"\n\[\.\.\. (\d+) bytes? dropped \.\.\.\]\n", kept.text())
        assert said and kept.dropped <= int(said.group(1)) <= kept.dropped + 6  # + cut characters


def test_bash_keeps_head_and_tail_of_a_long_output():
    tools = Tools(Path.cwd(), output_limit=3000)
    result = tools.run("bash", {"command": "seq 1 300000"})
    total = len("".join(f"{n}\n" for n in range(1, 300001)))
    assert not result.is_error and len(result.content) <= 3000
    assert result.content.startswith("1\n2\n3\n") and result.content.endswith("299999\n300000\n")
    match = re.fullmatch(r"(.*)\n\[\.\.\. (\d+) bytes dropped \.\.\.\]\n(.*)", result.content, re.S)
    assert match, result.content
    head, dropped, tail = match.group(1), int(match.group(2)), match.group(3)
    assert dropped == total - len(head) - len(tail) > 0  # every byte is kept or counted
    assert len(head) + len(tail) > 2000  # most of the room is used


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from taurus_ops.chat.tools import Tools

    def peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    tools = Tools(Path.cwd(), bash_timeout=60, output_limit=30000)
    tools.run("bash", {"command": "true"})
    before = peak_kb()
    started = time.monotonic()
    result = tools.run("bash", {"command": sys.argv[1]})
    print(json.dumps({"before": before, "after": peak_kb(), "seconds": time.monotonic() - started,
                      "length": len(result.content), "error": result.is_error,
                      "marked": "bytes dropped ...]" in result.content,
                      "head": result.content[:20], "tail": result.content[-300:]}))
    """
)


@pytest.mark.parametrize("command", ["yes", "head -c 1500000000 /dev/zero | tr '\\0' x"])
def test_bash_huge_output_stays_in_bounded_memory_and_stops_early(command):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to measure the peak memory")
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, command], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    grown_mb = (seen["after"] - seen["before"]) / 1024
    assert grown_mb < 64, seen  # the whole output would be hundreds of MB, or unbounded
    assert seen["seconds"] < 20, seen  # stopped by the output, long before the 60 s timeout
    assert seen["error"] and seen["length"] <= 30000 and seen["marked"]
    assert seen["head"].startswith(("y\ny\n", "xxxx"))  # the head of the output is kept
    assert "far more than chat.outputLimit keeps" in seen["tail"]


def test_bash_waits_for_a_command_that_prints_little_and_times_out_a_silent_one():
    tools = Tools(Path.cwd(), bash_timeout=1)
    started = time.monotonic()
    slow = tools.run("bash", {"command": "echo begun; sleep 30"})
    assert slow.is_error and slow.content.startswith("begun") and "timed out" in slow.content
    assert time.monotonic() - started < 10
    assert tools.run("bash", {"command": "printf 'a\\xffb'"}).content == "a\ufffdb"
