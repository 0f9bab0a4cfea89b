"""A real tmpfs for tests of a full, small or read-only file system (needs root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def mount_tmpfs(mount: Path, options: str) -> None:
    """Mount a tmpfs with ``options`` (``size=1m,ro``) at ``mount``; skip the test where
    mounting is not possible (no root, no mount command)."""
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot run mount")
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); not available here")
