"""The pending-rule warning of ``list`` and ``doctor``, remembered between runs.

Working out whether a configured rule will remove sessions takes a look at every
session (a stat pass and the index's rows: seconds at 100,000 sessions), and ``list``
asks on every run. The answer depends only on the rules, the session and archive
folders, and the clock; so it is kept in ``~/.taurus/cleanup-pending.json`` with

- the rules and the two folders' paths;
- each folder's stamp (device, inode, mtime and ctime): every save by Taurus, and every
  new, removed or renamed file or name link, moves it;
- the moment it stops holding: the first time a kept session comes within an age rule
  (``Plan.next_change``), and at most ``MAX_AGE`` after it was worked out, so a file's
  bytes changed in place by another program are seen within that time.

A folder changed less than ``RACY_SECONDS`` before the look may change again within
the same clock tick, so then nothing is kept. A missing, unreadable or damaged file
means the warning is worked out again; the file is only ever a shortcut.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write
from taurus_ops.store.newest import directory_stamp

if TYPE_CHECKING:
    from taurus_ops.store.store import SessionStore

CACHE_FILE = "cleanup-pending.json"
MAX_AGE = 3600.0  # seconds a remembered warning stands at most
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class Remembered:
    warning: str | None


def _stamp(folder: Path | None, now: float) -> list[int] | bool | None:
    """A folder's stamp (the index's: ``directory_stamp``); None when it does not exist;
    False when it changed too recently to be trusted."""
    if folder is None:
        return None
    found = directory_stamp(folder)
    if found is not None and max(found[2], found[3]) > (now - RACY_SECONDS) * 1e9:
        return False
    return found


def key(store: SessionStore, rules: dict[str, Any]) -> dict[str, Any] | None:
    """What the warning depends on, as it is now (None: a folder is too fresh to tell)."""
    now = time.time()
    folders = [store.session_dir, store.archive_dir]
    stamps = []
    for folder in folders:
        found = _stamp(None if folder is None else Path(folder), now)
        if found is False:
            return None
        stamps.append(found)
    return {"rules": rules, "folders": [str(f) for f in folders], "stamps": stamps}


def _path(home: Path) -> Path:
    return Path(home) / CACHE_FILE


def recall(home: Path, wanted: dict[str, Any]) -> Remembered | None:
    """The warning remembered for ``wanted``, if it still holds."""
    try:
        data = fmt.loads(_path(home).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != wanted:
        return None
    until = data.get("until")
    warning = data.get("warning")
    if not isinstance(until, (int, float)) or time.time() >= until:
        return None
    if warning is not None and not isinstance(warning, str):
        return None
    return Remembered(warning)


def remember(
    home: Path, wanted: dict[str, Any], warning: str | None, next_change: datetime | None
) -> None:
    """Keep ``warning`` for ``wanted`` until ``next_change`` (and ``MAX_AGE`` at most)."""
    until = time.time() + MAX_AGE
    if next_change is not None:
        until = min(until, next_change.timestamp())
    data = {"key": wanted, "until": until, "warning": warning}
    with contextlib.suppress(OSError):
        atomic_write(_path(home), fmt.dumps(data), durable=False)
