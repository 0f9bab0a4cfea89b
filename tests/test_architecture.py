"""The package's layers only call downward: cli -> chat -> ops -> store/config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "taurus_ops"
RANK = {
    "cli": 4,
    "chat": 3,
    "web": 3,
    "ops": 2,
    "store": 1,
    "config": 1,
    "remote": 1,
    "errors": 0,
    "words": 0,
    "__init__": 0,
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):  # function-level (lazy) imports count too
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("taurus_ops")
        ):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("taurus_ops")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_only_go_down(path: Path) -> None:
    rel = path.relative_to(PACKAGE).with_suffix("")
    own = rel.parts[0]  # the sub-package, or a top-level module's own name
    own_rank = RANK.get(own, 0)
    for module in imports(path):
        target = layer_of(module)
        assert RANK.get(target, 0) <= own_rank, (
            f"{rel} ({own}) imports {module} ({target}), a higher layer"
        )


def _imports_anthropic(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "anthropic":
            return True
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "anthropic" for a in node.names
        ):
            return True
    return False


def test_only_the_chat_client_imports_the_sdk() -> None:
    users = sorted(str(p.relative_to(PACKAGE)) for p in MODULES if _imports_anthropic(p))
    assert users == ["chat/client.py"]


def test_the_web_viewer_reaches_the_layers_below_through_its_adapter_only() -> None:
    """``web/data.py`` is the one module of ``web`` that imports ops, store or config."""
    users = sorted(
        str(p.relative_to(PACKAGE))
        for p in MODULES
        if p.relative_to(PACKAGE).parts[0] == "web"
        and any(layer_of(m) in ("ops", "store", "config") for m in imports(p))
    )
    assert users == ["web/data.py"]


@pytest.mark.parametrize(("one", "other"), [("web", "chat"), ("chat", "web")])
def test_the_web_viewer_and_the_chat_never_import_each_other(one: str, other: str) -> None:
    for path in MODULES:
        if path.relative_to(PACKAGE).parts[0] == one:
            assert all(layer_of(m) != other for m in imports(path)), f"{path} imports {other}"


MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80


def test_no_module_or_function_is_too_long_to_read() -> None:
    """No module over 700 lines, no function over 80: a long one is split into named steps."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(PACKAGE.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{where}:{node.lineno} {node.name}: {size} lines")
    assert not long, "\n".join(long)


def test_the_index_sql_lives_only_in_store() -> None:
    """search, stats, the picker and the viewer ask the index through typed methods: a
    schema change touches store/ alone."""
    import re

    sql = re.compile(r"[\"'](SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET) ")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if sql.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
