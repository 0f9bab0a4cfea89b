"""Session templates: a session file to start from, with Jinja placeholders.

A template is a session document (the tutorial's ``code-review.json`` is one) that
may also carry a ``template`` block describing its placeholders::

    {"sessionId": "new",
     "template": {"description": "...",
                  "variables": {"problem": "What goes wrong"},
                  "defaults": {"where": "not known yet"}},
     "title": "Debugging: {{ problem }}",
     "messages": [{"role": "user", "content": "Help me debug this: {{ problem }}"}]}

Built-ins live in ``templates/sessions/``; the user's own in ``~/.taurus/templates/``
(a user template overrides a built-in of the same name). Instantiating one fills
every ``{{ placeholder }}`` in every string from the given variables, the defaults
and ``today``/``now``, in Jinja's sandbox; a missing variable is an error naming it.
The tutorial's manual route (copy the file into ``sessions/`` yourself) keeps
working: the store takes the id from the file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.errors import UsageError
from taurus_ops.ops.sandbox import Renderer, TemplateLimit, make_sandbox
from taurus_ops.store import format as fmt
from taurus_ops.store.refs import check_token
from taurus_ops.store.session import Session

if TYPE_CHECKING:
    from jinja2 import Environment

    from taurus_ops.config.effective import Config
    from taurus_ops.store.store import SessionStore

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "templates" / "sessions"
BUILTIN_VARIABLES = ("today", "now")
META_KEY = "template"
SKIP_KEYS = {"sessionId", "created", "updated", META_KEY}


@dataclass
class SessionTemplate:
    name: str
    path: Path
    source: str  # "built-in" or "user"
    document: dict[str, Any]
    description: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # name -> description
    defaults: dict[str, str] = field(default_factory=dict)
    overrides: bool = False  # a user template hiding a built-in of the same name

    def used(self) -> set[str]:
        """Placeholders the template's strings use."""
        return placeholders(self.document)

    def required(self) -> list[str]:
        """Variables that must be given (used, without a default)."""
        return sorted(
            v
            for v in self.used() | set(self.variables)
            if v not in self.defaults and v not in BUILTIN_VARIABLES
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "path": str(self.path),
            "description": self.description,
            "variables": {v: self.variables.get(v, "") for v in sorted(self.all_variables())},
            "defaults": self.defaults,
            "required": self.required(),
            "overrides": self.overrides,
        }

    def all_variables(self) -> set[str]:
        return (self.used() | set(self.variables)) - set(BUILTIN_VARIABLES)


def user_dir(config: Config) -> Path:
    return Path(config.home) / "templates"


