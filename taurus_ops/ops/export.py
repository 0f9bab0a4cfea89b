"""Exporting sessions as Markdown, HTML or JSON (``taurus-ops export``).

``run(ctx, ExportRequest(...))`` is the job: one session (its text, or a file) or
every session into a folder (``--all``). ``render`` makes one export and writes nothing.

Rendering uses Jinja2 templates: the built-ins in ``templates/export/`` or a user's
own (``--template FILE``). Every template runs in Jinja's immutable sandbox with
strict undefined variables: no attribute starting with ``_``, no Python internals,
no file access (``include``/``import`` only reach the built-in templates), no
mutation of the data, and bounded ``*``/``**``/``range``; a user's own template
also stops at a time, output and memory limit (``taurus_ops.ops.sandbox``). A
template sees only plain data, described in README ("Export templates"):

- ``session``: id, title, file, created, updated, messages, tool_calls, tools
  (``[{name, count}]``), names, model, cwd, usage
- ``turns``: one per message: number, role, heading (USER, ASSISTANT, TOOL RESULT),
  interrupted, blocks (``kind`` text | tool_use | tool_result | thinking | other, with
  ``text``, ``name``, ``input``, ``output``, ``is_error``, ``tool``)
- ``tool_calls``, ``exported`` (time), ``redacted`` (secrets masked), ``version``

Filters: ``fence(text, lang)`` (a fenced block whose fence is longer than any
backtick run inside), ``code(text)`` (inline code, same rule), ``segments(text)``
(Markdown text split into prose and fenced code, for HTML), ``local_time``.

A dangling tool_use (a chat stopped while a tool ran) is shown with the
"interrupted" result that ``taurus_ops.store.mend`` gives it; the JSON format
exports the document itself.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import TaurusError, UsageError
from taurus_ops.ops.context import JobResult
from taurus_ops.ops.redact import Redaction, redact
from taurus_ops.ops.sandbox import Renderer, TemplateLimit, make_sandbox
from taurus_ops.store import format as fmt
from taurus_ops.store.mend import mend_tool_uses
from taurus_ops.store.session import Session
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.store import SessionStore

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "templates" / "export"
FORMATS: dict[str, tuple[str | None, str]] = {
    "markdown": ("markdown.md.j2", ".md"),
    "html": ("html.html.j2", ".html"),
    "json": (None, ".json"),
}
MAX_TEMPLATE_BYTES = 1_000_000


@dataclass
class Rendered:
    text: str
    redaction: Redaction | None
    suffix: str


# -- filters -------------------------------------------------------------------------
def _longest_run(text: str, char: str = "`") -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)


def fence(text: Any, lang: str = "") -> str:
    """A fenced code block that ``text`` (backticks and all) cannot close early."""
    body = str(text).rstrip("\n")
    marks = "`" * max(3, _longest_run(body) + 1)
    return f"{marks}{lang}\n{body}\n{marks}"


def code(text: Any) -> str:
    """Inline code that survives backticks inside."""
    body = str(text)
    marks = "`" * (_longest_run(body) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{marks}{pad}{body}{pad}{marks}"


_FENCE_OPEN = re.compile(r"^(\s{0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")


def segments(text: Any) -> list[dict[str, str]]:
    """Markdown text as ``[{kind: text|code, lang, body}]`` (fenced blocks found)."""
    out: list[dict[str, str]] = []
    lines = str(text).split("\n")
    buffer: list[str] = []
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if opened:
            marker = opened.group(2)
            closing = re.compile(rf"^\s{{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
            if end is not None:
                if buffer:
                    out.append({"kind": "text", "lang": "", "body": "\n".join(buffer).strip("\n")})
                    buffer = []
                out.append(
                    {"kind": "code", "lang": opened.group(3), "body": "\n".join(lines[i + 1 : end])}
                )
                i = end + 1
                continue
        buffer.append(lines[i])
        i += 1
    if buffer and "\n".join(buffer).strip():
        out.append({"kind": "text", "lang": "", "body": "\n".join(buffer).strip("\n")})
    return out


def local_time(value: Any, pattern: str = "%Y-%m-%d %H:%M") -> str:
    moment = fmt.parse_time(value)
    return moment.astimezone().strftime(pattern) if moment else str(value or "")


# -- the data a template sees ----------------------------------------------------------
def _result_text(content: Any) -> str:
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')}]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def _blocks(content: Any, tool_names: dict[str, str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"kind": "text", "text": content}]
    if not isinstance(content, list):
        return []
    blocks: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            blocks.append({"kind": "text", "text": block})
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            blocks.append({"kind": "text", "text": str(block.get("text", ""))})
        elif kind == "tool_use":
            name = str(block.get("name", "?"))
            tool_names[str(block.get("id"))] = name
            blocks.append(
                {
                    "kind": "tool_use",
                    "name": name,
                    "id": str(block.get("id", "")),
                    "input": json.dumps(block.get("input", {}), indent=2, ensure_ascii=False),
                }
            )
        elif kind == "tool_result":
            blocks.append(
                {
                    "kind": "tool_result",
                    "tool": tool_names.get(str(block.get("tool_use_id")), ""),
                    "output": _result_text(block.get("content")),
                    "is_error": bool(block.get("is_error")),
                }
            )
        elif kind == "thinking":
            blocks.append({"kind": "thinking", "text": str(block.get("thinking", ""))})
        else:
            blocks.append({"kind": "other", "text": f"[{kind or 'unknown'} block]"})
    return blocks


def build_context(
    data: dict[str, Any], path: Path | None = None, names: list[str] | None = None
) -> dict[str, Any]:
    """The plain data every export template renders (see the module docstring)."""
    from taurus_ops import __version__

    found = data.get("messages")
    original: list[Any] = found if isinstance(found, list) else []
    messages = copy.deepcopy(original)
    mend_tool_uses(messages)
    tool_names: dict[str, str] = {}
    turns = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            continue
        role = str(message.get("role", "?"))
        blocks = _blocks(message.get("content"), tool_names)
        only_results = bool(blocks) and all(b["kind"] == "tool_result" for b in blocks)
        turns.append(
            {
                "number": number,
                "role": role,
                "heading": "TOOL RESULT" if only_results else role.upper(),
                "blocks": blocks,
                "interrupted": bool(message.get("interrupted")),
            }
        )
    calls = [c for c in data.get("toolCalls", []) or [] if isinstance(c, dict)]
    counts = Counter(str(c.get("tool")) for c in calls if c.get("tool"))
    session = Session(data)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return {
        "session": {
            "id": session.id,
            "title": session.title,
            "file": fmt.clean_text(path.name) if path else "",
            "created": session.created,
            "updated": session.updated,
            "messages": len(original),
            "tool_calls": len(calls),
            "tools": [{"name": n, "count": c} for n, c in counts.most_common()],
            "names": list(names or []),
            "model": data.get("model") if isinstance(data.get("model"), str) else "",
            "cwd": data.get("cwd") if isinstance(data.get("cwd"), str) else "",
            "usage": dict(usage) if usage else {},
            **_family(data),
        },
        "turns": turns,
        "tool_calls": calls,
        "exported": fmt.now_iso(),
        "version": __version__,
        "redacted": 0,
    }


def _family(data: dict[str, Any]) -> dict[str, Any]:
    """``parent`` (the session this one was forked or compacted from) and ``forked_at``."""
    parent = data.get("parentSession")
    forked = data.get("forkedAt")
    return {
        "parent": parent if isinstance(parent, str) else "",
        "forked_at": forked if isinstance(forked, int) and not isinstance(forked, bool) else None,
    }


# -- the sandbox -------------------------------------------------------------------------
def make_environment(user_template: tuple[str, str] | None = None) -> Any:
    """The sandboxed Jinja environment: built-ins, plus one user template if given."""
    import jinja2

    loaders: list[Any] = []
    if user_template is not None:
        loaders.append(jinja2.DictLoader({user_template[0]: user_template[1]}))
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_DIR)))
    env = make_sandbox(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=lambda name: bool(name) and name.endswith((".html", ".htm", ".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fence=fence, code=code, segments=segments, local_time=local_time)
    return env


def _template_name(path: Path) -> str:
    name = path.name
    return name if name.endswith(".j2") else name + ".j2"


def read_user_template(path: Path) -> tuple[str, str]:
    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero or a pipe must not eat memory
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"no template file {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a template file") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise UsageError(f"{path} is larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    return "user:" + _template_name(path), text


def suffix_for(fmt_name: str, template: Path | None) -> str:
    if template is not None:
        name = template.name.removesuffix(".j2").removesuffix(".jinja")
        return Path(name).suffix or ".txt"
    return FORMATS[fmt_name][1]


def render(
    session: Session,
    fmt_name: str = "markdown",
    template: Path | None = None,
    redact_secrets: bool = False,
    names: list[str] | None = None,
    user_source: tuple[str, str] | None = None,
    exported: str | None = None,
) -> Rendered:
    """Render one session; nothing is written."""
    import jinja2

    if fmt_name not in FORMATS:
        raise UsageError(f"unknown format {fmt_name!r}: use {', '.join(FORMATS)}")
    found = Redaction() if redact_secrets else None
    data = redact(session.data, found) if found is not None else session.data
    suffix = suffix_for(fmt_name, template)
    if template is None and fmt_name == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        return Rendered(text, found, suffix)
    context = build_context(data, session.path, names)
    context["redacted"] = found.total if found is not None else 0
    if exported:
        context["exported"] = exported
    if template is not None:
        user_source = user_source or read_user_template(template)
        name = user_source[0]
    else:
        name = FORMATS[fmt_name][0]  # type: ignore[assignment]
    env = make_environment(user_source)
    label = f"template error ({template or name})"
    try:
        if template is None:  # a built-in: trusted, and as large as the session it shows
            text = env.get_template(name).render(**context)
        else:  # a user's own: within the sandbox's time, output and memory limits
            with Renderer(label) as renderer:
                text = renderer.render(env.get_template(name), context)
    except TemplateLimit:
        raise
    except jinja2.TemplateSyntaxError as exc:
        where = f"{template or name}, line {exc.lineno}"
        raise UsageError(f"template error ({where}): {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise UsageError(f"template error ({template or name}): no template {exc.name!r}") from None
    except jinja2.TemplateError as exc:
        raise UsageError(f"template error ({template or name}): {exc}") from None
    except Exception as exc:  # whatever a template's filters raise (KeyError,
        # AttributeError, AssertionError, MemoryError ...) is that template's error: one line
        raise UsageError(
            f"template error ({template or name}): {exc or type(exc).__name__}"
        ) from None
    if template is None:
        text = text.rstrip("\n") + "\n"
    return Rendered(text, found, suffix)


# -- writing ------------------------------------------------------------------------------
def write_output(target: Path, text: str, force: bool = False) -> None:
    """Write an export file: 0600, atomically, always valid UTF-8 (an undecodable byte
    from a file name as U+FFFD). Without ``force`` nothing existing is ever replaced,
    not even a file (or link) that appeared after the caller looked: a UsageError."""
    from taurus_ops.store.atomic import atomic_create, atomic_write

    data = fmt.clean_text(text).encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if force:
            atomic_write(target, data)
        else:
            atomic_create(target, data)
    except FileExistsError:
        raise UsageError(f"{target} exists (use --force to overwrite)") from None
    except OSError as exc:  # a full disk: nothing is left behind, and nothing is claimed
        raise WriteFailed(f"could not write {target}: {exc.strerror or exc}", exc.errno) from None


class WriteFailed(TaurusError):
    """An export file could not be written (the partial file is removed)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    @property
    def out_of_room(self) -> bool:
        """A full disk or quota, a read-only file system: every later file fails too."""
        import errno

        return self.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


