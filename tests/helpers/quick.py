"""Running ``taurus-ops ARGS`` down the path that loads no click (``cli.quick``)."""

from __future__ import annotations

import contextlib
import io

from taurus_ops.cli import quick


def quick_run(*args: str) -> tuple[int | None, str]:
    """The exit status ``cli.quick`` gives ARGS in this process (None: it left them to
    the command proper) and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = quick.run(list(args))
    return status, out.getvalue()
