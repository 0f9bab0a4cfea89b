"""A real S3-protocol server on 127.0.0.1 for tests and benchmarks: moto's server mode.

    python tests/helpers/s3_server.py [--port 0]      # prints "PORT <n>" once it listens

moto checks a conditional write (If-None-Match, If-Match) and then stores the object
as two steps, so two PUTs handled at the same instant on two threads could both pass
the check; S3 itself decides them atomically. Requests are therefore handled one at
a time (connections are still accepted concurrently), which makes moto keep S3's
promise: of two conditional writes racing for one key, exactly one wins.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

COUNTS_PATH = "/_taurus_request_counts"


def serialised(app: Any) -> Any:
    """``app`` one request at a time; ``GET /_taurus_request_counts`` tells requests by kind."""
    import json
    from collections import Counter

    lock = threading.Lock()
    counts: Counter[str] = Counter()

    def wrapper(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            body = json.dumps(counts).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        method = environ.get("REQUEST_METHOD", "")
        query = environ.get("QUERY_STRING", "")
        kind = (
            "LIST" if method == "GET" and ("list-type" in query or "prefix=" in query) else method
        )
        with lock:
            counts[kind] += 1
            return list(app(environ, start_response))  # the whole response, inside the lock

    return wrapper


def _exit_with_parent() -> None:
    """Stop when the process that started this server is gone (a test worker killed)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)  # moto tells its own host from bucket subdomains by it
    app = serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


class S3Server:
    """A moto server in a child process; ``endpoint`` is its http://127.0.0.1:PORT.
    With ``check_keys`` it refuses every request whose keys it does not know."""

    def __init__(self, check_keys: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if check_keys:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"the S3 server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def counts(self) -> dict[str, int]:
        """Requests served so far by kind: GET, PUT, HEAD, LIST ..."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.endpoint + COUNTS_PATH, timeout=10) as answer:
            return json.loads(answer.read())

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)
