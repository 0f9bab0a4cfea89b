"""Which project a session belongs to, and where that project is on this machine.

A session records ``"project": {"cwd": ..., "gitRemote": ..., "gitFolder": ...}``: the
folder the chat ran in and, inside a git checkout, the checkout's remote URL (origin,
else the first remote; any user name or token in it is dropped) and the folder's path
inside the checkout. On another machine the same project sits at another path; it is
found by its remote URL: the checkout the chat starts in, or one under the home
folder (two levels deep). Git's files are read directly (no ``git`` process).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MAX_DIRS = 4000  # folders looked at when searching the home folder for a checkout
_SECTION = re.compile(r'^\s*\[\s*remote\s+"(?P<name>[^"]*)"\s*\]\s*$')
_OTHER_SECTION = re.compile(r"^\s*\[")
_URL = re.compile(r"^\s*url\s*=\s*(?P<url>.+?)\s*$")
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>(?!/).+)$")


def git_top(folder: Path) -> Path | None:
    """The top of the git checkout holding ``folder`` (the folder with ``.git``), or None."""
    here = Path(os.path.realpath(folder))
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _git_dir(top: Path) -> Path | None:
    dot_git = top / ".git"
    if dot_git.is_dir():
        return dot_git
    try:
        text = dot_git.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    git_dir = Path(text[len("gitdir:") :].strip())
    return git_dir if git_dir.is_absolute() else (top / git_dir).resolve()


def _config_file(top: Path) -> Path | None:
    git_dir = _git_dir(top)
    if git_dir is None:
        return None
    common = git_dir / "commondir"  # a worktree: the config is the main checkout's
    try:
        shared = common.read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir / "config"
    base = Path(shared) if Path(shared).is_absolute() else git_dir / shared
    return base / "config"


def remote_url(top: Path) -> str | None:
    """The checkout's origin URL (else its first remote's), without credentials."""
    config = _config_file(top)
    if config is None:
        return None
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    remotes: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            current = section.group("name")
            continue
        if _OTHER_SECTION.match(line):
            current = None
            continue
        url = _URL.match(line)
        if current is not None and url and current not in remotes:
            remotes[current] = url.group("url").strip('"')
    found = remotes.get("origin") or next(iter(remotes.values()), None)
    return without_credentials(found) if found else None


def without_credentials(url: str) -> str:
    """``https://github.com/a/b.git`` for ``https://user:token@github.com/a/b.git``."""
    if "://" not in url:
        return url  # scp-like git@host:path: the user name is no secret
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    keep_user = parts.scheme == "ssh" and parts.password is None and parts.username
    netloc = f"{parts.username}@{host}" if keep_user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def canonical(url: str) -> str:
    """``host/path`` without scheme, user, ``.git`` or case in the host: one project, one key."""
    url = url.strip()
    scp = _SCP.match(url) if "://" not in url else None
    if scp:
        host, path = scp.group("host"), scp.group("path")
    else:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host.lower()}/{path}"


def project_of(cwd: Path) -> dict[str, str]:
    """What a session records of the folder it runs in."""
    real = Path(os.path.realpath(cwd))
    out = {"cwd": str(real)}
    top = git_top(real)
    if top is None:
        return out
    url = remote_url(top)
    if url:
        out["gitRemote"] = url
    folder = os.path.relpath(real, top)
    out["gitFolder"] = "" if folder == "." else folder
    return out


def _inside(top: Path, folder: str) -> Path:
    candidate = (top / folder) if folder else top
    if folder and ".." not in Path(folder).parts and candidate.is_dir():
        return candidate
    return top


def _checkouts(root: Path, depth: int) -> list[Path]:
    found: list[Path] = []
    level = [root]
    seen = 0
    for _ in range(depth + 1):
        following: list[Path] = []
        for folder in level:
            if (folder / ".git").exists():
                found.append(folder)
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > MAX_DIRS:
                    return found
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                following.append(Path(entry.path))
        level = following
    return found


def locate(project: Any, cwd: Path, roots: list[Path] | None = None, depth: int = 2) -> Path | None:
    """The folder of ``project`` on this machine, found by its git remote; None if not found."""
    if not isinstance(project, dict) or not isinstance(project.get("gitRemote"), str):
        return None
    want = canonical(project["gitRemote"])
    folder = project.get("gitFolder")
    if not isinstance(folder, str):
        folder = ""
    here = git_top(cwd)
    if here is not None and (url := remote_url(here)) and canonical(url) == want:
        return _inside(here, folder)
    for root in roots if roots is not None else [Path.home()]:
        for top in _checkouts(Path(root), depth):
            url = remote_url(top)
            if url and canonical(url) == want:
                return _inside(top, folder)
    return None
