"""``taurus-ops``: look after saved Taurus sessions.

This module loads nothing at import, so that ``taurus-ops search -l TERM``, the form
scripts run in loops, starts without click (``cli.quick``); every other command line
goes to the click group in ``cli.group``.
"""

from __future__ import annotations

import sys


def main() -> None:
    from taurus_ops.cli import quick

    status = quick.run(sys.argv[1:])
    if status is not None:
        quick.leave(status)
    from taurus_ops.cli.group import cli

    cli(prog_name="taurus-ops")


if __name__ == "__main__":  # pragma: no cover
    main()
