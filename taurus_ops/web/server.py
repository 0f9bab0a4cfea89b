"""Binding the viewer's socket and running it under uvicorn.

``prepare()`` binds first (so a busy port is one clear error, and ``--port 0`` knows its
port before anything is printed), then ``Served.run()`` serves until Ctrl+C or SIGTERM
and returns; open event streams are ended so the stop is prompt. uvicorn runs with its
access log off (URLs may hold the token) and without trusting proxy headers.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from taurus_ops.web import data as D
from taurus_ops.web.data import UsageError, Viewer
from taurus_ops.web.security import is_loopback, new_token

DEFAULT_PORT = 8765
PORT_TRIES = 10  # the default port and the next nine, when one is taken


@dataclass
class Served:
    """A bound, not yet running, viewer."""

    sock: socket.socket
    host: str
    port: int
    token: str | None
    viewer: Viewer
    moved_from: int | None = None  # the default port was taken: this one is next
    _server: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        shown = self.host
        if shown in ("0.0.0.0", "::", ""):  # every interface: this machine's name reaches it
            shown = socket.gethostname() or "127.0.0.1"
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    @property
    def url(self) -> str:
        """The address to open: with the token, as Jupyter prints it."""
        return self.base_url + (f"?token={self.token}" if self.token else "")

    @property
    def exposed(self) -> bool:
        """True when the server answers on more than this machine's loopback."""
        return not is_loopback(self.host)

    def run(self, open_browser: bool = False) -> None:
        """Serve until interrupted (Ctrl+C, SIGTERM)."""
        import uvicorn

        from taurus_ops.web.app import Site, site_app

        site = Site(self.viewer)
        app = site_app(site, self.token, self.host, self.port)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                site.stopping.set()  # event streams end at their next poll
                super().handle_exit(sig, frame)

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                # uvicorn raises the signal again once it has stopped; Ctrl+C and
                # SIGTERM are the way to stop the viewer, so they end it with status 0
                with super().capture_signals():
                    try:
                        yield
                    finally:
                        captured = getattr(self, "_captured_signals", None)
                        if isinstance(captured, list):
                            captured.clear()

        server = Server(config)
        self._server = server
        threading.Thread(target=site.warm, name="taurus-warm", daemon=True).start()
        if open_browser:
            threading.Thread(target=self._open_when_ready, args=(server,), daemon=True).start()
        try:
            server.run(sockets=[self.sock])
        finally:
            site.stopping.set()
            self.viewer.close()
            with contextlib.suppress(OSError):
                self.sock.close()

    def _open_when_ready(self, server: Any) -> None:
        for _ in range(100):
            if server.started:
                with contextlib.suppress(Exception):
                    webbrowser.open(self.url)
                return
            threading.Event().wait(0.05)


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def prepare(
    config: D.Config, host: str = "127.0.0.1", port: int | None = None, token: bool = True
) -> Served:
    """Bind ``host:port`` (``port`` None: 8765, or the next free one) for the viewer.

    Raises UsageError (one line) for a port in use, an address that is not this
    machine's, or ``--no-token`` on an address other machines can reach.
    """
    if not token and not is_loopback(host):
        raise UsageError(
            f"--no-token is refused with --host {host}: anyone who can reach that address"
            " could read every session (use an SSH tunnel to 127.0.0.1 instead)"
        )
    candidates = (
        [port] if port is not None else list(range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES))
    )
    last: OSError | None = None
    for candidate in candidates:
        try:
            sock = _bind(host, candidate)
        except socket.gaierror as exc:
            raise UsageError(
                f"--host {host}: not an address of this machine ({exc.strerror})"
            ) from None
        except OSError as exc:
            last = exc
            if exc.errno == errno.EADDRINUSE and port is None:
                continue
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {candidate} is in use; choose another with --port"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"--host {host}: not an address of this machine") from None
            if exc.errno == errno.EACCES:
                raise UsageError(f"port {candidate} needs privileges; use one above 1023") from None
            raise UsageError(f"cannot listen on {host}:{candidate}: {exc.strerror}") from None
        bound = sock.getsockname()[1]
        served = Served(
            sock=sock,
            host=host,
            port=bound,
            token=new_token() if token else None,
            viewer=Viewer(config),
        )
        if port is None and candidate != DEFAULT_PORT:
            served.moved_from = DEFAULT_PORT
        return served
    raise UsageError(
        f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_TRIES - 1} are all in use ({last}); choose one"
        " with --port"
    )
