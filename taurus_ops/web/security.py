"""What stands between the network and the transcripts: token, Host check, headers.

A pure ASGI middleware (so streamed responses pass straight through):

1. The ``Host`` header must name this server: a loopback name or address, the
   address it is bound to, or (bound to every interface) any IP address or this
   machine's own name. A page on ``evil.example`` that re-points its DNS at
   127.0.0.1 (DNS rebinding) sends ``Host: evil.example`` and is refused.
2. Every request but the package's own static files needs the access token: in the
   query string once (``/?token=...``, answered with a cookie and a redirect to the
   same address without it), then the cookie; ``Authorization: Bearer`` works for
   scripts. Tokens are compared in constant time.
3. Every response carries a strict Content-Security-Policy (scripts and styles only
   from this server, nothing inline, no frames, no plugins), ``nosniff``,
   ``no-referrer``, no framing and ``no-store`` (pages hold secrets).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
PUBLIC_PREFIX = "/static/"  # the package's own CSS, script and icon: no session data
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """Cookies ignore ports: two viewers on one machine each keep their own."""
    return f"taurus_ops_{port}" if port else "taurus_ops"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    address = _ip(name)
    return bool(address and address.is_loopback)


def split_host(value: str) -> str:
    """The host name of a ``Host`` header value (``[::1]:8765`` -> ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end != -1 else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostRule:
    """Which ``Host`` headers a server bound to ``bound`` answers."""

    def __init__(self, bound: str) -> None:
        name = bound.strip("[]").lower()
        self.names = set(LOOPBACK_NAMES) | {name}
        address = _ip(name)
        self.any_ip = bool(address and address.is_unspecified) or name == ""
        if self.any_ip:
            for extra in (socket.gethostname(),):
                if extra:
                    self.names.add(extra.lower())

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        host = split_host(header).rstrip(".")  # "localhost." is "localhost"
        if not host:
            return False
        if host in self.names:
            return True
        address = _ip(host)
        if address is None:
            return False
        return address.is_loopback or self.any_ip or str(address) in self.names


def _headers(scope: Scope) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.lower(), value)
    return out


def _cookies(raw: bytes | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (raw or b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def local_path(path: str) -> str:
    """``path`` as a Location on this server only: never ``//host`` or ``/\\host``."""
    return "/" + quote(path, safe="/-._~!$&'()*+,;=:@%").lstrip("/")


async def _plain(send: Send, status: int, body: str, extra: list[tuple[bytes, bytes]]) -> None:
    data = body.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


REFUSED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Access token needed · Taurus</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body class="page-refused"><main class="refused"><h1>This viewer needs its access token</h1>
<p>Open the address <code>taurus-ops serve</code> printed when it started: it ends in
<code>?token=…</code>. After the first visit this browser keeps the token in a cookie.</p>
</main></body></html>
"""
BAD_HOST_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Wrong host · Taurus</title></head>
<body><h1>Wrong host</h1><p>This server answers only at the address it printed when it
started (a page that re-points a domain name at this machine is refused).</p></body></html>
"""


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, token: str | None, hosts: HostRule, cookie: str) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get(b"host")
        if not self.hosts.allows(host.decode("latin-1") if host else None):
            await _plain(send, 400, BAD_HOST_PAGE, [])
            return
        path = scope.get("path", "/")
        if self.token is not None and not path.startswith(PUBLIC_PREFIX):
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            given = [v for k, v in query if k == "token"]
            if given:
                if not _same(given[-1], self.token):
                    await _plain(send, 403, REFUSED_PAGE, [])
                    return
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = local_path(path) + (f"?{rest}" if rest else "")
                cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                await _plain(
                    send,
                    303,
                    "",
                    [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode())],
                )
                return
            auth = headers.get(b"authorization", b"").decode("latin-1")
            bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            if not (
                _same(_cookies(headers.get(b"cookie")).get(self.cookie), self.token)
                or _same(bearer, self.token)
            ):
                await _plain(send, 403, REFUSED_PAGE, [])
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
