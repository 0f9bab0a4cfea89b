"""The search tools: grep and glob, and the walk of folders they share."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from taurus_ops.chat.confine import PathRefused
from taurus_ops.chat.tools.base import Keep, ToolBase, ToolError, ToolResult
from taurus_ops.store.format import decode_text
from taurus_ops.words import plural

MAX_MATCHES = 200
MAX_GLOB = 500
MAX_GREP_FILE = 2_000_000  # bytes; bigger files are skipped by grep
SKIP_DIRS = {".git", ".hg", ".svn"}


class SearchTools(ToolBase):
    """grep and glob, over the files a walk of the working directory reaches."""

    def walk(
        self,
        base: Path,
        skipped: list[str],
        keep_dir: Keep = lambda path, parts: True,
        keep_file: Keep = lambda path, parts: True,
    ) -> Iterator[tuple[Path, Path]]:
        """(path as reached, real path) of the regular files under the real folder ``base``.

        ``keep_dir`` and ``keep_file`` choose by path and parts relative to ``base``
        (.git, .hg and .svn are never entered). Each symlink among them is resolved by
        the confinement: one leading outside is not followed and is added to
        ``skipped``; one leading inside is followed (a folder once: no loops).
        """
        stack: list[tuple[Path, tuple[str, ...]]] = [(base, ())]
        seen: set[str] = set()
        while stack:
            folder, parts = stack.pop()
            real = self.confine.check(folder)
            if real is None:
                skipped.append(self.rel(folder))
                continue
            if os.fspath(real) in seen:
                continue
            seen.add(os.fspath(real))
            try:
                with os.scandir(real) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                continue
            folders = []
            for entry in entries:
                path = folder / entry.name
                try:
                    is_dir = entry.is_dir()
                    is_link = entry.is_symlink()
                except OSError:
                    continue
                if is_dir:
                    if entry.name not in SKIP_DIRS and keep_dir(path, (*parts, entry.name)):
                        folders.append((path, (*parts, entry.name)))
                    continue
                if not keep_file(path, (*parts, entry.name)):
                    continue
                target = self.confine.check(path) if is_link else real / entry.name
                if target is None:
                    skipped.append(self.rel(path))
                elif target.is_file() if is_link else entry.is_file(follow_symlinks=False):
                    yield path, target
            stack.extend(reversed(folders))

    def git_files(
        self, base: Path, skipped: list[str], keep_file: Keep
    ) -> list[tuple[Path, Path]] | None:
        """Tracked and untracked-but-not-ignored files under ``base`` if it is in a git work
        tree (a tracked symlink leading outside is skipped); None if it is not."""
        names = _git_names(base)
        if names is None:
            return None
        out = []
        for name in names:
            path = base / name
            if not keep_file(path, PurePosixPath(name).parts):
                continue
            target = self.confine.check(path)
            if target is None:
                skipped.append(self.rel(path))
            elif target.is_file():
                out.append((path, target))
        return out

    def files_under(
        self, base: Path, skipped: list[str], include: str | None = None
    ) -> Iterable[tuple[Path, Path]]:
        """Files grep searches under ``base`` (named like ``include`` if given): .git and
        what .gitignore ignores left out."""

        def named(path: Path) -> bool:
            return not include or fnmatch.fnmatch(path.name, include)

        listed = self.git_files(base, skipped, lambda path, parts: named(path))
        if listed is not None:
            return listed
        ignore = _Ignore(base)
        return self.walk(
            base,
            skipped,
            keep_dir=lambda path, parts: not ignore.match(path, True),
            keep_file=lambda path, parts: named(path) and not ignore.match(path, False),
        )

    def skipped_note(self, skipped: list[str]) -> str:
        if not skipped:
            return ""
        shown = ", ".join(sorted(skipped)[:5]) + (", …" if len(skipped) > 5 else "")
        links = plural(len(skipped), "symlink")
        return f"\n[skipped {links} leading outside the working directory: {shown}]"

    # -- search ----------------------------------------------------------------------------
    def tool_grep(self, args: dict[str, Any]) -> ToolResult:
        pattern = args["pattern"]
        if not pattern:
            raise ToolError("pattern is empty")
        try:
            regex = re.compile(pattern, re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
        base = self.path(args.get("path") or ".")
        include = args.get("include")
        skipped: list[str] = []
        files = [(base, base)] if base.is_file() else self.files_under(base, skipped, include)
        hits: list[str] = []
        for path, real in files:
            try:
                data = self.confine.read_bytes(real, self.rel(path), MAX_GREP_FILE)
            except PathRefused:
                skipped.append(self.rel(path))
                continue
            except OSError:
                continue
            if len(data) > MAX_GREP_FILE or b"\0" in data[:8192]:
                continue
            for number, line in enumerate(decode_text(data).splitlines(), 1):
                if regex.search(line):
                    hits.append(f"{self.rel(path)}:{number}: {line[:300]}")
                    if len(hits) >= MAX_MATCHES:
                        hits.append(f"[stopped at {MAX_MATCHES} matches; narrow the pattern]")
                        return ToolResult("\n".join(hits) + self.skipped_note(skipped))
        body = "\n".join(hits) if hits else "no matches"
        return ToolResult(body + self.skipped_note(skipped))

    def tool_glob(self, args: dict[str, Any]) -> ToolResult:
        pattern = args["pattern"]
        parts = PurePosixPath(pattern).parts if pattern else ()
        if not parts:
            raise ToolError("pattern is empty")
        if pattern.startswith("/") or ".." in parts:
            raise ToolError("use a pattern relative to the working directory (and path=)")
        base = self.path(args.get("path") or ".")
        if not base.is_dir():
            raise ToolError(f"{args.get('path')} is not a folder")
        skipped: list[str] = []
        walk = self.walk(
            base,
            skipped,
            keep_dir=lambda path, dirs: _may_hold(dirs, parts),
            keep_file=lambda path, names: _glob_match(names, parts),
        )
        found = [(_mtime(real), path) for path, real in walk]
        found.sort(key=lambda item: item[0], reverse=True)
        lines = [self.rel(p) for _, p in found[:MAX_GLOB]]
        if len(found) > MAX_GLOB:
            lines.append(f"[{plural(len(found) - MAX_GLOB, 'more file')}]")
        body = "\n".join(lines) if lines else "no files match"
        return ToolResult(body + self.skipped_note(skipped))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _glob_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Does a relative path (its parts) match a glob pattern (its parts)? ``**`` matches any
    number of folders; ``*``, ``?`` and ``[...]`` stay within one name, as in pathlib."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        rest = pattern[1:]
        while rest[:1] == ("**",):
            rest = rest[1:]
        if not rest:
            return True
        return any(_glob_match(parts[i:], rest) for i in range(len(parts)))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _glob_match(parts[1:], pattern[1:])
    )


def _may_hold(folder: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Could a file somewhere below ``folder`` (its parts) match ``pattern``?"""
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    if not folder:
        return True
    return (
        len(pattern) > 1
        and fnmatch.fnmatchcase(folder[0], pattern[0])
        and _may_hold(folder[1:], pattern[1:])
    )


def _git_names(base: Path) -> list[str] | None:
    """Names git lists under ``base`` (as the OS gives them), or None outside a work tree."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=base,
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return sorted(os.fsdecode(n) for n in done.stdout.split(b"\0") if n)


class _Ignore:
    """A small .gitignore reader for folders that are not git work trees."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.rules: list[tuple[str, bool, bool]] = []  # pattern, dir only, negated
        try:
            lines = decode_text((base / ".gitignore").read_bytes()).splitlines()
        except OSError:
            lines = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = line.lstrip("!")
            dir_only = line.endswith("/")
            self.rules.append((line.strip("/"), dir_only, negated))

    def match(self, path: Path, is_dir: bool) -> bool:
        rel = str(path.relative_to(self.base))
        ignored = False
        for pattern, dir_only, negated in self.rules:
            if dir_only and not is_dir:
                continue
            target = rel if "/" in pattern else path.name
            if fnmatch.fnmatch(target, pattern):
                ignored = not negated
        return ignored
