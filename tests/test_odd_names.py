"""File names that are not valid UTF-8, anywhere in the session, archive or templates folder.

Each such file is handled as the OS gives it: listed, searched, counted, backed up and
restored byte for byte (by Taurus and by plain ``tar -xzf``), noted by the doctor, and
never the cause of a failed run. Where a name must become text (JSON, the manifest,
the index, the terminal) it is stored reversibly or shown with U+FFFD.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.sessions import make_document
from helpers.strategies import (
    invalid_utf8,
    name_bytes,
    odd_text,
    session_like_names,
    undecodable_names,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.store import format as fmt

SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@contextlib.contextmanager
def fresh_home() -> Iterator[Path]:
    """A user home with TAURUS_HOME=~/.taurus, for one hypothesis example."""
    saved = {k: os.environ.get(k) for k in ("HOME", "TAURUS_HOME")}
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "user"
        user.mkdir()
        os.environ["HOME"] = str(user)
        os.environ["TAURUS_HOME"] = str(user / ".taurus")
        try:
            yield user
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _session_bytes(sid: str, word: str = "login") -> bytes:
    return fmt.dumps(make_document(sid, first=f"Help me debug the {word} issue"))


def plant(user: Path, odd: list[bytes], sessionish: list[bytes]) -> dict[bytes, bytes]:
    """Odd names in every folder a backup holds; returns {path bytes: content} of them."""
    taurus = user / ".taurus"
    folders = {
        "sessions": taurus / "sessions",
        "archive": taurus / "archive",
        "templates": taurus / "templates",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, mode=0o700)
    made: dict[bytes, bytes] = {}

    def put(path: bytes, data: bytes) -> None:
        if path in made or os.path.lexists(path):
            return
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600)
        made[path] = data

    base = os.fsencode(folders["sessions"])
    put(base + b"/2025-01-05_plain1.json", _session_bytes("plain1"))
    for n, name in enumerate(odd):
        put(base + b"/" + name, b"plain text %d\n" % n)
        sub = base + b"/sub-" + name
        os.makedirs(sub, mode=0o700, exist_ok=True)
        put(sub + b"/" + name + b".json", b'{"messages": []}\n')
        put(os.fsencode(folders["templates"]) + b"/" + name + b".json", b'{"messages": []}\n')
    for n, name in enumerate(sessionish):
        put(base + b"/" + name, _session_bytes(f"odd{n}"))
        put(os.fsencode(folders["archive"]) + b"/" + name, _session_bytes(f"old{n}"))
    return made


def tree(root: Path) -> dict[bytes, bytes]:
    """Every file and link under ``root``: relative path bytes -> content (or link target)."""
    out: dict[bytes, bytes] = {}
    top = os.fsencode(root)
    for folder, dirs, files in os.walk(top):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, top)
            if os.path.islink(path):
                out[rel] = b"-> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    out[rel] = handle.read()
    return out


def _backed_up(user: Path) -> dict[bytes, bytes]:
    taurus = user / ".taurus"
    return {
        k: v
        for part in ("sessions", "archive", "templates")
        for k, v in {
            os.fsencode(part) + b"/" + rel: data for rel, data in tree(taurus / part).items()
        }.items()
    }


ODD = st.lists(undecodable_names(8), min_size=1, max_size=3, unique=True)
SESSIONISH = st.lists(session_like_names(), min_size=1, max_size=3, unique=True)


# -- the store --------------------------------------------------------------------------------
@SETTINGS
@given(odd=ODD, sessionish=SESSIONISH, plain=st.lists(name_bytes(6), max_size=2))
def test_store_lists_every_odd_name(odd, sessionish, plain) -> None:
    from taurus_ops.store import SessionStore

    with fresh_home() as user:
        plant(user, odd + plain, sessionish)
        taurus = user / ".taurus"
        store = SessionStore(taurus / "sessions", taurus / "archive")
        files = {os.fsencode(p.name) for p in store.files()}
        assert set(sessionish) <= files
        summaries = store.summaries(archived=True)
        assert len(summaries) == len(store.files()) + len(store.files(archived=True))
        for summary in summaries:
            assert summary.error is None
            assert fmt.name_bytes(summary.id) is None  # an id is text: bytes as U+FFFD
            assert os.path.exists(summary.path)  # the path is the file's own
            store.load(Path(summary.path))
        json.dumps(fmt.clean([s.as_json() for s in summaries])).encode("utf-8")


@SETTINGS
@given(text=odd_text(), raw=invalid_utf8())
def test_store_saves_odd_text_as_valid_utf8(text, raw) -> None:
    """Lone surrogates and invalid bytes in a session never stop a save, and the file is
    always valid UTF-8 JSON that every reader (and jq) takes."""
    from taurus_ops.store import SessionStore

    with fresh_home() as user:
        store = SessionStore(user / ".taurus" / "sessions")
        session = store.create(None, cwd=text)
        session.messages.append({"role": "user", "content": text})
        session.messages.append({"role": "assistant", "content": fmt.decode_text(raw)})
        session.data[text] = [text, {text: raw.decode("utf-8", "surrogateescape")}]
        store.save(session)
        on_disk = session.path.read_bytes()
        data = json.loads(on_disk.decode("utf-8"))  # strict
        assert data["messages"][0]["content"] == fmt.clean_text(text)
        assert store.load(session.path).data == data


# -- backup -----------------------------------------------------------------------------------
@SETTINGS
@given(odd=ODD, sessionish=SESSIONISH)
def test_backup_restores_odd_names_byte_for_byte(odd, sessionish) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.ops.backup import create, layout, restore, verify

    with fresh_home() as user:
        plant(user, odd, sessionish)
        sessions = user / ".taurus" / "sessions"
        link = os.fsencode(sessions) + b"/" + odd[0] + b".json"
        target = sessions.joinpath(os.fsdecode(sessionish[0]))
        if not os.path.lexists(link):
            os.symlink(os.fsencode(target.name), link)  # a name link, itself not UTF-8
        before = _backed_up(user)
        created = create.create_backup(load_config())
        assert created.files == sum(1 for v in before.values() if not v.startswith(b"-> "))
        report = verify.verify_archive(created.path)
        assert report.ok, report.problems
        manifest = _manifest(created.path)
        assert any("pathBytes" in entry for entry in manifest["files"])

        extracted = user / "plain-tar"
        extracted.mkdir()
        done = subprocess.run(
            ["tar", "-xzf", str(created.path), "-C", str(extracted)],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0 and not done.stderr, done.stderr
        by_tar = {
            k: v
            for k, v in _backed_up(extracted).items()
            if not k.endswith(layout.MANIFEST_NAME.encode())
        }
        assert by_tar == before

        for part in ("sessions", "archive", "templates"):
            shutil.rmtree(user / ".taurus" / part)
        config = load_config()
        plan = restore.plan_restore(created.path, report, config)
        result = restore.execute_restore(plan, report, config.home)
        assert not result.failed
        assert _backed_up(user) == before


def _manifest(archive: Path) -> dict:
    import tarfile

    with tarfile.open(archive) as tar:
        member = next(m for m in tar if m.name.endswith("backup-manifest.json"))
        raw = tar.extractfile(member).read()
    return json.loads(raw.decode("utf-8"))  # strict: the manifest is valid UTF-8


def test_manifest_name_fields_round_trip() -> None:
    """The reversible form the manifest and the quarantine log use."""
    for name in ["plain.json", "café.json", "caf\udce9.json", "\udcff\udcfe", "a/\udce9/b"]:
        fields = fmt.name_fields("path", name)
        json.dumps(fields).encode("utf-8")
        assert fmt.name_from(json.loads(json.dumps(fields)), "path") == name
        assert ("pathBytes" in fields) == (fmt.name_bytes(name) is not None)
    with pytest.raises(ValueError):
        fmt.name_from({"path": "x", "pathBytes": "not base64!"}, "path")


# -- the index --------------------------------------------------------------------------------
@SETTINGS
@given(odd=ODD, sessionish=SESSIONISH)
def test_index_and_search_keep_odd_paths(odd, sessionish) -> None:
    from taurus_ops.ops.search import SearchQuery, search
    from taurus_ops.store import SessionStore
    from taurus_ops.store.index import Index

    with fresh_home() as user:
        plant(user, odd, sessionish)
        taurus = user / ".taurus"
        store = SessionStore(taurus / "sessions", taurus / "archive")
        plain = store.summaries(archived=True)  # read from the files
        with Index.for_dirs(taurus, store.session_dir, store.archive_dir) as index:
            report = index.rebuild()
            assert report.added == len(plain)
            assert index.check() == []
            hits = search(index, SearchQuery(terms=["login"], archived=True))
            want = {s.path for s in plain}
            assert {h.path for h in hits} == want  # the files' own paths, bytes and all
            assert all(os.path.exists(h.path) for h in hits)
        store.index_home = taurus
        indexed = store.summaries(archived=True)  # now read from the index
        assert [s.as_json() for s in indexed] == [s.as_json() for s in plain]


# -- the doctor -------------------------------------------------------------------------------
@SETTINGS
@given(sessionish=SESSIONISH)
def test_doctor_notes_odd_names_and_repairs_them_once(sessionish) -> None:
    from helpers.jobs import run_doctor

    with fresh_home() as user:
        plant(user, [], sessionish)  # each file's sessionId disagrees with its file name
        taurus = user / ".taurus"
        args = (taurus, taurus / "sessions", taurus / "archive")
        found = run_doctor(*args)
        noted = {p.path for p in found.problems if p.code == "name-encoding"}
        expected = {
            str(taurus / part / os.fsdecode(n))
            for part in ("sessions", "archive")
            for n in sessionish
        }
        assert noted == expected
        fixed = run_doctor(*args, fix=True)
        assert fixed.exit_code == 0, fixed.lines()
        again = run_doctor(*args)
        assert again.exit_code == 0 and again.remaining() == [], again.lines()
        log = next((taurus / "quarantine").glob("*/MANIFEST.jsonl")).read_bytes()
        originals = {
            fmt.name_from(json.loads(line), "original")
            for line in log.decode("utf-8").splitlines()  # strict: valid UTF-8
        }
        assert originals <= expected | {p for p in originals if fmt.name_bytes(p) is None}
        assert originals & expected
        json.dumps(fmt.clean(again.as_json()))  # what --json prints


# -- every command, as a real process ----------------------------------------------------------
ODD_FIXED = [b"caf\xe9.txt", b"\xff\xfe notes", b"r\xc3sum\xe9"]
SESSION_FIXED = [b"2025-01-01_ab\xe9.json", b"2025-01-02_\xed\xa0\x80x.json"]


def _run(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", *args],
        capture_output=True,
        env=env,
        timeout=120,
    )
    for stream in (done.stdout, done.stderr):
        assert b"Traceback" not in stream and b"Logging error" not in stream, stream.decode(
            "utf-8", "replace"
        )
    assert done.returncode in ok, (args, done.returncode, done.stderr)
    return done.stdout


class Planted:
    """A user home with odd names everywhere, and commands run as real processes with a
    strict UTF-8 output encoding (as on a desktop's en_US.UTF-8)."""

    def __init__(self, user: Path) -> None:
        self.user = user
        self.taurus = user / ".taurus"
        self.env = {
            **os.environ,
            "TAURUS_HOME": str(self.taurus),
            "PYTHONIOENCODING": "utf-8:strict",
        }
        plant(user, ODD_FIXED, SESSION_FIXED)
        self.before = _backed_up(user)

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        return _run(*args, env=self.env, ok=ok)

    def json(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        return json.loads(self.run(*args, "--json", ok=ok).decode("utf-8"))  # strict UTF-8


@pytest.fixture
def planted(taurus_home: Path, monkeypatch: pytest.MonkeyPatch) -> Planted:
    user = Path(os.environ["HOME"])
    shutil.rmtree(user)
    user.mkdir()
    monkeypatch.setenv("TAURUS_HOME", str(user / ".taurus"))
    return Planted(user)


def test_reading_commands_survive_odd_names(planted: Planted) -> None:
    """index, search, stats, list, template list: the odd files are there; -l gives the
    exact path bytes."""
    planted.run("index", "rebuild")
    listed = planted.run("search", "-l", "login").splitlines()
    assert os.fsencode(planted.taurus / "sessions") + b"/" + SESSION_FIXED[0] in listed
    assert len(planted.json("search", "login", "--archived")) == 2 * len(SESSION_FIXED) + 1
    assert planted.json("stats")["totalSessions"] == len(SESSION_FIXED) + 1
    assert len(planted.json("list", "--archived")) == 2 * len(SESSION_FIXED) + 1
    planted.run("list")
    planted.run("stats")
    assert len(planted.json("template", "list")) >= len(ODD_FIXED)
    planted.run("template", "list")


def test_backup_commands_survive_odd_names(planted: Planted) -> None:
    archive = planted.json("backup", "create")["path"]
    assert planted.json("backup", "verify", archive)["ok"] is True
    for part in ("sessions", "archive", "templates"):
        shutil.rmtree(planted.taurus / part)
    planted.run("backup", "restore", archive, "--dry-run")
    planted.run("backup", "restore", archive)
    assert _backed_up(planted.user) == planted.before


def test_export_doctor_cleanup_survive_odd_names(planted: Planted, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    planted.run("export", "--all", "-o", str(exports))
    assert {os.fsencode(p.name) for p in exports.iterdir()} >= {
        n.removesuffix(b".json") + b".md" for n in SESSION_FIXED
    }
    report = planted.json("doctor", ok=(0, 1))
    assert sum(p["code"] == "name-encoding" for p in report["problems"]) == 2 * len(SESSION_FIXED)
    planted.run("doctor", "--fix")
    planted.run("doctor")
    (planted.taurus / "config.yaml").write_text("sessions:\n  maxSessions: 1\n")
    planted.run("cleanup", "--dry-run")
    planted.run("cleanup")
    assert len(list((planted.taurus / "sessions").glob("*.json"))) == 1
    log = (planted.taurus / "logs" / "taurus-ops.log").read_bytes().decode("utf-8")  # valid
    assert "\ufffd" in log


def test_a_terminal_shows_the_replacement_mark(taurus_home: Path) -> None:
    sessions = taurus_home / "sessions"
    sessions.mkdir(parents=True)
    with open(os.fsencode(sessions) + b"/" + SESSION_FIXED[0], "wb") as handle:
        handle.write(_session_bytes("abc"))
    main, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "taurus_ops.cli", "list"],
            stdout=secondary,
            stderr=secondary,
            env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
            timeout=60,
        )
        os.close(secondary)
        secondary = -1
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 65536):
                shown += chunk
    finally:
        os.close(main)
        if secondary >= 0:
            os.close(secondary)
    assert done.returncode == 0, shown
    assert "2025-01-01_ab\ufffd".encode() in shown and b"ab\xe9" not in shown
