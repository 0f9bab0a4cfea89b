"""The ops log: ``~/.taurus/logs/taurus-ops.log``, rotated, one line per event.

Cleanup (real runs and dry runs), archive, backup, restore and the scheduler write
here, so what happened overnight can be read in the morning. Lines carry paths,
counts and sizes, never a session's content and never an API key.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import sys
from pathlib import Path

from taurus_ops.store import format as fmt
from taurus_ops.store.atomic import ensure_dir, open_append

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
    """A rotating handler whose files are 0600 and never opened through a planted link.

    The log is opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO put in its
    place cannot hang a job): a symlink, a FIFO or a hard link to some other file at
    the log's name is removed and a new private log made, so no job ever appends to
    whatever such a name leads to. Text a log line cannot encode (a file name that is
    not UTF-8) is written with U+FFFD.
    """

    def _open(self) -> io.TextIOWrapper:
        return open_log_file(Path(self.baseFilename), self.encoding or "utf-8")

    def handleError(self, record: logging.LogRecord) -> None:
        """A line that could not be written (a full disk) is remembered, not printed as a
        traceback: the command says once, at its end, that its log is incomplete."""
        exc = sys.exc_info()[1]
        _note_failure(self.baseFilename, exc)
        stream, self.stream = self.stream, None  # reopened for the next line
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


_FAILURES: dict[str, str] = {}  # log file -> why a line could not be written to it


def _note_failure(path: str, exc: BaseException | None) -> None:
    reason = (getattr(exc, "strerror", None) or str(exc or "")) or "write failed"
    _FAILURES.setdefault(path, reason)


def take_failures() -> dict[str, str]:
    """Log files this process could not write a line to since last asked, each with the
    first reason."""
    out = dict(_FAILURES)
    _FAILURES.clear()
    return out


def open_log_file(path: Path, encoding: str = "utf-8") -> io.TextIOWrapper:
    """``path`` opened for appending as a private (0600) regular file of its own."""
    return open(open_append(path), "a", encoding=encoding, errors=fmt.MARK_ERRORS)


def _handler_for(logger: logging.Logger, path: Path) -> logging.Handler | None:
    for handler in logger.handlers:
        if getattr(handler, "baseFilename", None) == str(path):
            return handler
    return None


def ops_logger(home: Path, name: str = LOGGER) -> logging.Logger:
    """The logger writing to ``home``'s ops log (the handler is added once per file).

    Switching homes (as tests do) moves the handler to the new file. Logging never
    stops a job: if the log cannot be written, events are dropped and ``take_failures()``
    says so (the command line prints one warning).
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
        except OSError as exc:
            _note_failure(str(path), exc)
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
