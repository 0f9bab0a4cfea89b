"""Shared checks for the doctor's tests: what "recovered", "invented" and "valid" mean."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.document import is_interrupted_result
from taurus_ops.ops.doctor.unreadable import LEFT_OUT, REPAIRED_FIELD


def api_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The request a chat resuming this history would send (plus one new user turn)."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [*messages, {"role": "user", "content": "Please continue."}],
    }


def assert_api_accepts(messages: list[dict[str, Any]]) -> None:
    """Validate the history as the fake Messages API does (raises on a 400).

    Only what the chat always strips before sending goes: its bookkeeping fields on
    messages and blocks (``timestamp``, ``usage``...). No message or block is dropped,
    so a history the doctor left broken fails here.
    """
    from helpers.fake_api import BLOCK_FIELDS, MESSAGE_FIELDS, validate_request

    def strip(message: Any) -> Any:
        if not isinstance(message, dict):
            return message
        out = {k: v for k, v in message.items() if k in MESSAGE_FIELDS}
        if isinstance(out.get("content"), list):
            out["content"] = [
                {k: v for k, v in b.items() if k in BLOCK_FIELDS.get(b.get("type"), b)}
                if isinstance(b, dict)
                else b
                for b in out["content"]
            ]
        return out

    validate_request(api_body([strip(m) for m in messages]))


def _close(recovered: Any, original: Any) -> bool:
    """Equal, except that U+FFFD in ``recovered`` may stand for a few unreadable characters."""
    if isinstance(recovered, str) and isinstance(original, str):
        if recovered == original:
            return True
        if "\ufffd" not in recovered:
            return False
        pattern = ".{0,4}".join(re.escape(part) for part in recovered.split("\ufffd"))
        return re.fullmatch(pattern, original, re.S) is not None
    if isinstance(recovered, dict) and isinstance(original, dict):
        if len(recovered) != len(original):
            return False
        pairs = zip(recovered.items(), original.items(), strict=True)
        return all(_close(rk, ok) and _close(rv, ov) for (rk, rv), (ok, ov) in pairs)
    if isinstance(recovered, list) and isinstance(original, list):
        return len(recovered) == len(original) and all(
            _close(a, b) for a, b in zip(recovered, original, strict=True)
        )
    return recovered == original


def without(value: Any, paths: list[str]) -> Any:
    """A copy of ``value`` without the members at ``paths`` (``usage.inputTokens``, ``a[0].b``)."""
    if not paths:
        return value
    out = json.loads(json.dumps(value))
    for path in paths:
        steps = [
            int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[]+", path)
        ]
        node = out
        try:
            for step in steps[:-1]:
                node = node[step]
            del node[steps[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # not a member of this value: nothing to leave out
    return out


def compare(recovered: list[Any], original: list[Any]) -> dict[str, Any]:
    """Match recovered messages to the original ones, in order.

    intact: equal to an original message; altered: equal but for unreadable bytes
    shown as U+FFFD; invented: matching no original message (a cut message
    "completed", a guess); mended: the doctor's interrupted tool results (expected).
    The doctor's own ``repaired`` note on a message is not part of the message.
    """
    intact = altered = invented = mended = 0
    matched: list[int] = []
    j = 0
    for message in recovered:
        if isinstance(message, dict) and is_interrupted_result(message):
            mended += 1
            continue
        left_out: list[str] = []
        if isinstance(message, dict) and REPAIRED_FIELD in message:
            note = str(message[REPAIRED_FIELD])
            if LEFT_OUT in note:
                left_out = note.split(LEFT_OUT, 1)[1].split("; ")[0].split(", ")
            message = {k: v for k, v in message.items() if k != REPAIRED_FIELD}
        k = j
        while k < len(original) and (left_out or original[k] != message):
            k += 1
        if k < len(original):
            intact += 1
            matched.append(k)
            j = k + 1
            continue
        k = j
        while k < len(original) and not _close(message, without(original[k], left_out)):
            k += 1
        if k < len(original):
            altered += 1
            matched.append(k)
            j = k + 1
        else:
            invented += 1
    return {
        "intact": intact,
        "altered": altered,
        "invented": invented,
        "mended": mended,
        "lost": len(original) - intact - altered,
        "matched": matched,
    }


def tree(root: Path) -> dict[str, Any]:
    """Every path under ``root`` with its bytes (files), link text (links) or None (dirs)."""
    out: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = None
    return out
