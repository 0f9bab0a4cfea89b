"""What a command does with the terminal before click is loaded, or without it: the
output streams' handling of undecodable file names, and the index's progress bar.

``taurus-ops search -l`` runs without click (``cli.quick``), so these take no click.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn


def prepare_streams() -> None:
    """Make text that holds undecodable bytes (a file name read with surrogateescape) printable.

    Such a name never stops a command: on a terminal each undecodable byte is shown as
    U+FFFD; into a pipe or a file it is written back as the very byte the name has, as
    ``ls`` and ``find`` do, so ``taurus-ops search -l WORD | xargs ls -l`` finds the file.
    """
    from taurus_ops.store.format import MARK_ERRORS

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            errors = MARK_ERRORS if stream.isatty() else "surrogateescape"
            reconfigure(errors=errors)
        except (OSError, ValueError, io.UnsupportedOperation):
            continue


@contextlib.contextmanager
def index_progress(index: Any, label: str = "Indexing sessions") -> Iterator[None]:
    """The chat UI's progress bar for a long index refresh, loaded only when a refresh
    turns out to be long (most are not, and the UI costs a command tens of ms to load)."""
    if not sys.stderr.isatty():
        yield
        return
    with contextlib.ExitStack() as stack:
        shown: list[Callable[[int, int], None]] = []

        def progress(done: int, total: int) -> None:
            if not shown:
                from taurus_ops.chat.ui import index_progress as bar

                stack.enter_context(bar(index, label))  # puts the bar's ``progress`` in place
                shown.append(index.progress)
            shown[0](done, total)

        index.progress = progress
        try:
            yield
        finally:
            index.progress = None


def reader_gone() -> NoReturn:
    """The reader of standard output stopped early (``| head``): not an error. What is
    left to write goes nowhere, and the command ends with status 0."""
    output_gone()
    sys.exit(0)


def output_gone() -> None:
    """Standard output can take no more (its reader went, its disk is full): what is
    still buffered for it, and anything written later, goes nowhere, silently."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def os_error_line(exc: OSError) -> str:
    """An OS error as every command reports it after ``Error: ``, in one line."""
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where}"
