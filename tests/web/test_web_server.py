"""``taurus-ops serve`` for real: a uvicorn subprocess on 127.0.0.1, raw HTTP, events, Ctrl+C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from helpers.served import Served, start
from helpers.web import populate

from taurus_ops.store import SessionStore


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("served") / "taurus-home"
    populate(SessionStore(home / "sessions", home / "archive"), extra=5)
    running = start(home)
    yield running
    running.stop()


def raw(served: Served, request: str) -> tuple[int, str]:
    """Send ``request`` byte for byte (no client tidies the path) and read the answer."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    answer = b"".join(chunks).decode("utf-8", "replace")
    return int(answer.split(" ", 2)[1]), answer


def get(served: Served, path: str, host: str | None = None) -> tuple[int, str]:
    host = host or f"127.0.0.1:{served.port}"
    return raw(
        served,
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: taurus_ops_{served.port}={served.token}\r\n"
        "Connection: close\r\n\r\n",
    )


def test_it_prints_a_loopback_address_with_a_token(served: Served) -> None:
    assert served.url.startswith(f"http://127.0.0.1:{served.port}/?token=")
    assert len(served.token) >= 40
    with httpx.Client(follow_redirects=False) as client:
        first = client.get(served.url)
        assert first.status_code == 303 and first.headers["location"] == "/"
        page = client.get(f"http://127.0.0.1:{served.port}/")  # now with the cookie
        assert page.status_code == 200 and "rich0001" in page.text
        assert "server" not in page.headers  # uvicorn's banner is off
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"


@pytest.mark.parametrize(
    "path",
    [
        "/s/../../../../etc/passwd",
        "/s/..%2F..%2F..%2Fetc%2Fpasswd",
        "/s/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/s/rich0001/../../../etc/passwd",
        "/static/../data.py",
        "/static/..%2Fdata.py",
        "/s/rich0001/raw/1/../../../../etc/passwd",
        "/s/~root/export?format=json",
    ],
)
def test_raw_paths_never_reach_the_file_system(served: Served, path: str) -> None:
    status, answer = get(served, path)
    assert status in (400, 404), (path, status)
    assert "root:" not in answer and "def " not in answer


def test_a_rebound_domain_name_is_refused(served: Served) -> None:
    status, answer = get(served, "/", host=f"attacker.example:{served.port}")
    assert status == 400 and "rich0001" not in answer
    assert get(served, "/", host=f"localhost:{served.port}")[0] == 200
    status, _ = raw(served, "GET / HTTP/1.0\r\n\r\n")  # no Host at all
    assert status == 400


def test_events_report_a_save_to_the_session(served: Served) -> None:
    store = SessionStore(served.home / "sessions", served.home / "archive")
    events: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        cookies = {f"taurus_ops_{served.port}": served.token}
        with httpx.Client(cookies=cookies, timeout=15) as client:
            with client.stream("GET", f"{served.base}/s/child001/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for line in stream.iter_lines():
                    ready.set()
                    events.append(line)
                    if line.startswith("event: change"):
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    time.sleep(1.2)  # the stream has looked at the file once
    session = store.load_ref("child001")
    session.messages.append({"role": "user", "content": "one more thing"})
    store.save(session)
    thread.join(10)
    assert "event: change" in events


def test_ctrl_c_stops_it_cleanly_even_with_a_stream_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    populate(SessionStore(home / "sessions", home / "archive"), extra=0)
    running = start(home)
    holder = socket.create_connection(("127.0.0.1", running.port))
    holder.sendall(
        f"GET /s/rich0001/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: taurus_ops_{running.port}={running.token}\r\n\r\n".encode()
    )
    holder.recv(1024)  # the stream is open
    began = time.monotonic()
    status, _, err = running.stop(signal.SIGINT)
    holder.close()
    assert status == 0, err
    assert "Stopped." in err and "Traceback" not in err
    assert time.monotonic() - began < 8


def test_another_host_warns_and_sigterm_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    running = start(home, "--host", "0.0.0.0")
    assert running.url.startswith(f"http://{socket.gethostname()}:{running.port}/?token=")
    status, _, err = running.stop(signal.SIGTERM)
    assert status == 0 and "Traceback" not in err
    assert "warning: listening on 0.0.0.0" in err and "SSH tunnel" in err


def run_serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "taurus_ops.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "TAURUS_HOME": str(home)},
    )


def test_refusals_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    no_token = run_serve(home, "--no-token", "--host", "0.0.0.0", "--port", "0")
    assert no_token.returncode == 2 and "--no-token is refused" in no_token.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_serve(home, "--port", str(port))
    assert taken.returncode == 2 and f"port {port} is in use" in taken.stderr
    nowhere = run_serve(home, "--host", "192.0.2.77", "--port", "0")
    assert nowhere.returncode == 2 and "not an address of this machine" in nowhere.stderr
    for result in (no_token, taken, nowhere):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_default_port_moves_on_when_taken(taurus_home: Path) -> None:
    from taurus_ops.config import load_config
    from taurus_ops.web.server import DEFAULT_PORT, prepare

    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            busy.bind(("127.0.0.1", DEFAULT_PORT))
            busy.listen()
        except OSError:
            pass  # already taken by something else: just as good
        served = prepare(load_config())
        try:
            assert served.port != DEFAULT_PORT and served.moved_from == DEFAULT_PORT
            assert served.url.startswith(f"http://127.0.0.1:{served.port}/?token=")
        finally:
            served.sock.close()
            served.viewer.close()
