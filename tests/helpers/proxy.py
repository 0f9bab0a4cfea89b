"""A tiny HTTP proxy on 127.0.0.1 that misbehaves on purpose, between a client and S3.

Each request is forwarded on a connection of its own (``Connection: close``). Modes:

- ``pass``: forward everything;
- ``cut``: forward the headers and half the body of the next ``count`` PUTs, then close
  both connections (a connection dropped mid-upload);
- ``error``: answer the next ``count`` PUTs with ``status`` (500, 503 ...) without
  forwarding them;
- ``trickle``: forward PUT bodies ``chunk`` bytes every ``delay`` seconds (an upload
  slow enough to be killed midway).

``count`` < 0 means every matching request; ``after`` PUTs pass before the faults start.
Counters tell a test what happened.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Counters:
    requests: int = 0
    puts_started: int = 0
    puts_done: int = 0
    big_started: int = 0  # PUTs of 1 MB or more
    cut: int = 0
    errors: int = 0


class FaultyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = "pass"
        self.count = 0
        self.after = 0  # PUTs let through before the faults start
        self.status = 500
        self.chunk = 256
        self.delay = 0.05
        self.counters = Counters()
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, mode: str, count: int = -1, **options: float) -> FaultyProxy:
        with self._lock:
            self.mode, self.count = mode, count
            for name, value in options.items():
                setattr(self, name, value)
        return self

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    # -- inside ----------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _take(self, method: str) -> str:
        """The fault this request gets (and count it)."""
        with self._lock:
            self.counters.requests += 1
            if method != "PUT" or self.mode == "pass" or self.count == 0:
                return "pass"
            if self.after > 0:
                self.after -= 1
                return "pass"
            if self.count > 0:
                self.count -= 1
            return self.mode

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        upstream = None
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            header, body = head.split(b"\r\n\r\n", 1)
            lines = header.split(b"\r\n")
            method = lines[0].split(b" ", 1)[0].decode()
            length = 0
            kept = [lines[0]]
            expect = False
            for line in lines[1:]:
                name = line.split(b":", 1)[0].strip().lower()
                if name == b"content-length":
                    length = int(line.split(b":", 1)[1])
                if name == b"expect":
                    expect = True  # answered here, so the body comes at once
                    continue
                if name in (b"connection", b"keep-alive"):
                    continue
                kept.append(line)
            if expect and not body:
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            kept.append(b"Connection: close")
            fault = self._take(method)
            if method == "PUT":
                with self._lock:
                    self.counters.puts_started += 1
                    self.counters.big_started += length >= 1_000_000
            if fault == "trickle":
                # forward the body as it arrives, slowly: a client killed midway leaves the
                # server an upload cut short
                upstream = socket.create_connection(self.upstream, timeout=30)
                upstream.sendall(b"\r\n".join(kept) + b"\r\n\r\n" + body)
                sent = len(body)
                while sent < length:
                    time.sleep(self.delay)
                    data = client.recv(min(int(self.chunk), length - sent))
                    if not data:
                        with self._lock:
                            self.counters.cut += 1
                        return
                    upstream.sendall(data)
                    sent += len(data)
                body = b""
            while len(body) < length and fault != "trickle":
                data = client.recv(65536)
                if not data:
                    break
                body += data
            if fault == "error":
                with self._lock:
                    self.counters.errors += 1
                reason = {500: "Internal Server Error", 503: "Service Unavailable"}.get(
                    int(self.status), "Error"
                )
                client.sendall(
                    f"HTTP/1.1 {int(self.status)} {reason}\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                return
            if upstream is None:
                upstream = socket.create_connection(self.upstream, timeout=30)
                upstream.sendall(b"\r\n".join(kept) + b"\r\n\r\n")
            if fault == "cut":
                upstream.sendall(body[: len(body) // 2])
                with self._lock:
                    self.counters.cut += 1
                return  # both closed in finally: the upload is cut off midway
            upstream.sendall(body)
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
            if method == "PUT":
                with self._lock:
                    self.counters.puts_done += 1
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()
