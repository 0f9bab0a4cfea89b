"""Session content as safe HTML: Markdown, highlighted code, diffs and tool calls.

Everything a session holds is untrusted (a shared file, a tool's output, a model that
was told to write ``<script>``), so:

- Markdown is rendered by markdown-it with raw HTML off: ``<script>`` and
  ``<img onerror=...>`` come out as text;
- a link is kept only for ``http``, ``https`` and ``mailto`` (no ``javascript:``,
  ``data:``, ``file:`` or relative links into the viewer) and opens in a new tab with
  no referrer; an image is shown as a link, never loaded;
- code is escaped by Pygments (or by ``markupsafe.escape`` when too long to highlight);
- no markup here carries a ``style`` attribute or an event handler, so the page's
  Content-Security-Policy (no inline script or style) holds everywhere.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

from taurus_ops.web.transcript import SHOWN_CHARS, Block, Call, Result

HIGHLIGHT_LIMIT = 60_000  # longer code is shown escaped but not coloured
DIFF_LINES = 3_000  # an edit larger than this is shown as old and new text, not a diff
SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_FORMATTER = HtmlFormatter(nowrap=True)


# -- links ---------------------------------------------------------------------------------
def safe_url(url: str) -> bool:
    """True for an absolute http(s) or mailto URL; every other link is shown as text."""
    compact = _CONTROL.sub("", url)  # browsers ignore tabs and newlines inside a scheme
    match = _SCHEME.match(compact)
    return match is not None and match.group(1).lower() in SAFE_SCHEMES


# -- code ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _lexer(name: str, by_file: bool) -> Lexer | None:
    try:
        if by_file:
            return get_lexer_for_filename(name, stripnl=False, ensurenl=False)
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except (ClassNotFound, ValueError):
        return None


def lexer_for(lang: str = "", filename: str = "") -> Lexer | None:
    if lang:
        return _lexer(lang.lower()[:40], False)
    if filename:
        return _lexer(filename.rsplit("/", 1)[-1][:200], True)
    return None


def code_lines(code: str, lang: str = "", filename: str = "") -> list[Markup]:
    """``code`` as highlighted HTML lines (escaped plainly when long or of no known language)."""
    lexer = lexer_for(lang, filename) if len(code) <= HIGHLIGHT_LIMIT else None
    if lexer is None:
        return [escape(line) for line in code.split("\n")]
    html = pygments_highlight(code, lexer, _FORMATTER)
    if html.endswith("\n") and not code.endswith("\n"):
        html = html[:-1]
    return [Markup(line) for line in html.split("\n")]


def code_block(
    code: str, lang: str = "", filename: str = "", first_line: int | None = None
) -> Markup:
    """A ``<pre>`` of highlighted code, with line numbers from ``first_line`` if given."""
    lines = code_lines(code.rstrip("\n"), lang, filename)
    if first_line is not None:
        body = Markup("\n").join(
            Markup('<span class="ln" data-n="{}"></span>').format(n) + line
            for n, line in enumerate(lines, first_line)
        )
        classes = "hl code numbered"
    else:
        body = Markup("\n").join(lines)
        classes = "hl code"
    label = Markup(' data-lang="{}"').format(lang) if lang else Markup("")
    return Markup('<pre class="{}"{}><code>{}</code></pre>').format(classes, label, body)


# -- Markdown --------------------------------------------------------------------------------
def _fence(code: str, lang: str, _attrs: str) -> str:
    return str(code_block(code, lang))


def _link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    return self.renderToken(tokens, idx, options, env)


def _image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = str(token.attrGet("src") or "")
    return str(
        Markup(
            '<a class="image-link" href="{}" rel="noopener noreferrer nofollow" target="_blank">'
            "[image: {}]</a>"
        ).format(src, alt)
    )


def _cell(name: str) -> Any:
    def render(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        style = token.attrs.pop("style", None) if token.attrs else None
        if isinstance(style, str) and style.startswith("text-align:"):
            token.attrSet("class", "align-" + style.split(":", 1)[1].strip())
        return self.renderToken(tokens, idx, options, env)

    render.__name__ = name
    return render


def _drop_unsafe_links(state: Any) -> None:
    """Links markdown-it let through without a check (``[a]()``): kept as their text."""
    for token in state.tokens:
        children = token.children
        if token.type != "inline" or not children:
            continue
        kept, depth = [], 0
        for child in children:
            if child.type == "link_open" and not safe_url(str(child.attrGet("href") or "")):
                depth += 1
                continue
            if child.type == "link_close" and depth:
                depth -= 1
                continue
            kept.append(child)
        token.children = kept


@functools.lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _fence})
    md.enable(["table", "strikethrough"])
    # markdown-it's own hook for which links to keep is this method, replaced on the instance
    md.validateLink = safe_url  # type: ignore[method-assign]
    md.core.ruler.push("drop_unsafe_links", _drop_unsafe_links)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    md.add_render_rule("th_open", _cell("th_open"))
    md.add_render_rule("td_open", _cell("td_open"))
    return md


@functools.lru_cache(maxsize=4096)
def _markdown_cached(text: str) -> Markup:
    return Markup(_markdown().render(text))


def markdown(text: str) -> Markup:
    """Markdown as HTML (raw HTML shown as text; see the module docstring)."""
    if len(text) <= 50_000:
        return _markdown_cached(text)
    return Markup(_markdown().render(text))


# -- cutting long text ---------------------------------------------------------------------
def cut(text: str, limit: int = SHOWN_CHARS) -> tuple[str, int]:
    """``text`` cut at a line end near ``limit`` characters, and how many were left out."""
    if len(text) <= limit:
        return text, 0
    end = text.rfind("\n", limit // 2, limit)
    end = end if end != -1 else limit
    return text[:end], len(text) - end


def more_link(href: str, left: int) -> Markup:
    if not left:
        return Markup("")
    return Markup(
        '<p class="cut">… {:,} more characters. '
        '<a href="{}" target="_blank" rel="noopener">Show all</a></p>'
    ).format(left, href)


# -- tool calls ------------------------------------------------------------------------------
_EXIT = re.compile(r"\n?\[exit status (-?\d+)\]\s*$")
_TIMEOUT = re.compile(r"\n?\[stopped after (\d+) s: timed out\]\s*$")
_READ_LINE = re.compile(r"^\s*(\d+)\t(.*)$")
_CLASS_SAFE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


def bash_output(output: str, is_error: bool) -> tuple[str, str]:
    """(the command's output, its status: ``exit 0``, ``exit 2``, ``timed out`` ...)."""
    timed = _TIMEOUT.search(output)
    if timed:
        return output[: timed.start()], f"timed out after {timed.group(1)} s"
    status = _EXIT.search(output)
    if status:
        return output[: status.start()], f"exit {status.group(1)}"
    if output == "(no output)":
        return "", "exit 0"
    return output, "error" if is_error else "exit 0"


def read_output(output: str) -> tuple[int, str, str] | None:
    """(first line number, the file's text, a trailing note) of a ``read`` result, or None."""
    lines = output.split("\n")
    note = ""
    if lines and lines[-1].startswith("[... "):
        note = lines.pop()
    numbers, text = [], []
    for line in lines:
        match = _READ_LINE.match(line)
        if not match:
            return None
        numbers.append(int(match.group(1)))
        text.append(match.group(2))
    if not numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None
    return numbers[0], "\n".join(text), note


def diff_lines(old: str, new: str) -> tuple[Markup, int, int]:
    """An ``edit`` as a unified diff (markup), with the counts of added and removed lines."""
    a, b = old.split("\n"), new.split("\n")
    if len(a) + len(b) > DIFF_LINES:
        return Markup(""), -1, -1
    out: list[Markup] = []
    added = removed = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            out.append(Markup('<span class="d-hunk">{}</span>').format(line))
        elif line.startswith("+"):
            added += 1
            out.append(Markup('<span class="d-add">{}</span>').format(line))
        elif line.startswith("-"):
            removed += 1
            out.append(Markup('<span class="d-del">{}</span>').format(line))
        else:
            out.append(Markup('<span class="d-ctx">{}</span>').format(line))
    return Markup("").join(out), added, removed  # each line is a block: no newlines between


def _arg(call: Call, key: str) -> str:
    value = call.input.get(key) if isinstance(call.input, dict) else None
    return value if isinstance(value, str) else ""


def _int_arg(call: Call, key: str) -> int | None:
    value = call.input.get(key) if isinstance(call.input, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def call_target(call: Call) -> str:
    """The one thing a call acts on, for its summary line: a file, a command, a pattern."""
    for key in ("file", "command", "pattern", "path", "url", "query"):
        value = _arg(call, key)
        if value:
            return " ".join(value.split())[:160]
    return ""


def _pre(text: str, cls: str = "output") -> Markup:
    return Markup('<pre class="{}"><code>{}</code></pre>').format(cls, text)


def _raw_href(base: str, number: int, block: int) -> str:
    return f"{base}/raw/{number}/{block}"


def render_call(call: Call, base: str) -> Markup:
    """One tool call: a collapsed ``<details>`` with its input and its result."""
    name = call.name
    meta, body = _call_input(call, base)
    status = ""
    if call.result is not None:
        section, found, status = _call_result(call, call.result, base)
        meta += found
        body.append(section)
    else:
        body.append(Markup('<p class="note pending">Waiting for the result…</p>'))
    if status:
        meta.append(status)
    if call.duration_ms is not None:
        ms = call.duration_ms
        meta.append(f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s")
    outcome = call.outcome
    badge = (
        Markup('<span class="badge b-{0}">{0}</span>').format(outcome) if outcome != "ok" else ""
    )
    return Markup(
        '<details class="tool t-{kind} o-{outcome}" id="t{n}-{k}">'
        '<summary><span class="tool-name">{name}</span>'
        '<span class="tool-target">{target}</span>'
        '<span class="tool-meta">{meta}</span>{badge}</summary>'
        '<div class="tool-body">{body}</div></details>'
    ).format(
        name=name,
        kind=name if _CLASS_SAFE.match(name) else "other",
        outcome=outcome,
        n=call.number,
        k=call.block,
        target=call_target(call),
        meta=" · ".join(meta),
        badge=badge,
        body=Markup("").join(body),
    )


def _call_input(call: Call, base: str) -> tuple[list[str], list[Markup]]:
    """A call's input: what its summary line says of it, and how its body shows it (a diff
    for edit, the file for write, the command for bash, JSON for any other tool)."""
    meta: list[str] = []
    body: list[Markup] = []
    name, result = call.name, call.result
    if name == "edit" and isinstance(call.input, dict):
        diff, added, removed = diff_lines(_arg(call, "old_string"), _arg(call, "new_string"))
        if added >= 0:
            meta.append(f"+{added} −{removed}")
            body.append(_pre(diff, "diff"))
        else:
            old, left_old = cut(_arg(call, "old_string"))
            new, left_new = cut(_arg(call, "new_string"))
            body.append(Markup('<p class="label">Replaced</p>') + _pre(old, "diff-old"))
            body.append(Markup('<p class="label">With</p>') + _pre(new, "diff-new"))
            body.append(more_link(_raw_href(base, call.number, call.block), left_old + left_new))
    elif name == "write" and isinstance(call.input, dict):
        content = _arg(call, "content")
        shown, left = cut(content)
        meta.append(
            f"{content.count(chr(10)) + (1 if content and not content.endswith(chr(10)) else 0)} lines"
        )
        body.append(code_block(shown, filename=_arg(call, "file"), first_line=1))
        body.append(more_link(_raw_href(base, call.number, call.block), left))
    elif name == "bash" and isinstance(call.input, dict):
        command, left = cut(_arg(call, "command"))
        body.append(code_block("$ " + command, lang="bash"))
        body.append(more_link(_raw_href(base, call.number, call.block), left))
    elif name == "read" and isinstance(call.input, dict):
        offset, limit = _int_arg(call, "offset"), _int_arg(call, "limit")
        if (offset or limit) and (result is None or result.is_error):  # else the output's lines
            start = offset or 1
            meta.append(f"lines {start}–{start + limit - 1}" if limit else f"from line {start}")
    elif name in ("grep", "glob") and isinstance(call.input, dict):
        extra = [f"{k}={_arg(call, k)}" for k in ("path", "include") if _arg(call, k)]
        if call.input.get("ignore_case") is True:
            extra.append("ignore case")
        meta.extend(extra)
    else:
        text = json.dumps(call.input, indent=2, ensure_ascii=False)
        shown, left = cut(text)
        body.append(code_block(shown, lang="json"))
        body.append(more_link(_raw_href(base, call.number, call.block), left))
    return meta, body


def _call_result(call: Call, result: Result, base: str) -> tuple[Markup, list[str], str]:
    """A call's result as its section of the body, what the summary line says of it (the
    lines a read returned) and its status (a command's exit status, "interrupted")."""
    text, status = result.output, ""
    if call.name == "bash":
        text, status = bash_output(result.output, result.is_error)
        if result.interrupted:
            status = "interrupted"
    anchor = Markup(' id="m{}"').format(result.number) if result.anchor else Markup("")
    cls = "tool-output error" if result.is_error and not result.interrupted else "tool-output"
    label = "Error" if result.is_error else "Output"
    meta: list[str] = []
    if result.interrupted:
        label = "Result"
        saved = (
            "" if result.number else " (no result was saved; Taurus closes it this way on resume)"
        )
        parts = [
            Markup(
                '<p class="mark interrupted">Interrupted: the tool did not finish{}.</p>'
            ).format(saved)
        ]
    else:
        parts, meta = _output_parts(call, result, text, base)
    section = Markup('<section class="{}"{}><p class="label">{}</p>{}</section>').format(
        cls, anchor, label, Markup("").join(parts)
    )
    return section, meta, status


def _output_parts(
    call: Call, result: Result, text: str, base: str
) -> tuple[list[Markup], list[str]]:
    """A finished result's output (a read's as the file's numbered lines), and the lines a
    read returned for the summary line."""
    meta: list[str] = []
    parts: list[Markup] = []
    parsed = read_output(text) if call.name == "read" and not result.is_error else None
    if parsed is not None:
        first, file_text, note = parsed
        shown, left = cut(file_text)
        last = first + shown.count("\n")
        meta.append(f"lines {first}–{last}")
        parts.append(code_block(shown, filename=_arg(call, "file"), first_line=first))
        if note:
            parts.append(Markup('<p class="note">{}</p>').format(note))
    else:
        shown, left = cut(text)
        parts.append(_pre(shown) if shown else Markup('<p class="note">(no output)</p>'))
    parts.append(more_link(_raw_href(base, result.number, result.block), left))
    return parts, meta


# -- the highlighting styles -------------------------------------------------------------
def pygments_css() -> str:
    """Pygments colours for ``.hl``: a light style, and a dark one for dark mode."""

    def rules(style: str) -> list[str]:
        defs = HtmlFormatter(style=style).get_style_defs(".hl")
        return [
            line
            for line in defs.splitlines()
            if line.startswith(".hl .") and "background" not in line.split("{", 1)[1][:12]
        ]

    light = "\n".join(rules("default"))
    dark = "\n".join("  " + line for line in rules("github-dark"))
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


# -- one content block -----------------------------------------------------------------------
def _words(text: str) -> str:
    count = len(text.split())
    return f"{count:,} word" + ("" if count == 1 else "s")


def render_block(block: Block, base: str) -> Markup:
    """A message's content block as HTML (text as Markdown, a tool call with its result)."""
    href = _raw_href(base, block.number, block.index)
    if block.kind == "tool" and block.call is not None:
        return render_call(block.call, base)
    if block.kind == "text":
        shown, left = cut(block.text)
        return Markup('<div class="md">{}{}</div>').format(markdown(shown), more_link(href, left))
    if block.kind == "thinking":
        shown, left = cut(block.text)
        return Markup(
            '<details class="thinking"><summary>Thinking <span class="tool-meta">{}</span>'
            '</summary><div class="md">{}{}</div></details>'
        ).format(_words(block.text), markdown(shown), more_link(href, left))
    if block.kind == "result":
        shown, left = cut(block.text)
        return Markup(
            '<section class="tool-output orphan{}"><p class="label">Tool result'
            " (answers no tool call just before it)</p>{}{}</section>"
        ).format(" error" if block.is_error else "", _pre(shown), more_link(href, left))
    return Markup('<p class="note">{}</p>').format(block.text)
