"""What every job runs with: the settings, the session store and the ops log.

Each job in ``taurus_ops.ops`` has one entry point, ``run(ctx, request) -> result``;
the command line, the scheduler and the web viewer all build a ``JobContext`` and
call the same entry points, so a job is implemented once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taurus_ops.config.effective import Config
    from taurus_ops.store.store import SessionStore


@dataclass
class JobContext:
    """The settings, the store and the log a job needs; ``cancel`` is set to stop early."""

    config: Config
    store: SessionStore
    cancel: threading.Event | None = None
    _loggers: dict[str, logging.Logger] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        config: Config,
        store: SessionStore | None = None,
        cancel: threading.Event | None = None,
    ) -> JobContext:
        from taurus_ops.store.store import SessionStore

        return cls(config, store if store is not None else SessionStore.from_config(config), cancel)

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        session_dir: Path | str | None = None,
        cancel: threading.Event | None = None,
    ) -> JobContext:
        """Read the settings afresh (the scheduler does this for every run)."""
        from taurus_ops.config import load_config

        return cls.of(load_config(config_file, session_dir), cancel=cancel)

    @property
    def home(self) -> Path:
        return Path(self.config.home)

    def log(self, job: str) -> logging.Logger:
        """The ops log (``~/.taurus/logs/taurus-ops.log``) under the job's name."""
        found = self._loggers.get(job)
        if found is None:
            from taurus_ops.ops.log import ops_logger

            found = self._loggers[job] = ops_logger(self.home, f"taurus_ops.ops.{job}")
        return found

    @property
    def stopping(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


class JobResult:
    """What every job's result shares: ``ok`` (it did all it was asked) decides the exit
    status the command line ends with, 0 or 1."""

    if TYPE_CHECKING:

        @property
        def ok(self) -> bool: ...

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1
