"""The S3 remote (AWS S3, MinIO, Ceph RGW, Cloudflare R2, Backblaze B2), through boto3.

Credentials come only from boto3's standard chain (environment, ``~/.aws/credentials``
and ``~/.aws/config``, ``remote.profile``, container or instance role): Taurus never
reads, stores or logs a key. Creating is ``PutObject`` with ``If-None-Match: *`` and
replacing is ``PutObject`` with ``If-Match: <ETag>``; a single PUT is atomic, so an
upload cut off midway leaves no object at all. Throttling, 5xx answers and dropped
connections are retried (botocore's standard mode); what still fails is one line
naming the remote and the problem.

boto3 is imported only here, when a command talks to an S3 remote.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from taurus_ops.remote.base import Conflict, Fetched, ObjectInfo, RemoteConfigError, RemoteError
from taurus_ops.remote.url import RemoteUrl

ATTEMPTS = 4  # botocore "standard" retries: 3 more tries with backoff (AWS_MAX_ATTEMPTS wins)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
POOL = 16
MAX_PUT = 5 << 30  # the largest object one S3 PUT may carry

_CREDENTIALS = {
    "InvalidAccessKeyId": "the access key is not known to the server",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is not valid",
    "TokenRefreshRequired": "the session token has expired",
}


class S3Remote:
    def __init__(
        self,
        where: RemoteUrl,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.url = where.url
        self.bucket = where.bucket
        self.base = f"{where.prefix}/" if where.prefix else ""
        self.endpoint_url = endpoint_url
        self.client = _client(endpoint_url, region, profile, self.url)

    # -- the interface ------------------------------------------------------------------
    def list(self, prefix: str = "", after: str | None = None) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": self.base + after} if after else {}
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.base + prefix, **extra)
        cut = len(self.base)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(item["Key"][cut:], _etag(item["ETag"]), int(item["Size"]))
        except Exception as exc:
            raise self.error(exc, "listing") from None

    def get(self, key: str) -> Fetched | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.base + key)
            data = answer["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self.error(exc, f"reading {key}") from None
        return Fetched(key, _etag(answer["ETag"]), data, dict(answer.get("Metadata") or {}))

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str]) -> str:
        return self._put(key, data, metadata, IfNoneMatch="*")

    def put_replace(self, key: str, data: bytes, etag: str, metadata: Mapping[str, str]) -> str:
        return self._put(key, data, metadata, IfMatch=f'"{etag}"')

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.error(exc, "opening the bucket") from None

    def close(self) -> None:
        self.client.close()

    # -- large objects (backups) --------------------------------------------------------
    def put_new_file(self, key: str, source: Path, metadata: Mapping[str, str]) -> str:
        size = source.stat().st_size
        if size > MAX_PUT:
            raise RemoteError(
                f"remote {self.url}: writing {key}: {size} bytes is more than one S3 PUT "
                "takes (5 GiB)"
            )
        return self._put(key, source, metadata, IfNoneMatch="*")

    def get_file(self, key: str, sink: BinaryIO) -> ObjectInfo | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.base + key)
            for chunk in answer["Body"].iter_chunks(1 << 20):
                _write_local(sink, chunk)
        except _LocalWriteError as exc:
            raise exc.error from None  # the local disk's problem, not the remote's
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self.error(exc, f"reading {key}") from None
        return ObjectInfo(key, _etag(answer["ETag"]), int(answer.get("ContentLength", 0)))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.base + key)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return
            raise self.error(exc, f"removing {key}") from None

    # -- inside -------------------------------------------------------------------------
    def _put(
        self, key: str, data: bytes | Path, metadata: Mapping[str, str], **condition: str
    ) -> str:
        if isinstance(data, Path):  # sent from the open file, never held whole in memory
            with open(data, "rb") as body:
                return self._send(key, body, _md5_file(data), metadata, condition)
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        return self._send(key, data, digest, metadata, condition)

    def _send(
        self,
        key: str,
        body: bytes | BinaryIO,
        digest: str,
        metadata: Mapping[str, str],
        condition: Mapping[str, str],
    ) -> str:
        try:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=self.base + key,
                Body=body,
                ContentMD5=digest,  # the server refuses a body that arrived altered
                Metadata=dict(metadata),
                ContentType="application/octet-stream",
                **condition,
            )
        except Exception as exc:
            # 412: the condition failed; 409: another conditional write to the key was in
            # flight; 404 on If-Match: the object is gone. Each means "not as expected".
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise Conflict(key) from None
            if "IfMatch" in condition and _code(exc) in ("NoSuchKey", "404"):
                raise Conflict(key) from None
            raise self.error(exc, f"writing {key}") from None
        return _etag(answer["ETag"])

    def error(self, exc: BaseException, doing: str) -> RemoteError:
        """One line naming the remote and the problem."""
        return RemoteError(f"remote {self.url}: {doing}: {describe(exc, self)}")


def _etag(value: str) -> str:
    return value.strip('"')


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


class _LocalWriteError(Exception):
    def __init__(self, error: OSError) -> None:
        self.error = error


def _write_local(sink: BinaryIO, chunk: bytes) -> None:
    try:
        sink.write(chunk)
    except OSError as exc:
        raise _LocalWriteError(exc) from None


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: BaseException, remote: S3Remote) -> str:
    import botocore.exceptions as bx

    code = _code(exc)
    if isinstance(exc, bx.NoCredentialsError):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "~/.aws/credentials, remote.profile, or use an instance role)"
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return f"cannot reach the endpoint {remote.endpoint_url or 'of S3'} (after retries)"
    if isinstance(exc, bx.ReadTimeoutError):
        return "the server stopped answering (read timed out)"
    if isinstance(exc, bx.ConnectionClosedError | bx.ConnectionError):
        return "the connection was dropped (after retries)"
    if code in ("NoSuchBucket",) or (code == "404" and "bucket" in str(exc).lower()):
        return f"the bucket {remote.bucket!r} does not exist"
    if code in _CREDENTIALS:
        return f"credentials refused: {_CREDENTIALS[code]}"
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return "credentials refused: access denied"
    if code == "404":
        return f"the bucket {remote.bucket!r} does not exist"
    if code.isdigit() or code in ("InternalError", "ServiceUnavailable", "SlowDown"):
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        return (
            f"the server answered {status or code} {code if not code.isdigit() else ''}".rstrip()
            + " (after retries)"
        )
    if isinstance(exc, bx.ClientError):
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return f"{code}: {message}".strip(": ")
    if isinstance(exc, bx.BotoCoreError):
        return str(exc).splitlines()[0]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _attempts() -> int:
    text = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(text) if text.isdigit() and int(text) >= 1 else ATTEMPTS


def _client(endpoint_url: str | None, region: str | None, profile: str | None, url: str) -> Any:
    import boto3
    import botocore.exceptions as bx
    from botocore.config import Config

    try:
        session = (
            boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
        )
    except bx.ProfileNotFound:
        raise RemoteConfigError(
            f"remote {url}: remote.profile: no AWS profile named {profile!r} "
            "(see ~/.aws/config and ~/.aws/credentials)"
        ) from None
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": _attempts()},
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "max_pool_connections": POOL,
        # checksums only where S3 needs them: MinIO, Ceph and R2 versions differ on the rest
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}  # MinIO and friends: no bucket DNS names
    try:
        return session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or session.region_name or "us-east-1",
            config=Config(**options),
        )
    except (bx.BotoCoreError, ValueError) as exc:
        raise RemoteConfigError(f"remote {url}: {str(exc).splitlines()[0]}") from None
