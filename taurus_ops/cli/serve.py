"""``serve``: the read-only web viewer (``taurus_ops.web``)."""

from __future__ import annotations

import click

from taurus_ops.cli.common import AppContext, example, pass_app


@click.command("serve")
@click.option("--port", "-p", type=click.IntRange(0, 65535),
              help="Port to listen on (default 8765, or the next free one; 0: any free port).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets other machines connect.")  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the viewer in a browser.")
@click.option("--no-token", is_flag=True,
              help="Do not ask for the access token (loopback addresses only).")  # fmt: skip
@example(
    "taurus-ops serve\n"
    "taurus-ops serve --open\n"
    "taurus-ops serve --port 9000\n"
    "ssh -L 8765:127.0.0.1:8765 devbox   # then open the URL it printed, here"
)
@pass_app
def serve_cmd(
    app: AppContext, port: int | None, host: str, open_browser: bool, no_token: bool
) -> None:
    """Browse, read and search every session in a browser (read-only).

    Prints an address holding a random access token, as Jupyter does; the browser
    keeps it in a cookie after the first visit. Sessions, one session with its tool
    calls, search and stats with charts. Nothing is written to the sessions and no
    session is locked, so it runs beside chats and cleanup. Ctrl+C stops it.
    """
    try:
        from taurus_ops.web.server import prepare
    except ImportError as exc:  # starlette or uvicorn missing from this environment
        raise click.ClickException(
            f"taurus-ops serve needs {exc.name or 'starlette and uvicorn'}: "
            "pip install 'starlette>=1.0' 'uvicorn>=0.30'"
        ) from None

    served = prepare(app.config, host=host, port=port, token=not no_token)
    if served.moved_from:
        click.echo(f"Port {served.moved_from} is in use; using {served.port}.", err=True)
    if served.exposed:
        click.echo(
            f"warning: listening on {host}, so other machines can connect. Anyone with the"
            " address below can read every session; an SSH tunnel to 127.0.0.1 is safer"
            " (see the README).",
            err=True,
        )
    if no_token:
        click.echo(
            "warning: --no-token: any program on this machine can read the sessions.", err=True
        )
    click.echo(f"Taurus sessions (read-only) in {app.config.session_dir}")
    click.echo(f"    {served.url}")
    click.echo("Press Ctrl+C to stop.", err=True)
    served.run(open_browser=open_browser)
    click.echo("Stopped.", err=True)
