"""``backup list``: the backups kept, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.ops.backup.rotate import BackupFile, list_backups

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext


@dataclass(frozen=True)
class ListRequest:
    pass


@dataclass
class ListResult:
    folder: Path
    keep: int
    backups: list[BackupFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return True

    @property
    def exit_code(self) -> int:
        return 0

    def as_json(self) -> list[dict[str, Any]]:
        return [b.as_json() for b in self.backups]


def run(ctx: JobContext, request: ListRequest) -> ListResult:
    settings = ctx.config.settings.backup
    folder = Path(settings.directory)
    return ListResult(folder, settings.keep, list_backups(folder))
