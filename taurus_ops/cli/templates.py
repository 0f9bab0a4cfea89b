"""``template list|show|new``: sessions started from templates."""

from __future__ import annotations

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app, table


@click.group("template")
@example(
    "taurus-ops template list\n"
    "taurus-ops template show debugging\n"
    'taurus-ops template new debugging --var problem="login times out"\n'
    "taurus chat --template code-review"
)
def template_group() -> None:
    """Session templates: built-ins, and your own in ~/.taurus/templates/NAME.json."""


@template_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@example("taurus-ops template list")
@pass_app
def template_list(app: AppContext, as_json: bool) -> None:
    """The templates you can start a session from."""
    from taurus_ops.ops.templates import list_templates, user_dir

    found = list_templates(app.config)
    if as_json:
        echo_json([t.as_json() for t in found])
        return
    rows = []
    for t in found:
        source = t.source + (" (overrides built-in)" if t.overrides else "")
        needs = ", ".join(t.required()) or "-"
        rows.append([t.name, source, needs, t.description])
    click.echo(table(rows, ["NAME", "SOURCE", "NEEDS --var", "DESCRIPTION"]))
    click.echo(f"\nYour own templates go in {user_dir(app.config)}/NAME.json")


@template_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the template's details as JSON.")
@example("taurus-ops template show code-review")
@pass_app
def template_show(app: AppContext, name: str, as_json: bool) -> None:
    """Show template NAME: where it is, its variables and its content."""
    from taurus_ops.ops.templates import find_template, pretty

    found = find_template(app.config, name)
    if as_json:
        echo_json({**found.as_json(), "document": found.document})
        return
    click.echo(f"Template {found.name} ({found.source}): {found.path}")
    if found.description:
        click.echo(f"  {found.description}")
    variables = sorted(found.all_variables())
    if variables:
        click.echo("Variables:")
        for v in variables:
            default = found.defaults.get(v)
            note = f" (default: {default})" if default is not None else " (required)"
            click.echo(f"  {v}: {found.variables.get(v, '')}{note}")
    click.echo("")
    click.echo(pretty(found))


@template_group.command("new")
@click.argument("name")
@click.option("--var", "pairs", multiple=True, metavar="KEY=VALUE",
              help="Fill a placeholder (repeatable).")  # fmt: skip
@click.option("--id", "session_id", help="The new session's id (default: a random one).")
@click.option("--json", "as_json", is_flag=True, help="Print the new session as JSON.")
@example(
    "taurus-ops template new code-review\n"
    'taurus-ops template new post-mortem --var incident="Login outage" --id outage-0118'
)
@pass_app
def template_new(
    app: AppContext, name: str, pairs: tuple[str, ...], session_id: str | None, as_json: bool
) -> None:
    """Create a new session from template NAME; resume it with `taurus chat --session ID`."""
    from taurus_ops.ops.templates import create_from_template, parse_vars

    session = create_from_template(
        app.config, app.store, name, parse_vars(pairs), session_id=session_id
    )
    if as_json:
        echo_json({"id": session.id, "path": str(session.path), "title": session.title})
        return
    click.echo(f"Created session {session.id} from template {name}: {session.path}")
    click.echo(f"Start it with: taurus chat --session {session.id}")