# -- --all --------------------------------------------------------------------------------
def plan_all(sources: list[Path], out_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(session file, output file) for each session: ``2025-01-18_abc123.md`` and so on."""
    return [(src, out_dir / (src.name.removesuffix(".json") + suffix)) for src in sorted(sources)]


# -- the job ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportRequest:
    ref: str | None = None  # the one session to export
    all_sessions: bool = False  # every session instead, each into its own file in ``output``
    format: str = "markdown"  # markdown | html | json
    template: Path | None = None  # a user's own Jinja template instead of the format's
    output: Path | None = None  # the file (the folder, for all); None or "-": the text returned
    redact: bool = False  # mask secrets first
    archived: bool = False  # with ``all_sessions``: the archived sessions too
    force: bool = False  # replace files that exist


@dataclass
class ExportResult(JobResult):
    """One session's export (``text`` for standard output, or the file ``written``), or
    for every session: how many were ``exported`` into ``folder``, and what ``failed``."""

    text: str | None = None
    written: Path | None = None
    redaction: Redaction | None = None  # what one session's redaction masked
    folder: Path | None = None
    exported: int = 0
    masked: int = 0  # secrets masked across every session
    failed: list[str] = field(default_factory=list)  # "<file>: why", one per session not done

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            "written": str(self.written) if self.written else None,
            "folder": str(self.folder) if self.folder else None,
            "exported": self.exported if self.folder else int(self.written is not None),
            "redacted": self.redaction.total if self.redaction is not None else self.masked,
            "failed": self.failed,
        }


def run(ctx: JobContext, request: ExportRequest) -> ExportResult:
    """Export as asked. Nothing existing is replaced without ``force``, nothing is written
    into the session or archive directory, and with ``all_sessions`` one session that
    cannot be exported never stops the others (a full disk stops them all)."""
    user_source = read_user_template(request.template) if request.template is not None else None
    if request.all_sessions:
        if request.ref:
            raise UsageError("give either REF or --all, not both")
        if request.output is None:
            raise UsageError("--all needs -o DIR")
        return _export_all(ctx.store, request, request.output, user_source)
    if not request.ref:
        raise UsageError("give a session REF (or --all -o DIR)")
    return _export_one(ctx.store, request, request.ref, user_source)


def _refuse_store_path(store: SessionStore, target: Path) -> None:
    from taurus_ops.store.refs import inside

    for folder in (store.session_dir, store.archive_dir):
        if folder is not None and inside(target, folder):
            raise UsageError(f"refusing to write an export into {folder}: choose another place")


def _export_one(
    store: SessionStore, request: ExportRequest, ref: str, user_source: tuple[str, str] | None
) -> ExportResult:
    session = store.load_ref(ref)
    path = session.path
    assert path is not None, "a session loaded from the store has its file"
    names = store.names().get(os.path.realpath(path), [])
    rendered = render(session, request.format, request.template, request.redact, names, user_source)
    output = request.output
    if output is None or str(output) == "-":
        return ExportResult(text=rendered.text, redaction=rendered.redaction)
    _refuse_store_path(store, output)
    if output.exists() and output.is_dir():
        output = output / (path.name.removesuffix(".json") + rendered.suffix)
    if output.exists() and not request.force:
        raise UsageError(f"{output} exists (use --force to overwrite)")
    write_output(output, rendered.text, request.force)
    return ExportResult(written=output, redaction=rendered.redaction)


def _export_all(
    store: SessionStore,
    request: ExportRequest,
    folder: Path,
    user_source: tuple[str, str] | None,
) -> ExportResult:
    _refuse_store_path(store, folder)
    sources = store.files() + (store.files(archived=True) if request.archived else [])
    plan = plan_all(sources, folder, suffix_for(request.format, request.template))
    if not request.force:
        existing = [dst for _, dst in plan if dst.exists()]
        if existing:
            raise UsageError(
                f"{plural(len(existing), 'file already exists', 'files already exist')} "
                f"in {folder}, e.g. {existing[0].name} (use --force to overwrite)"
            )
    names = store.names()
    result = ExportResult(folder=folder)
    for number, (src, dst) in enumerate(plan):
        try:
            session = store.load(src)
            rendered = render(
                session,
                request.format,
                request.template,
                request.redact,
                names.get(os.path.realpath(src), []),
                user_source,
            )
        except Exception as exc:  # one bad file must not stop the rest
            result.failed.append(f"{src.name}: {exc}")
            continue
        try:
            write_output(dst, rendered.text, request.force)
        except WriteFailed as exc:  # a full disk: reported, and not counted as exported
            result.failed.append(f"{src.name}: {exc}")
            if exc.out_of_room:
                rest = len(plan) - number - 1
                if rest:
                    result.failed.append(
                        f"the other {plural(rest, 'session')}: not tried (no room left)"
                    )
                break
            continue
        except UsageError as exc:
            result.failed.append(f"{src.name}: {exc}")
            continue
        result.masked += rendered.redaction.total if rendered.redaction else 0
        result.exported += 1
    return result
