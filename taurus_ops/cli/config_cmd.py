"""``config show`` and ``config validate``."""

from __future__ import annotations

from pathlib import Path

import click

from taurus_ops.cli.common import AppContext, echo_json, example, pass_app, table


@click.group("config")
def config_group() -> None:
    """Show and check Taurus settings.

    \b
    Examples:
      taurus-ops config show
      taurus-ops config validate ~/.taurus/config.yaml
    """


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print {key: {value, source, env}} as JSON.")
@example("taurus-ops config show\ntaurus-ops config show --json | jq '.sessionDirectory'")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print every setting's effective value and where it came from."""
    from taurus_ops.config import LEAVES

    config = app.config
    values = config.as_dict()
    if as_json:
        echo_json(
            {
                leaf.key: {
                    "value": values[leaf.key],
                    "source": config.sources[leaf.key],
                    "env": leaf.env,
                }
                for leaf in LEAVES
            }
        )
        return
    rows = [[leaf.key, _text(values[leaf.key]), config.sources[leaf.key]] for leaf in LEAVES]
    click.echo(table(rows, ["KEY", "VALUE", "SOURCE"]))
    click.echo("")
    click.echo(f"Taurus home: {config.home}")
    for path in config.files:
        click.echo(f"Read: {path}")


def _text(value: object) -> str:
    if value is None:
        return "null (off)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


@config_group.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@example("taurus-ops config validate\ntaurus-ops config validate .taurus/config.yaml")
@pass_app
def validate(app: AppContext, file: Path | None) -> None:
    """Check a config file (or every layer in effect); exit 2 on the first bad one."""
    from taurus_ops.config import read_config_file

    if file is not None:
        read_config_file(file, base=file.absolute().parent)
        click.echo(f"ok: {file}")
        return
    config = app.config
    for path in config.files:
        click.echo(f"ok: {path}")
    if not config.files:
        click.echo("ok: no config files; built-in defaults in effect")
