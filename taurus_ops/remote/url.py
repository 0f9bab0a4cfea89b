"""What ``remote.url``, ``remote.endpointUrl`` and ``remote.device`` may be.

Pure and light (no S3 client import), so config validation stays cheap. Each check
raises ValueError with a one-line reason; the settings name the file and the key.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# S3's rules for bucket names: 3-63 of lower-case letters, digits, '.', '-'; no '..'
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SEGMENT = re.compile(r"^[A-Za-z0-9!_.*'()+=@,;: -]+$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RemoteUrl:
    """A parsed remote: ``scheme`` s3 (``bucket``, ``prefix``) or file (``path``)."""

    url: str  # normalised: s3://bucket/prefix (no trailing slash) or file:///abs/path
    scheme: str
    bucket: str = ""
    prefix: str = ""  # "" or "team/alice" (no leading or trailing slash)
    path: str = ""


def parse_remote_url(text: str) -> RemoteUrl:
    """Parse ``s3://BUCKET/PREFIX`` or ``file:///PATH``; ValueError names the problem."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an empty URL: use s3://BUCKET/PREFIX or file:///PATH")
    text = text.strip()
    if any(ord(ch) < 32 for ch in text):
        raise ValueError("the URL holds control characters")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:  # never echoed: what precedes the @ may be a key
        raise ValueError("put no credentials in the URL; they come from the AWS credential chain")
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket:
            raise ValueError(f"{text!r} names no bucket: use s3://BUCKET/PREFIX")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(
                f"{bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{text!r}: an s3:// URL takes no '?' or '#' part")
        segments = [s for s in parts.path.split("/") if s]
        for segment in segments:
            if segment in (".", "..") or not _SEGMENT.match(segment):
                raise ValueError(f"prefix part {segment!r} is not allowed in {text!r}")
        prefix = "/".join(segments)
        url = f"s3://{bucket}" + (f"/{prefix}" if prefix else "")
        return RemoteUrl(url, "s3", bucket=bucket, prefix=prefix)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"{text!r} names a host ({parts.netloc}); use file:///PATH for a mounted folder"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"{text!r} is not an absolute path: use file:///PATH")
        if "\x00" in path:
            raise ValueError("a path cannot contain a NUL character")
        segments = [s for s in path.split("/") if s]
        if any(s in (".", "..") for s in segments):
            raise ValueError(f"{text!r}: '.' and '..' are not allowed in the path")
        clean = "/" + "/".join(segments)
        if clean == "/":
            raise ValueError("file:/// is the root folder; give a folder of its own")
        return RemoteUrl(f"file://{clean}", "file", path=clean)
    raise ValueError(f"{text!r} is not s3://BUCKET/PREFIX or file:///PATH")


def check_endpoint(text: str) -> str:
    """``http(s)://HOST[:PORT]`` (a path is allowed); returned without a trailing slash."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    if parts.username or parts.password:
        raise ValueError("put no credentials in the endpoint URL; use the AWS credential chain")
    return text.strip().rstrip("/")


def check_device(text: str) -> str:
    if not _DEVICE.match(text):
        raise ValueError(
            f"{text!r} is not a device name: 1-64 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    return text


def host_device() -> str:
    """This machine's host name as a device name (``laptop`` from ``laptop.example.org``)."""
    name = socket.gethostname().split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip("-.")[:64]
    return name if name and _DEVICE.match(name) else "this-machine"


def device_of(settings: object) -> str:
    """The effective device name: ``remote.device`` or the host name."""
    remote = getattr(settings, "remote", None)
    device = getattr(remote, "device", None) if remote is not None else None
    return device or host_device()
