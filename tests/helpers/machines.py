"""Two (or more) Taurus homes acting as two machines that share one remote."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.sessions import make_document, write_session
from taurus_ops.store import format as fmt

ACCESS_KEY = "AKIAEXAMPLETAURUS42X"
SECRET_KEY = "taurus-test-secret-never-stored-0123456789abcd"


@dataclass
class RemoteSpec:
    kind: str  # s3 | file
    url: str
    endpoint: str | None = None
    server: Any = None  # the S3Server for s3
    bucket: str | None = None
    folder: Path | None = None

    def raw_objects(self) -> dict[str, bytes]:
        """Every object under the remote, key -> bytes, read around Taurus."""
        if self.kind == "file":
            assert self.folder is not None
            out = {}
            for path in sorted(self.folder.rglob("*")):
                hidden = any(part.startswith(".") for part in path.relative_to(self.folder).parts)
                if path.is_file() and not hidden:  # a writer's temporary and lock files
                    out[str(path.relative_to(self.folder))] = path.read_bytes()
            return out
        client = self.server.client()
        prefix = self.url.split("/", 3)[3] + "/"
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", ()):
                body = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                out[item["Key"][len(prefix) :]] = body
        return out


def make_remote(kind: str, tmp_path: Path, s3_server: Any = None) -> RemoteSpec:
    if kind == "file":
        folder = tmp_path / "shared-folder"
        folder.mkdir()
        return RemoteSpec("file", f"file://{folder}", folder=folder)
    bucket = f"taurus-{secrets.token_hex(6)}"
    s3_server.make_bucket(bucket)
    return RemoteSpec(
        "s3", f"s3://{bucket}/team/alice", s3_server.endpoint, server=s3_server, bucket=bucket
    )


class Machine:
    def __init__(self, root: Path, device: str, remote: RemoteSpec, endpoint: str | None = None):
        self.user = root / device
        self.home = self.user / ".taurus"
        self.home.mkdir(parents=True)
        os.chmod(self.home, 0o700)
        self.device = device
        self.remote = remote
        self.endpoint = endpoint or remote.endpoint
        self.extra: dict[str, str] = {}
        self.write_config()

    @property
    def sessions(self) -> Path:
        return self.home / "sessions"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    def write_config(self, **extra: str) -> None:
        self.extra.update(extra)
        lines = ["remote:", f"  url: {self.remote.url}", f"  device: {self.device}"]
        if self.endpoint:
            lines.append(f"  endpointUrl: {self.endpoint}")
        for key, value in self.extra.items():
            lines.append(f"  {key}: {value}")
        (self.home / "config.yaml").write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        return {
            "TAURUS_HOME": str(self.home),
            "HOME": str(self.user),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def ops(self, *args: str, input: str | None = None) -> Any:
        """``taurus-ops ARGS`` in this process, as this machine."""
        from click.testing import CliRunner

        from taurus_ops.cli.group import cli

        return CliRunner().invoke(cli, list(args), env=self.env(), input=input)

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """``taurus-ops ARGS`` as a real process of this machine."""
        env = {**os.environ, **self.env()}
        return subprocess.Popen(
            [sys.executable, "-m", "taurus_ops.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = self.popen(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # -- sessions -------------------------------------------------------------------------------
    def add(self, session_id: str, turns: int = 2, first: str | None = None) -> Path:
        doc = make_document(session_id, n_turns=turns, first=first or f"Task {session_id}")
        return write_session(self.sessions, doc)

    def append(self, path: Path, text: str) -> None:
        data = fmt.loads(path.read_bytes())
        data["messages"].append({"role": "user", "content": text})
        data["updated"] = fmt.now_iso()
        path.write_bytes(fmt.dumps(data))

    def files(self) -> dict[str, bytes]:
        """Session files here: 'sessions/NAME' or 'archive/NAME' -> bytes (names not included)."""
        out = {}
        for folder in (self.sessions, self.archive):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if (
                    path.is_file()
                    and not path.is_symlink()
                    and path.suffix == ".json"
                    and not path.name.startswith(".")
                ):
                    out[f"{folder.name}/{path.name}"] = path.read_bytes()
        return out

    def names(self) -> dict[str, str]:
        out = {}
        if self.sessions.is_dir():
            for path in self.sessions.iterdir():
                if path.is_symlink():
                    out[path.name] = os.path.relpath(os.path.realpath(path), self.home)
        return out

    def texts(self) -> set[str]:
        """Every user message's text in every session here."""
        found = set()
        for body in self.files().values():
            try:
                data = fmt.loads(body)
            except ValueError:
                continue
            for message in data.get("messages", []):
                if isinstance(message.get("content"), str):
                    found.add(message["content"])
        return found
