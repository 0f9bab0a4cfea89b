"""``taurus-ops serve`` as a real subprocess on 127.0.0.1, for the server and browser tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str  # as printed: http://localhost:PORT/?token=...
    port: int
    token: str
    home: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> tuple[int, str, str]:
        """Send ``sig`` and wait: (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"serve did not stop within {timeout} s: {err}") from None
        return self.proc.returncode, out, err


def start(home: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start ``taurus-ops serve --port 0 ARGS`` for the Taurus home ``home``; wait until it answers."""
    full_env = {**os.environ, "TAURUS_HOME": str(home), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taurus_ops.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(r"(http://\S+)", line)
        if found:
            url = found.group(1)
            break
    if not url:
        proc.kill()
        raise AssertionError(f"serve printed no address: {proc.communicate()[1]}")
    port = int(re.search(r":(\d+)/", url).group(1))  # type: ignore[union-attr]
    token = url.split("token=", 1)[1] if "token=" in url else ""
    served = Served(proc, url, port, token, home)
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{served.base}/static/app.css", timeout=2).close()
            return served
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    served.stop(signal.SIGKILL)
    raise AssertionError("serve did not answer in time")
