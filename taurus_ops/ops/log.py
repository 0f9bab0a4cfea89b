"""The ops log: ``~/.taurus/logs/taurus-ops.log``, rotated, one line per event.

Cleanup (real runs and dry runs), archive, backup, restore and the scheduler write
here, so what happened overnight can be read in the morning. Lines carry paths,
counts and sizes, never a session's content and never an API key.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from taurus_ops.store.atomic import ensure_dir

LOG_NAME = "taurus-ops.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 5
LOGGER = "taurus_ops.ops"
FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def log_dir(home: Path) -> Path:
    return Path(home) / "logs"


def log_file(home: Path) -> Path:
    return log_dir(home) / LOG_NAME


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A rotating handler whose files are 0600."""

    def _open(self):  # type: ignore[no-untyped-def]
        old = os.umask(0o077)
        try:
            return super()._open()
        finally:
            os.umask(old)


def _handler_for(logger: logging.Logger, path: Path) -> logging.Handler | None:
    for handler in logger.handlers:
        if getattr(handler, "baseFilename", None) == str(path):
            return handler
    return None


def ops_logger(home: Path, name: str = LOGGER) -> logging.Logger:
    """The logger writing to ``home``'s ops log (the handler is added once per file).

    Switching homes (as tests do) moves the handler to the new file. Logging never
    stops a job: if the log folder cannot be written, events are dropped.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path = log_file(home).absolute()
    if _handler_for(logger, path) is None:
        for old in [h for h in logger.handlers if isinstance(h, _PrivateRotatingHandler)]:
            logger.removeHandler(old)
            old.close()
        try:
            ensure_dir(path.parent)
            handler = _PrivateRotatingHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True
            )
        except OSError:
            return logging.getLogger(name) if name != LOGGER else logger
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    return logging.getLogger(name) if name != LOGGER else logger


def log_event(home: Path, message: str, level: int = logging.INFO, name: str = LOGGER) -> None:
    """Write one line to the ops log; never raises."""
    try:
        ops_logger(home, name).log(level, message)
    except Exception:  # pragma: no cover - logging must never break a job
        pass
