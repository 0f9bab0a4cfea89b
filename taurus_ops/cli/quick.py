"""``taurus-ops search -l TERM...`` without click: the form scripts run in loops.

Start-up is most of what a warm ``search -l`` costs: at 10,000 sessions the search
takes a few milliseconds, and loading click and the command group a third of the
rest. This runs exactly that form (``search``, ``-l`` or ``--files-with-matches``, and
terms that do not start with ``-``) through the calls the ``search`` command makes
(``ops.search.files_with_matches``), and leaves every other command line to the
command proper. An error before anything is printed also goes back to the command
proper, which runs from the start and reports it the one way every command does.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

FLAGS = frozenset({"-l", "--files-with-matches"})


def plain_search(args: list[str]) -> list[str] | None:
    """The terms of ``taurus-ops ARGS`` when it is ``search -l`` with terms and nothing
    else (the flag anywhere among them, as click takes it); None for any other form."""
    if not args or args[0] != "search":
        return None
    flags = [arg for arg in args[1:] if arg in FLAGS]
    terms = [arg for arg in args[1:] if arg not in FLAGS]
    if not flags or not terms or any(not term or term.startswith("-") for term in terms):
        return None
    return terms


def run(args: list[str]) -> int | None:
    """Run ``taurus-ops ARGS`` here when it is a plain ``search -l``: the exit status
    (0: found, 1: nothing found, as grep's). None: the command proper must run it."""
    terms = plain_search(args)
    if terms is None or sys.stdout is None:  # no standard output: as click prints
        return None
    from taurus_ops.cli.terminal import (
        index_progress,
        os_error_line,
        output_gone,
        prepare_streams,
        reader_gone,
    )

    try:
        from taurus_ops.config import load_config
        from taurus_ops.ops.search import SearchQuery, files_with_matches, terms_of
        from taurus_ops.store.index import Index

        with Index(load_config()) as index, index_progress(index):
            paths = files_with_matches(index, SearchQuery(terms=terms_of(terms)))
    except Exception:  # the command proper runs it again and reports the error
        return None
    if not paths:
        return 1
    prepare_streams()
    try:
        sys.stdout.write("\n".join(paths) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
    except OSError as exc:  # a full disk under a redirection, say: as every command says
        sys.stderr.write(f"Error: {os_error_line(exc)}\n")
        output_gone()
        return 1
    return 0


# modules whose exit handlers have work to do (worker pools, log handlers to flush)
_LEAVE_WORK = ("multiprocessing", "concurrent.futures", "logging")


def leave(status: int) -> NoReturn:
    """End the process with ``status`` once the output is flushed, without the
    interpreter's teardown (freeing every module: 5 ms of a 50 ms ``search -l``) unless
    something loaded has exit handlers to run."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        from taurus_ops.cli.terminal import reader_gone

        reader_gone()
    if any(name in sys.modules for name in _LEAVE_WORK):
        sys.exit(status)
    os._exit(status)
