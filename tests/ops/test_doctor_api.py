"""Acceptance: a session the doctor repaired is resumed by `taurus chat` and sent to the
(fake) Messages API without a 400, with every salvaged message in the history."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from helpers.damage import DAMAGES, message_spans
from helpers.fake_api import text
from helpers.jobs import run_doctor
from helpers.sessions import make_document, write_session

from taurus_ops.ops.doctor.document import is_interrupted_result

CHAT = [sys.executable, "-c", "from taurus_ops.cli.chat_main import main; main()"]


def _cut_inside_a_tool_result(raw: bytes) -> bytes:
    start, end = message_spans(raw)[2]  # the first tool_result: its tool_use dangles
    return raw[: (start + end) // 2]


CASES = {
    "cut-mid-tool-result": _cut_inside_a_tool_result,
    "nul-hole": lambda raw: DAMAGES["nul-hole"](raw, random.Random(5)).data,
    "invalid-utf8": lambda raw: DAMAGES["invalid-utf8"](raw, random.Random(2)).data,
    "concatenated": lambda raw: DAMAGES["concatenated"](raw, random.Random(3)).data,
    "nul-tail": lambda raw: DAMAGES["nul-tail"](raw, random.Random(11)).data,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_repaired_session_resumes_against_the_api(fake_api, store, taurus_home, case):
    doc = make_document("abc123", n_turns=4)
    path = write_session(store.session_dir, doc)
    path.write_bytes(CASES[case](path.read_bytes()))
    report = run_doctor(taurus_home, store.session_dir, store.archive_dir, fix=True)
    assert report.exit_code == 0, report.lines()
    repaired = store.load(path).messages
    assert repaired and repaired[0] == doc["messages"][0]

    fake_api.add(text("Picking up where we left off."))
    run = subprocess.run(
        [*CHAT, "chat", "-p", "Please continue.", "-s", "abc123"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert run.returncode == 0, run.stderr
    assert "Picking up where we left off." in run.stdout
    assert not fake_api.rejected, fake_api.rejected
    sent = json.dumps(fake_api.requests[-1]["messages"], ensure_ascii=False)
    for message in repaired:  # every salvaged message reached the model
        content = message["content"]
        if isinstance(content, str):
            assert json.dumps(content, ensure_ascii=False) in sent
        else:
            for block in content:
                if block["type"] == "tool_use":
                    assert json.dumps(block["id"]) in sent
                elif block["type"] == "text":
                    assert json.dumps(block["text"], ensure_ascii=False) in sent
    if case == "cut-mid-tool-result":
        assert is_interrupted_result(repaired[2])
    # the chat saved the new turn into the repaired file, and the store stays healthy
    assert "Picking up where we left off." in json.dumps(store.load(path).messages[-1])
    assert run_doctor(taurus_home, store.session_dir, store.archive_dir).exit_code == 0
