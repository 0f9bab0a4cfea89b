"""Domain exceptions. The CLI turns each into one line on stderr and a non-zero exit."""

from __future__ import annotations


class TaurusError(Exception):
    """Base of every error Taurus reports to a user as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(TaurusError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ConfigError(TaurusError):
    """A configuration file (or variable) is invalid. Carries the source and every message."""

    exit_code = 2

    def __init__(self, source: str, messages: list[str]) -> None:
        self.source = source
        self.messages = list(messages)
        super().__init__(f"{source}: " + "; ".join(self.messages))


class InvalidReference(UsageError):
    """A session id, name or path that is not allowed (bad characters, escapes the directory)."""


class SessionNotFound(TaurusError):
    """No session matches a reference."""


class AmbiguousReference(UsageError):
    """A prefix matches more than one session."""


class SessionLocked(TaurusError):
    """Another process holds the session for writing."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is open for writing by {holder}; close that chat first")


class SessionFormatError(TaurusError):
    """A session file cannot be read as a session (run `taurus-ops doctor`)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem} (run `taurus-ops doctor --fix` to repair it)")


class OpsLocked(TaurusError):
    """Another maintenance job (cleanup, backup, doctor) is running."""
