"""Where things are, for tests in any folder under tests/."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent  # the checkout: README.md, pyproject.toml, benchmarks/
GOLDEN = TESTS / "golden"
ARTIFACTS = TESTS / "artifacts"
RECIPES = ROOT / "benchmarks" / "recipes"
