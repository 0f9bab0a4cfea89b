import pytest

from taurus_ops.words import plural


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 files"), (1, "1 file"), (2, "2 files"), (-1, "-1 files")]
)
def test_plural(count: int, expected: str) -> None:
    assert plural(count, "file") == expected


def test_irregular_plural() -> None:
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(5, "entry", "entries") == "5 entries"


def test_grouped_count() -> None:
    assert plural(10002, "session", grouped=True) == "10,002 sessions"
    assert plural(1, "session", grouped=True) == "1 session"
    assert plural(10002, "session") == "10002 sessions"
