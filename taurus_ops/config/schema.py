"""The settings schema: every key, its type, its default. Keys are camelCase as users write them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from taurus_ops.config.paths import taurus_home

PositiveInt = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_default=True
    )


class SessionsSettings(Section):
    retention_days: PositiveInt | None = Field(
        None,
        description="Sessions not updated for this many days are archived (or deleted). Off when null.",
    )
    max_sessions: PositiveInt | None = Field(
        None,
        description="Keep at most this many sessions; older ones are archived (or deleted). Off when null.",
    )
    auto_archive: bool = Field(
        True, description="Move expired sessions to archiveDirectory instead of deleting them."
    )
    archive_directory: Path = Field(
        default_factory=lambda: taurus_home() / "archive",
        description="Where archived sessions go.",
    )
    cleanup_named: bool = Field(
        False, description="Let cleanup remove sessions that have a name symlink."
    )


class ArchiveSettings(Section):
    retention_days: PositiveInt | None = Field(
        None, description="Archived sessions older than this are deleted. Null keeps them forever."
    )


class BackupSettings(Section):
    directory: Path = Field(
        default_factory=lambda: taurus_home() / "backups", description="Where backups are written."
    )
    keep: PositiveInt = Field(7, description="How many backups to keep; older ones are removed.")
    include_archive: bool = Field(True, description="Include the archive directory.")
    include_templates: bool = Field(True, description="Include ~/.taurus/templates.")
    include_config: bool = Field(True, description="Include ~/.taurus/config.yaml.")


class ScheduleSettings(Section):
    cleanup: str = Field("30 3 * * *", description="Cron expression for the nightly cleanup.")
    backup: str = Field("0 3 * * *", description="Cron expression for the nightly backup.")

    @field_validator("cleanup", "backup")
    @classmethod
    def _cron(cls, value: str) -> str:
        from taurus_ops.config.cron import validate_cron

        return validate_cron(value)  # a CronError (a ValueError) names the problem


class PermissionsSettings(Section):
    allow: list[str] = Field(
        default_factory=list, description="Tools that run without asking (e.g. write, edit, bash)."
    )
    deny: list[str] = Field(default_factory=list, description="Tools that are always refused.")


class ChatSettings(Section):
    max_tokens: PositiveInt = Field(8192, description="Largest reply the model may write per turn.")
    context_window: PositiveInt = Field(
        200_000, description="Tokens the model accepts; Taurus warns and offers /compact near it."
    )
    bash_timeout: PositiveInt = Field(120, description="Seconds before a bash tool run is stopped.")
    output_limit: PositiveInt = Field(
        30_000, description="Characters of tool output sent back to the model."
    )
    allow_outside_cwd: bool = Field(
        False, description="Let file tools reach paths outside the working directory."
    )
    prompt_caching: bool = Field(
        True,
        description="Mark the conversation for the API's prompt cache (cheaper long sessions).",
    )


class CheckpointSettings(Section):
    max_bytes: Annotated[int, Field(ge=1 << 20, le=1 << 40)] = Field(
        1 << 30,
        description=(
            "Bytes the file checkpoints (~/.taurus/checkpoints) may take, 1 MiB to 1 TiB; "
            "the oldest go first."
        ),
    )


class SettingsModel(Section):
    session_directory: Path = Field(
        default_factory=lambda: taurus_home() / "sessions", description="Where sessions are saved."
    )
    model: str = Field("claude-sonnet-5-5", description="The Anthropic model the chat talks to.")
    sessions: SessionsSettings = Field(
        default_factory=SessionsSettings,
        description="Retention: off until you set retentionDays or maxSessions.",
    )
    archive: ArchiveSettings = Field(
        default_factory=ArchiveSettings, description="What happens to archived sessions."
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings, description="taurus-ops backup create and its rotation."
    )
    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings,
        description="When taurus-ops schedule run (or the systemd timers) run the nightly jobs.",
    )
    permissions: PermissionsSettings = Field(
        default_factory=PermissionsSettings, description="Which chat tools may run without asking."
    )
    chat: ChatSettings = Field(default_factory=ChatSettings, description="taurus chat.")
    checkpoints: CheckpointSettings = Field(
        default_factory=CheckpointSettings,
        description="What the chat keeps of files before write and edit change them (/rewind).",
    )
