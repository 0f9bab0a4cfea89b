"""The remote backends the remote tests run against: S3 (moto on 127.0.0.1) and a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.machines import ACCESS_KEY, SECRET_KEY, make_remote

from taurus_ops.remote import open_backend
from taurus_ops.remote.url import parse_remote_url


@pytest.fixture(params=["s3", "file"])
def backend(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    spec = make_remote(request.param, tmp_path, server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)

    class Settings:
        endpoint_url = spec.endpoint
        region = None
        profile = None

    remote = open_backend(parse_remote_url(spec.url), Settings)
    yield remote
    remote.close()