def _environment() -> Environment:
    import jinja2

    return make_sandbox(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def _strings(value: Any, skip_top: bool = True) -> list[str]:
    out: list[str] = []
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            out.extend(_strings(item, False))
    elif isinstance(value, dict):
        for key, item in value.items():
            if skip_top and key in SKIP_KEYS:
                continue
            out.extend(_strings(item, False))
    return out


def placeholders(document: dict[str, Any]) -> set[str]:
    """Every undeclared Jinja variable in the document's strings (the template block aside)."""
    import jinja2
    from jinja2 import meta

    env = _environment()
    found: set[str] = set()
    for text in _strings(document):
        if "{{" in text or "{%" in text:
            try:
                found |= meta.find_undeclared_variables(env.parse(text))
            except jinja2.TemplateSyntaxError as exc:
                raise UsageError(f"template syntax error in {text[:40]!r}: {exc.message}") from None
    return found


def load_template(path: Path, name: str, source: str) -> SessionTemplate:
    try:
        data = fmt.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read template {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"template {path} is not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
        raise UsageError(f"template {path} is not a session document (needs a messages list)")
    block = _mapping(data.get(META_KEY))
    variables = _mapping(block.get("variables"))
    defaults = _mapping(block.get("defaults"))
    return SessionTemplate(
        name=name,
        path=path,
        source=source,
        document=data,
        description=str(block.get("description", "")),
        variables={str(k): str(v) for k, v in variables.items()},
        defaults={str(k): str(v) for k, v in defaults.items()},
    )


def _mapping(value: object) -> dict[Any, Any]:
    """``value`` if it is a JSON object, else an empty one (a template block is optional)."""
    return value if isinstance(value, dict) else {}


def _scan(folder: Path) -> dict[str, Path]:
    try:
        return {
            p.name[:-5]: p
            for p in sorted(folder.iterdir())
            if p.name.endswith(".json") and not p.name.startswith(".") and p.is_file()
        }
    except (FileNotFoundError, NotADirectoryError):
        return {}


def list_templates(config: Config) -> list[SessionTemplate]:
    """Built-in and user templates by name (a user template hides a built-in of that name)."""
    builtin = _scan(BUILTIN_DIR)
    user = _scan(user_dir(config))
    out: list[SessionTemplate] = []
    for name in sorted(set(builtin) | set(user)):
        try:
            if name in user:
                found = load_template(user[name], name, "user")
                found.overrides = name in builtin
            else:
                found = load_template(builtin[name], name, "built-in")
        except UsageError:
            continue  # shown by `template show NAME` with its error
        out.append(found)
    return out


def find_template(config: Config, name: str) -> SessionTemplate:
    check_token(name, "template name")
    user = user_dir(config) / f"{name}.json"
    if user.is_file():
        return load_template(user, name, "user")
    builtin = BUILTIN_DIR / f"{name}.json"
    if builtin.is_file():
        return load_template(builtin, name, "built-in")
    known = ", ".join(t.name for t in list_templates(config)) or "none"
    raise UsageError(f"no template {name!r} (known: {known}); see `taurus-ops template list`")


def _render_value(
    value: Any, env: Environment, context: dict[str, str], renderer: Renderer, top: bool = True
) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        return renderer.render(env.from_string(value), context)
    if isinstance(value, list):
        return [_render_value(v, env, context, renderer, False) for v in value]
    if isinstance(value, dict):
        return {
            k: _render_value(v, env, context, renderer, False)
            for k, v in value.items()
            if not (top and k in SKIP_KEYS)
        }
    return value


def instantiate(
    template: SessionTemplate, variables: dict[str, str], now: datetime | None = None
) -> dict[str, Any]:
    """The fields of a new session made from ``template`` (pure: nothing is written)."""
    now = now or datetime.now().astimezone()
    builtins = {"today": now.strftime("%Y-%m-%d"), "now": fmt.format_time(now)}
    known = template.all_variables()
    unknown = sorted(set(variables) - known - set(BUILTIN_VARIABLES))
    if unknown:
        uses = ", ".join(sorted(known)) or "no variables"
        raise UsageError(
            f"template {template.name!r} has no variable {', '.join(unknown)} (it uses: {uses})"
        )
    missing = [v for v in template.required() if v not in variables]
    if missing:
        hints = "; ".join(
            f"--var {v}=..." + (f" ({template.variables[v]})" if template.variables.get(v) else "")
            for v in missing
        )
        raise UsageError(f"template {template.name!r} needs {hints}")
    env = _environment()
    context = dict(builtins)
    try:
        with Renderer(f"template {template.name!r}") as renderer:  # time, output, memory
            for key, value in template.defaults.items():
                context[key] = renderer.render(env.from_string(value), builtins)
            context.update(variables)
            fields = _render_value(template.document, env, context, renderer)
    except TemplateLimit:
        raise
    except Exception as exc:  # a template's own mistake ({{ 1/0 }},
        # {{ "a" + 1 }}, {% include %}, a filter's KeyError): one line
        raise UsageError(f"template {template.name!r}: {exc or type(exc).__name__}") from None
    fields["fromTemplate"] = template.name
    return fields


def create_from_template(
    config: Config,
    store: SessionStore,
    name: str,
    variables: dict[str, str],
    session_id: str | None = None,
) -> Session:
    """Create and save a new session from template NAME; returns it (the chat resumes it)."""
    template = find_template(config, name)
    fields = instantiate(template, dict(variables))
    return store.create(session_id, **fields)


def parse_vars(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var {pair!r}: use key=value")
        out[key.strip()] = value
    return out


def pretty(template: SessionTemplate) -> str:
    return json.dumps(template.document, indent=2, ensure_ascii=False)
