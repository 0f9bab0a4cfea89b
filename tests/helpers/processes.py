"""Commands run as real processes with fewer rights than the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

NO_DAC = [
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def without_dac(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run taurus-ops in a real subprocess that, even as root, cannot read others' 0600 files."""
    if os.geteuid() != 0:
        return subprocess.run(
            [sys.executable, "-m", "taurus_ops.cli", *args], capture_output=True, text=True
        )
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop root's read-anything capability")
    return subprocess.run(
        ["setpriv", *NO_DAC, "--", sys.executable, "-m", "taurus_ops.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
