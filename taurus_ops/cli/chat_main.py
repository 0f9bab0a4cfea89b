"""``taurus``: the coding assistant. ``taurus chat`` talks to the model; sessions are saved."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from taurus_ops import __version__
from taurus_ops.cli.common import config_options, example, run_safely
from taurus_ops.cli.terminal import prepare_streams


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="taurus")
def cli() -> None:
    """Taurus: a coding assistant in your terminal whose conversations are never lost.

    Every turn is saved to ~/.taurus/sessions/ (see `taurus-ops` to list, search,
    export, clean up and back them up).

    \b
    Examples:
      taurus chat
      taurus chat --resume
      taurus chat -p "explain src/auth/login.ts"
    """
    prepare_streams()


@cli.command("chat")
@click.option("--resume", "-r", is_flag=True, help="Continue the most recent session.")
@click.option(
    "--session", "-s", "session", metavar="REF", help="Continue a session: id, prefix or name."
)
@click.option(
    "--print",
    "-p",
    "prompt",
    metavar="PROMPT",
    help='Answer PROMPT once without the REPL ("-" reads stdin), print the reply, save the session.',
)
@click.option(
    "--fork",
    "fork",
    metavar="REF[@N]",
    help="Continue in a new session holding the first N messages of REF (default all); "
    "REF is kept as it is.",
)
@click.option("--pick", is_flag=True, help="Choose the session to resume from a searchable list.")
@click.option("--model", "-m", help="The model for this run (default: config key `model`).")
@click.option(
    "--allow",
    multiple=True,
    metavar="TOOL",
    help="Let TOOL (write, edit, bash, or *) run without asking. Repeatable.",
)
@click.option("--template", "-t", metavar="NAME", help="Start a new session from a template.")
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="A template variable."
)
@config_options
@example(
    "taurus chat\n"
    "taurus chat --resume\n"
    "taurus chat --session password-reset-implementation\n"
    "taurus chat --pick\n"
    "taurus chat --fork password-reset@12\n"
    'taurus chat -p "why does test_login fail?" --allow bash\n'
    "git diff | taurus chat -r\n"
    "taurus chat --template code-review --var file=src/auth/login.ts"
)
def chat_cmd(
    resume: bool,
    session: str | None,
    prompt: str | None,
    fork: str | None,
    pick: bool,
    model: str | None,
    allow: tuple[str, ...],
    template: str | None,
    variables: tuple[str, ...],
    config_file: Path | None,
    session_dir: Path | None,
) -> None:
    """Chat with the model about your code; it can read, search, edit files and run commands.

    A new session is created and saved after every message and tool run. write, edit
    and bash ask first (yes once / always / no). Needs ANTHROPIC_API_KEY;
    ANTHROPIC_BASE_URL points it at a proxy or an Anthropic-compatible server.
    """
    from taurus_ops.chat.run import ChatOptions, run_chat
    from taurus_ops.ops.templates import parse_vars

    def go() -> int:
        options = ChatOptions(
            resume=resume,
            session=session,
            prompt=prompt,
            fork=fork,
            pick=pick,
            model=model,
            allow=list(allow),
            template=template,
            variables=parse_vars(variables),
            config_file=config_file,
            session_dir=session_dir,
        )
        return run_chat(options)

    status = run_safely(go)
    if status:
        sys.exit(status)


def main() -> None:
    cli(prog_name="taurus")


if __name__ == "__main__":  # pragma: no cover
    main()
