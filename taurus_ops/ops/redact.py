"""Masking secrets before a session leaves the machine (``export --redact``).

Every string in the document (message text, tool input and output, titles, any
field) is scanned; each secret found is replaced by ``[REDACTED:<kind>]``. Keys
(field names) are left alone. The patterns cover:

- Anthropic keys (``sk-ant-...``), OpenAI keys (``sk-...``, ``sk-proj-...``)
- AWS access key ids (``AKIA...``/``ASIA...``) and ``aws_secret_access_key = ...``
- GitHub tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``)
- Slack tokens (``xoxb-``, ``xoxp-``, ...) and Slack webhook URLs
- ``Authorization: Bearer ...`` and other bearer tokens
- PEM private key blocks (``-----BEGIN ... PRIVATE KEY-----`` to its END line)
- ``password=...``-style assignments (password, passwd, pwd, secret, token,
  api_key, client_secret ...): the value is masked, the name kept; a value that only
  names a secret (``None``, ``${DB_PASSWORD}``, ``get_token()``, ``****``) is left alone.
  A JSON field with such a name (a tool input's ``{"password": "..."}``) is masked whole
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from taurus_ops.words import plural

_ASSIGN_NAMES = (
    r"(?:[A-Za-z0-9_]*_)?(?:password|passwd|passphrase|pwd|secret|secret_key|api_?key|"
    r"access_?token|auth_?token|token|client_?secret|private_?key)"
)

# (kind, pattern, group to mask or 0 for the whole match); order matters: the more
# specific patterns run first and their masks no longer match the later ones
PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            re.S,
        ),
        0,
    ),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}"), 0),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"), 0),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[0-9A-Z]{16}\b"), 0),
    (
        "aws-secret-key",
        re.compile(
            r"(?i)\baws_?secret_?access_?key\b[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
    ),
    ("github-token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b"), 0),
    ("github-token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), 0),
    ("slack-token", re.compile(r"\bxox[abposer]-[A-Za-z0-9\-]{10,}"), 0),
    (
        "slack-webhook",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"),
        0,
    ),
    ("bearer-token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/\-]{12,}=*)"), 1),
    (
        "password",
        re.compile(
            rf"(?i)(?<![A-Za-z0-9]){_ASSIGN_NAMES}[\"']?\s*[:=]\s*"
            r"(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'|([^\s\"',;&]{1,200}))"
        ),
        -1,  # whichever value group matched
    ),
]

MASK = "[REDACTED:{kind}]"


@dataclass
class Redaction:
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.total:
            return "no secrets found"
        parts = ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items()))
        return f"masked {plural(self.total, 'secret')} ({parts})"


def _is_mask(text: str) -> bool:
    return text.startswith("[REDACTED:")


_NOT_SECRETS = {"none", "null", "nil", "true", "false", "undefined", "required", "optional"}


def _is_placeholder(value: str) -> bool:
    """A value that names a secret rather than being one: ``None``, ``${PASSWORD}``, ``get()``."""
    return (
        value.lower() in _NOT_SECRETS
        or value.startswith(("$", "{", "%", "<", "os.environ", "process.env", "env("))
        or "(" in value
        or set(value) <= {"*", "x", "X", "."}
    )


def redact_text(text: str, found: Redaction | None = None) -> str:
    """``text`` with every secret masked; counts go into ``found``."""
    found = found if found is not None else Redaction()
    for kind, pattern, group in PATTERNS:

        def replace(match: re.Match[str], kind: str = kind, group: int = group) -> str:
            if group == 0:
                found.counts[kind] += 1
                return MASK.format(kind=kind)
            index = (
                group
                if group > 0
                else next(
                    (i for i in range(1, (match.lastindex or 0) + 1) if match.group(i) is not None),
                    0,
                )
            )
            value = match.group(index) if index else None
            if not value or _is_mask(value) or (kind == "password" and _is_placeholder(value)):
                return match.group(0)
            found.counts[kind] += 1
            start, end = match.span(index)
            whole_start = match.start(0)
            whole = match.group(0)
            return (
                whole[: start - whole_start] + MASK.format(kind=kind) + whole[end - whole_start :]
            )

        text = pattern.sub(replace, text)
    if "PRIVATE KEY-----" in text:
        text = _mask_key_fragments(text, found)
    return text


# A line of a PEM body as a tool shows it: base64, headers, and the read tool's
# "     12\t" line numbers. Used for keys cut short (a read with a limit, a capped output).
_KEY_LINE = re.compile(r"[A-Za-z0-9+/=\t :,.\-]*")
_KEY_BEGIN = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:\r?\n[A-Za-z0-9+/=\t :,.\-]*)*"
)
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")


def _mask_key_fragments(text: str, found: Redaction) -> str:
    """Mask the part of a private key left when its BEGIN or END line was cut off."""
    mask = MASK.format(kind="private-key")

    def begin(match: re.Match[str]) -> str:
        found.counts["private-key"] += 1
        return mask

    text = _KEY_BEGIN.sub(begin, text)
    out: list[str] = []
    last = 0
    for match in _KEY_END.finditer(text):
        start = match.start()
        # walk back over whole key-like lines before the END line (linear, no backtracking)
        line_start = max(text.rfind("\n", last, start) + 1, last)
        if not _KEY_LINE.fullmatch(text[line_start:start]):
            line_start = start
        while line_start > last:
            prev = text.rfind("\n", last, line_start - 1) + 1
            prev = max(prev, last)
            if not _KEY_LINE.fullmatch(text[prev : line_start - 1].rstrip("\r")):
                break
            line_start = prev
        out.append(text[last:line_start])
        out.append(mask)
        found.counts["private-key"] += 1
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def redact(value: Any, found: Redaction | None = None) -> Any:
    """A copy of a JSON value with every string redacted (dict keys kept)."""
    found = found if found is not None else Redaction()
    if isinstance(value, str):
        return redact_text(value, found)
    if isinstance(value, list):
        return [redact(v, found) for v in value]
    if isinstance(value, dict):
        return {k: _redact_field(k, v, found) for k, v in value.items()}
    return value


_SECRET_FIELD = re.compile(rf"(?i){_ASSIGN_NAMES}")


def _redact_field(key: Any, value: Any, found: Redaction) -> Any:
    """A field named like a secret (``{"password": "..."}``, ``GITHUB_TOKEN``) is masked whole."""
    if (
        isinstance(key, str)
        and isinstance(value, str)
        and value.strip()
        and _SECRET_FIELD.fullmatch(key)
        and not _is_mask(value)
        and not _is_placeholder(value)
    ):
        found.counts["password"] += 1
        return MASK.format(kind="password")
    return redact(value, found)
