"""Fetching a session a teammate shared, when its id is not found here.

``SessionStore.resolve`` calls ``fetch_shared`` for an id it cannot find locally
when a remote is configured: the object ``shared/<id>.json`` is downloaded, checked
(its sha256, and decrypted when the remote is encrypted), and written into the
session directory (0600, never over an existing file). The caller is told where it
came from. Nothing local changes when any of this fails.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from taurus_ops.remote import SHARED, connect
from taurus_ops.remote.codec import decode
from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import atomic_write, ensure_dir, fsync_dir, temp_name


def fetch_shared(config: Any, session_id: str, session_dir: Path) -> tuple[Path, str] | None:
    """Download shared session ``session_id``: (its new path, a line saying whence), or None."""
    with connect(config) as conn:
        key = f"{SHARED}{session_id}.json"
        fetched = conn.remote.get(key)
        if fetched is None:
            return None
        where = f"{conn.url}/{key}"
        meta, body = decode(fetched.data, conn.key, where)
    parts = fmt.split_file_name(meta.file)
    date = parts[0] if parts else fmt.now_iso()[:10]
    dest = Path(session_dir) / f"{date}_{session_id}.json"
    ensure_dir(dest.parent)
    tmp = temp_name(dest)
    try:
        atomic_write(tmp, body)
        os.link(tmp, dest)  # never over a file that is there
        fsync_dir(dest.parent)
    except FileExistsError:
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    line = (
        f"{session_id} was not here: downloaded it from {where} (shared by {meta.device}) to {dest}"
    )
    return dest, line
