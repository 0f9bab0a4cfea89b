"""The settings schema: every key, its type, its default. Keys are camelCase as users write them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from taurus_ops.config.paths import taurus_home

# Every number is bounded by what the code can use, so a value that passes validation
# never fails later: a day count turns into a date (100,000 days back is still in the
# calendar; 800,000 is not), a timeout into a wait the OS accepts, a limit into memory.
MAX_DAYS = 100_000  # about 270 years
MAX_COUNT = 10_000_000  # sessions or backups kept
MAX_TOKENS = 10_000_000  # far past any model's context window or reply
MAX_SECONDS = 7 * 24 * 3600  # a week
MAX_CHARACTERS = 100_000_000  # characters of tool output held in memory

Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Seconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
Characters = Annotated[int, Field(ge=1, le=MAX_CHARACTERS)]


class Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_default=True
    )


class SessionsSettings(Section):
    retention_days: Days | None = Field(
        None,
        description="Sessions not updated for this many days are archived (or deleted). Off when null.",
    )
    max_sessions: Count | None = Field(
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
    retention_days: Days | None = Field(
        None, description="Archived sessions older than this are deleted. Null keeps them forever."
    )


class BackupSettings(Section):
    directory: Path = Field(
        default_factory=lambda: taurus_home() / "backups", description="Where backups are written."
    )
    keep: Count = Field(7, description="How many backups to keep; older ones are removed.")
    include_archive: bool = Field(True, description="Include the archive directory.")
    include_templates: bool = Field(True, description="Include ~/.taurus/templates.")
    include_config: bool = Field(True, description="Include ~/.taurus/config.yaml.")
    destination: str | None = Field(
        None,
        description="Also upload each backup here: s3://BUCKET/PREFIX or file:///PATH (remote.* settings apply). Off when null.",
    )

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        from taurus_ops.remote.url import parse_remote_url

        return None if value is None else parse_remote_url(value).url


class ScheduleSettings(Section):
    cleanup: str = Field("30 3 * * *", description="Cron expression for the nightly cleanup.")
    backup: str = Field("0 3 * * *", description="Cron expression for the nightly backup.")
    sync: str | None = Field(
        None, description="Cron expression for taurus-ops sync (needs remote.url). Off when null."
    )

    @field_validator("cleanup", "backup", "sync")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from taurus_ops.config.cron import validate_cron

        if value is None:
            return None
        return validate_cron(value)  # a CronError (a ValueError) names the problem


class RemoteSettings(Section):
    url: str | None = Field(
        None,
        description="Where sessions are synced and shared: s3://BUCKET/PREFIX or file:///PATH. Off when null.",
    )
    endpoint_url: str | None = Field(
        None, description="An S3-compatible endpoint (MinIO, R2, Ceph): http(s)://HOST[:PORT]."
    )
    region: str | None = Field(None, description="The S3 region (null: from the AWS settings).")
    profile: str | None = Field(
        None, description="The AWS profile for credentials (null: the default chain)."
    )
    device: str | None = Field(
        None, description="This machine's name in the remote (null: the host name)."
    )
    encryption_key_file: Path | None = Field(
        None,
        description="Encrypt sessions on this machine with this key (taurus-ops remote init --encrypt).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        from taurus_ops.remote.url import parse_remote_url

        return None if value is None else parse_remote_url(value).url

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        from taurus_ops.remote.url import check_endpoint

        return None if value is None else check_endpoint(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        from taurus_ops.remote.url import check_device

        return None if value is None else check_device(value)


class PermissionsSettings(Section):
    allow: list[str] = Field(
        default_factory=list, description="Tools that run without asking (e.g. write, edit, bash)."
    )
    deny: list[str] = Field(default_factory=list, description="Tools that are always refused.")


class ChatSettings(Section):
    max_tokens: Tokens = Field(8192, description="Largest reply the model may write per turn.")
    context_window: Tokens = Field(
        200_000, description="Tokens the model accepts; Taurus warns and offers /compact near it."
    )
    bash_timeout: Seconds = Field(120, description="Seconds before a bash tool run is stopped.")
    output_limit: Characters = Field(
        30_000, description="Characters of tool output sent back to the model."
    )
    allow_outside_cwd: bool = Field(
        False, description="Let file tools reach paths outside the working directory."
    )
    prompt_caching: bool = Field(
        True,
        description="Mark the conversation for the API's prompt cache (cheaper long sessions).",
    )

    @model_validator(mode="after")
    def _reply_fits_the_window(self) -> ChatSettings:
        # the window holds the conversation and the reply: a reply as large as the window
        # would leave no room for even one message, and every turn would be refused
        if self.max_tokens >= self.context_window:
            raise ValueError(
                f"chat.maxTokens ({self.max_tokens}) must be smaller than chat.contextWindow "
                f"({self.context_window}): the reply is part of the window"
            )
        return self


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
    remote: RemoteSettings = Field(
        default_factory=RemoteSettings,
        description="S3-compatible storage or a shared folder for sync and share; credentials come only from the AWS chain.",
    )
    checkpoints: CheckpointSettings = Field(
        default_factory=CheckpointSettings,
        description="What the chat keeps of files before write and edit change them (/rewind).",
    )
