"""Reference resolution: ids, prefixes, file names, names, paths, and every escape attempt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.sessions import make_document, write_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taurus_ops.errors import AmbiguousReference, InvalidReference, SessionNotFound
from taurus_ops.store import SessionStore


@pytest.fixture
def populated(store: SessionStore) -> SessionStore:
    write_session(store.session_dir, make_document("abc123"))
    write_session(store.session_dir, make_document("abd456"))
    write_session(store.session_dir, make_document("sprint_planning"))
    return store


@pytest.mark.parametrize(
    ("ref", "expected", "via"),
    [
        ("abc123", "abc123", "id"),
        ("abc1", "abc123", "prefix"),
        ("2025-01-18_abc123.json", "abc123", "file"),
        ("sprint_planning", "sprint_planning", "id"),
        ("sprint", "sprint_planning", "prefix"),
    ],
)
def test_resolves_ids_prefixes_and_file_names(
    populated: SessionStore, ref: str, expected: str, via: str
) -> None:
    found = populated.resolve(ref)
    assert (found.session_id, found.via, found.archived) == (expected, via, False)


def test_resolves_names_and_paths_inside_the_store(populated: SessionStore, monkeypatch) -> None:
    os.symlink("2025-01-18_abc123.json", populated.session_dir / "password-reset.json")
    assert populated.resolve("password-reset").session_id == "abc123"
    assert populated.resolve("password-reset.json").session_id == "abc123"
    monkeypatch.chdir(populated.session_dir)
    assert populated.resolve("./2025-01-18_abd456.json").session_id == "abd456"
    assert populated.resolve(str(populated.session_dir / "2025-01-18_abd456.json")).via == "path"


def test_ambiguous_prefix_and_unknown_id(populated: SessionStore) -> None:
    with pytest.raises(AmbiguousReference, match="matches 2 sessions"):
        populated.resolve("ab")
    with pytest.raises(SessionNotFound):
        populated.resolve("zzz999")


@pytest.mark.parametrize(
    "ref",
    [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "a/b",
        "names/with/slash",
        "~/.ssh/id_rsa",
        "abc 123",
        "abc;rm -rf",
        "a" * 65,
        "naïve",
        "x\0y",
        "..json",
        "../sessions/../../x.json",
    ],
)
def test_traversal_and_bad_tokens_are_refused(populated: SessionStore, ref: str) -> None:
    with pytest.raises((InvalidReference, SessionNotFound)) as info:
        populated.resolve(ref)
    assert isinstance(info.value, InvalidReference) or "outside" not in str(info.value)


def test_paths_outside_are_refused_even_when_they_exist(
    populated: SessionStore, tmp_path: Path
) -> None:
    outside = tmp_path / "2025-01-18_evil00.json"
    outside.write_text(populated.resolve("abc123").path.read_text())
    with pytest.raises(InvalidReference, match="outside the session directory"):
        populated.resolve(str(outside))
    with pytest.raises(InvalidReference):
        populated.resolve(str(populated.session_dir / ".." / outside.name))


def test_a_name_pointing_outside_is_refused(populated: SessionStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.symlink(secret, populated.session_dir / "sneaky.json")
    with pytest.raises(InvalidReference, match="outside"):
        populated.resolve("sneaky")
    os.symlink("2025-01-18_gone00.json", populated.session_dir / "dangling.json")
    with pytest.raises(SessionNotFound, match="missing"):
        populated.resolve("dangling")


def test_cli_refuses_escapes_with_one_line(populated: SessionStore, ops) -> None:
    for ref in ("../../etc/passwd", "/etc/passwd", "a b"):
        result = ops("show", ref)
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and "Error:" in result.output
    missing = ops("show", "nope42")
    assert missing.exit_code == 1 and "no session matches" in missing.output


def test_exact_id_beats_a_longer_prefix_match(store: SessionStore) -> None:
    write_session(store.session_dir, make_document("abc"))
    write_session(store.session_dir, make_document("abcdef"))
    assert store.resolve("abc").session_id == "abc"


def test_active_copy_wins_over_archived_duplicate(store: SessionStore) -> None:
    path = write_session(store.session_dir, make_document("dup001"))
    write_session(store.archive_dir, make_document("dup001"))
    found = store.resolve("dup001")
    assert found.path == path and not found.archived


# -- an id looked up among many files: only names holding it are looked at --------------------
_ID_CHARS = "ab0_-"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ids=st.lists(st.text(_ID_CHARS, min_size=1, max_size=6), min_size=1, max_size=12),
    archived=st.lists(st.text(_ID_CHARS, min_size=1, max_size=6), max_size=4),
    ref=st.text(_ID_CHARS, min_size=1, max_size=4),
)
def test_an_id_or_prefix_resolves_as_a_look_at_every_file_would(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], archived: list[str], ref: str
) -> None:
    """The name test before a file is looked at changes no answer (a match, an ambiguity
    or none), over ids that hold, start with or end with each other, odd bytes included."""
    from taurus_ops.store import refs

    root = tmp_path_factory.mktemp("refs")
    sessions, archive = root / "sessions", root / "archive"
    sessions.mkdir()
    archive.mkdir()
    for n, sid in enumerate(ids):
        (sessions / f"2025-01-{n % 28 + 1:02d}_{sid}.json").write_text("{}")
    (sessions / f"2025-02-01_\udcff{ids[0]}.json").write_bytes(b"{}")  # not UTF-8
    for n, sid in enumerate(archived):
        (archive / f"2024-12-{n + 1:02d}_{sid}.json").write_text("{}")
    resolver = refs.Resolver(sessions, archive)

    def answer() -> tuple[str, str]:
        try:
            found = resolver.resolve(ref)
        except Exception as exc:  # the kind of answer and its words are compared
            return type(exc).__name__, str(exc)
        return found.via, str(found.path)

    quick = answer()
    every = refs.scan
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refs, "scan", lambda folder, containing=None: every(folder))
        assert answer() == quick
