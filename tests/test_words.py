import pytest

from taurus_ops.words import human_size, plural


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


@pytest.mark.parametrize(
    ("size", "column", "page"),
    [
        (0, "0B", "0 B"),
        (1023, "1023B", "1023 B"),
        (1024, "1.0K", "1.0 KB"),
        (1536, "1.5K", "1.5 KB"),
        (10 * 1024, "10K", "10 KB"),
        (20 * 1024**2, "20M", "20 MB"),
        (3 * 1024**3 // 2, "1.5G", "1.5 GB"),
        (5 * 1024**4, "5120G", "5120 GB"),
    ],
)
def test_human_size_column_and_page_forms(size: int, column: str, page: str) -> None:
    assert human_size(size) == column
    assert human_size(size, spaced=True) == page
