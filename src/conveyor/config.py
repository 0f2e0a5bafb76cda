"""Settings, read from `CONVEYOR_*` environment variables (or passed in directly).

Maps and lists are given as JSON, e.g. ``CONVEYOR_SERVICES='{"budapp": "http://127.0.0.1:9081"}'``
or ``CONVEYOR_QUEUES='{"gpu": 1}'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CORRELATION_PATHS = (
    "workflow_id",
    "payload.workflow_id",
    "data.workflow_id",
    "data.payload.workflow_id",
)


DEFAULT_DB_PATH = Path(".conveyor") / "conveyor.db"
"""The database every command uses unless told otherwise, relative to the working directory:
the one `make run` serves, so a key made by `conveyor keys create` there is one it accepts."""


FinishedStatus = Literal["completed", "failed", "cancelled", "timed_out"]


def _every_finished_status() -> list[FinishedStatus]:
    return ["completed", "failed", "cancelled", "timed_out"]


class RetentionRule(BaseModel):
    """Which finished runs are deleted: those of these statuses that ended this long ago."""

    model_config = ConfigDict(extra="forbid")

    older_than_days: float = Field(gt=0)
    statuses: list[FinishedStatus] = Field(default_factory=_every_finished_status, min_length=1)


class Settings(BaseSettings):
    """Everything configurable, with defaults that work on one machine."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    backend: Literal["local", "temporal"] = "local"
    db_path: Path = DEFAULT_DB_PATH
    """The embedded engine's SQLite file (`.conveyor/conveyor.db` in the working directory)."""

    # Services and publishing.
    services: dict[str, str] = Field(default_factory=dict)
    """App id to base URL, for direct-HTTP service invocation."""
    dapr_http_endpoint: str | None = None
    """A Dapr sidecar's HTTP address (e.g. http://127.0.0.1:3500); when set, calls go through it."""
    dapr_api_token: SecretStr | None = None
    pubsub_name: str = "pubsub"
    callback_topic: str = "conveyor-events"
    """The topic external services publish completion events to."""
    topic_urls: dict[str, str] = Field(default_factory=dict)
    """Topic to URL, for publishing over plain HTTP when no Dapr sidecar is configured."""

    # Lifecycle publishing: each run's lifecycle to its callback topics and webhooks.
    publish_max_attempts: int = Field(default=8, ge=1, le=100)
    """How many times a delivery is tried before it is recorded as failed."""
    publish_backoff_seconds: float = Field(default=1.0, gt=0)
    """The wait before the second attempt; it doubles with each attempt after that."""
    publish_max_backoff_seconds: float = Field(default=300.0, gt=0)
    """The longest wait between two attempts."""
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one attempt may take."""
    publish_concurrency: int = Field(default=8, ge=1)
    """How many deliveries are in flight at once (each target gets one at a time)."""
    publish_max_output_bytes: int = Field(default=16 * 1024, ge=0)
    """Outputs larger than this (as JSON) are left out of lifecycle messages."""

    # Outbound HTTP from actions.
    allow_private_networks: bool = False
    """Let actions reach loopback, private, link-local and metadata addresses (off by default)."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names or CIDR blocks reachable even though they are internal."""

    # Events.
    correlation_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_CORRELATION_PATHS))
    event_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    """How long an event nobody waits on yet is kept for a step that starts waiting later."""

    # Execution.
    queues: dict[str, int] = Field(default_factory=lambda: {"default": 64})
    """Capacity of each queue: how many steps of it run at once in this process."""
    default_queue_capacity: int = Field(default=64, ge=1)

    # HTTP service.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    """The largest request body the HTTP service reads; a larger one is answered 413."""
    events_token: SecretStr | None = None
    """The bearer token the HTTP events endpoint accepts (besides API keys), for senders such
    as a Dapr sidecar that cannot hold a scoped key."""

    # Step logs and retention.
    step_log_max_bytes: int = Field(default=64 * 1024, ge=0)
    """How much of each step's log (`context.logger`) is kept with its run; past it, one
    line says the rest was dropped."""
    retention: RetentionRule | None = None
    """Finished runs deleted by `conveyor serve` (with their timeline, logs, events and
    deliveries), e.g. ``{"older_than_days": 30}``; None keeps every run."""
    retention_by_owner: dict[str, RetentionRule] = Field(default_factory=dict)
    """Owner to rule, in place of `retention` for that owner's runs."""
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often `conveyor serve` applies the retention rules."""

    # Temporal.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue_prefix: str = "conveyor"

    @model_validator(mode="after")
    def _temporal_installed(self) -> Settings:
        # Said when the setting is read, not at the first connect: the fix is an install.
        if self.backend == "temporal":
            from conveyor.backends.temporal import require_temporal

            require_temporal()
        return self

    def queue_capacity(self, queue: str) -> int:
        """How many steps of `queue` may run at once."""
        return self.queues.get(queue, self.default_queue_capacity)
