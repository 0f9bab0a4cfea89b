"""taurus-ops share, the teammate's fetch on a missing id, and end-to-end encryption."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers.fake_api import text
from helpers.machines import Machine, make_remote
from helpers.sessions import make_document, write_session

from taurus_ops.remote.codec import new_key_file
from taurus_ops.store import format as fmt

SECRET = "sk-ant-api03-" + "Z" * 40
CHAT = [sys.executable, "-m", "taurus_ops.cli.chat_main", "chat"]


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path: Path):
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_remote(request.param, tmp_path, server)


def make_payment_session(machine: Machine) -> Path:
    path = machine.add("xyz789ab", first="Investigate why the payment integration is failing")
    machine.append(path, f"the key was {SECRET}")
    return path


def test_share_then_show_and_export_on_another_machine(remote, tmp_path: Path) -> None:
    dev_a, dev_b = Machine(tmp_path, "dev-a", remote), Machine(tmp_path, "dev-b", remote)
    original = make_payment_session(dev_a)
    out = dev_a.ops("share", "xyz789ab", "--redact")
    assert out.exit_code == 0, out.output
    assert out.stdout == "xyz789ab\n"  # the id to hand a teammate, alone on stdout
    assert "masked 1 secret" in out.stderr and "taurus chat --session xyz789ab" in out.stderr
    assert original.read_bytes().count(SECRET.encode()) == 1  # the session itself is unchanged
    assert not any(SECRET.encode() in data for data in remote.raw_objects().values())
    shown = dev_b.ops("show", "xyz789ab")
    assert shown.exit_code == 0, shown.output
    assert "xyz789ab was not here: downloaded it from" in shown.stderr
    assert f"{remote.url}/shared/xyz789ab.json (shared by dev-a)" in shown.stderr
    assert "payment integration" in shown.stdout
    fetched = dev_b.sessions / "2025-01-18_xyz789ab.json"
    assert fetched.stat().st_mode & 0o777 == 0o600
    assert "[REDACTED:anthropic-key]" in fetched.read_text()
    exported = dev_b.ops("export", "xyz789ab")
    assert exported.exit_code == 0 and "was not here" not in exported.stderr  # local now
    assert "payment integration" in exported.stdout
    again = dev_a.ops("share", "xyz789ab", "--redact")
    assert "already shared, unchanged" in again.stderr
    missing = dev_b.ops("show", "nothere1")
    assert missing.exit_code == 1 and "nor in the remote's shared area" in missing.stderr


def test_export_fetches_a_shared_session_too(remote, tmp_path: Path) -> None:
    dev_a, dev_b = Machine(tmp_path, "dev-a", remote), Machine(tmp_path, "dev-b", remote)
    make_payment_session(dev_a)
    assert dev_a.ops("share", "xyz789ab").exit_code == 0
    out = dev_b.ops("export", "xyz789ab", "--format", "json")
    assert out.exit_code == 0, out.output
    assert "downloaded it from" in out.stderr
    assert json.loads(out.stdout)["sessionId"] == "xyz789ab"


def test_chat_session_fetches_a_shared_session(s3_server, tmp_path: Path, fake_api) -> None:
    remote = make_remote("s3", tmp_path, s3_server)  # the fetch is the same for a folder
    dev_a, dev_b = Machine(tmp_path, "dev-a", remote), Machine(tmp_path, "dev-b", remote)
    make_payment_session(dev_a)
    assert dev_a.ops("share", "xyz789ab").exit_code == 0
    fake_api.add(text("I have the whole investigation."))
    from click.testing import CliRunner

    from taurus_ops.cli.chat_main import cli as chat_cli

    done = CliRunner().invoke(
        chat_cli,
        ["chat", "--session", "xyz789ab", "-p", "Thanks. Let me implement the fix."],
        env={**dev_b.env(), "ANTHROPIC_BASE_URL": fake_api.base_url},
    )
    assert done.exit_code == 0, done.output
    assert "I have the whole investigation." in done.stdout
    assert "downloaded it from" in done.stderr
    sent = fake_api.sent(-1)
    assert "payment integration" in sent[0]["content"]
    saved = fmt.loads((dev_b.sessions / "2025-01-18_xyz789ab.json").read_bytes())
    assert saved["messages"][-1]["content"] == "I have the whole investigation."


def test_a_remote_error_while_fetching_is_one_line(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    dev_b = Machine(tmp_path, "dev-b", remote)
    remote.folder.rmdir()
    out = dev_b.ops("show", "xyz789ab")
    assert out.exit_code == 1 and out.stderr.count("\n") == 1
    assert "does not exist (is it mounted?)" in out.stderr
    assert not dev_b.sessions.exists() or not list(dev_b.sessions.iterdir())


def test_encrypted_remote_unreadable_without_the_key_and_right_with_it(
    remote, tmp_path: Path
) -> None:
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    init = desk.ops("remote", "init", "--encrypt")
    assert init.exit_code == 0, init.output
    key_file = desk.home / "remote.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "encryptionKeyFile" in init.stdout
    desk.write_config(encryptionKeyFile=str(key_file))
    make_payment_session(desk)
    os.symlink("2025-01-18_xyz789ab.json", desk.sessions / "payment-bug.json")
    assert desk.ops("sync").exit_code == 0, desk.ops("sync").output
    assert desk.ops("share", "xyz789ab").exit_code == 0
    objects = remote.raw_objects()
    assert any(k.startswith("sessions/") for k in objects)
    for key, data in objects.items():
        for clear in (b"payment integration", b"payment-bug", SECRET.encode(), b"Investigate"):
            assert clear not in data, f"{key} holds {clear!r} in clear"
    # no key: one line, nothing written here
    out = laptop.ops("sync")
    assert out.exit_code == 2 and out.stderr.count("\n") == 1, out.output
    assert "is encrypted (key id" in out.stderr and "remote.encryptionKeyFile" in out.stderr
    assert laptop.files() == {}
    # the wrong key: one line, nothing written here
    other = laptop.home / "other.key"
    refused = laptop.ops("remote", "init", "--encrypt", "--key-file", str(other))
    assert refused.exit_code == 2 and "copy its key" in refused.stderr
    assert not other.exists()  # no new key for a remote that has one
    new_key_file(other)
    laptop.write_config(encryptionKeyFile=str(other))
    out = laptop.ops("sync")
    assert out.exit_code == 2 and "wrong key" in out.stderr and out.stderr.count("\n") == 1
    assert laptop.files() == {}
    shown = laptop.ops("show", "xyz789ab")
    assert shown.exit_code != 0 and "wrong key" in shown.stderr and "Traceback" not in shown.output
    # the right key (copied from the first machine): every byte as it was
    shutil.copy(key_file, laptop.home / "copied.key")
    laptop.write_config(encryptionKeyFile=str(laptop.home / "copied.key"))
    out = laptop.ops("sync")
    assert out.exit_code == 0, out.output
    assert laptop.files() == desk.files()
    assert laptop.names() == desk.names()


def test_an_altered_encrypted_object_is_one_clear_line(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    desk, laptop = Machine(tmp_path, "desk", remote), Machine(tmp_path, "laptop", remote)
    assert desk.ops("remote", "init", "--encrypt").exit_code == 0
    key_file = desk.home / "remote.key"
    desk.write_config(encryptionKeyFile=str(key_file))
    desk.add("tamper01")
    desk.add("intact01")
    assert desk.ops("sync").exit_code == 0
    target = remote.folder / "sessions" / "tamper01.json"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))
    shutil.copy(key_file, laptop.home / "k")
    laptop.write_config(encryptionKeyFile=str(laptop.home / "k"))
    out = laptop.ops("sync")
    assert out.exit_code == 1
    assert "tamper01.json cannot be decrypted" in out.stderr and "altered" in out.stderr
    assert sorted(laptop.files()) == ["sessions/2025-01-18_intact01.json"]  # no garbage


def test_plain_remote_refuses_an_encryption_key(tmp_path: Path) -> None:
    remote = make_remote("file", tmp_path)
    desk = Machine(tmp_path, "desk", remote)
    desk.add("plain001")
    assert desk.ops("sync").exit_code == 0
    refused = desk.ops("remote", "init", "--encrypt")
    assert refused.exit_code == 2 and "already holds plain objects" in refused.stderr
    assert not (desk.home / "remote.key").exists()
    new_key_file(desk.home / "remote.key")
    desk.write_config(encryptionKeyFile=str(desk.home / "remote.key"))
    out = desk.ops("sync")
    assert out.exit_code == 2 and "is not encrypted" in out.stderr


def test_escape_sequences_in_a_shared_session_never_reach_the_terminal(store, ops) -> None:
    osc = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    doc = make_document("esc001", first=f"hello {osc} world")
    doc["title"] = "T\x1b]0;PWNED\x07itle"
    doc["messages"][1]["content"][0]["text"] = "line one\nline \x9b2J two"
    doc["toolCalls"].append({"tool": "edit", "file": "src/\x1b[2Jx.ts"})
    write_session(store.session_dir, doc)
    for args in (["list"], ["show", "esc001"], ["search", "hello"], ["search", "line"], ["stats"]):
        out = ops(*args).output
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, (args, out)
    assert "hello \ufffd]52;c;ZXZpbA==\ufffd world" in ops("show", "esc001").output
