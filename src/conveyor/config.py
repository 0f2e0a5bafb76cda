"""Settings, read from `CONVEYOR_*` environment variables (or passed in directly).

Maps and lists are given as JSON, e.g. ``CONVEYOR_SERVICES='{"budapp": "http://127.0.0.1:9081"}'``
or ``CONVEYOR_QUEUES='{"gpu": 1}'``.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from conveyor.pipeline.template_limits import TemplateLimits

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
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """SQLite's `synchronous` for the embedded engine. NORMAL: a commit survives the process
    being killed, the last commits may be lost to a power loss or OS crash. FULL: they survive
    that too, at an fsync a commit (see docs/limits.md for what it costs)."""

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
    secrets_key: SecretStr | None = None
    """The Fernet key(s) webhook secrets are encrypted with in the database, comma separated
    (the first encrypts); a key file beside the database when unset (docs/security.md)."""

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
    force_evict: bool = False
    """Embedded engine, for tests: drop every run from memory after each commit and read it
    back from the database for its next transition, checking that what was stored is what the
    engine held. Slower; it proves that every change the engine makes is committed."""

    # HTTP service.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    """The largest request body the HTTP service reads; a larger one is answered 413."""
    events_token: SecretStr | None = None
    """The bearer token the HTTP events endpoint accepts (besides API keys), for senders such
    as a Dapr sidecar that cannot hold a scoped key."""

    # Limits on what one request or run may cost (docs/limits.md).
    max_for_each_items: int = Field(default=10_000, ge=1)
    """The most items a step's `for_each` may run over; more fails the step."""
    template_timeout_seconds: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """How long one template evaluation may run."""
    template_max_output_chars: int = Field(default=1_000_000, ge=1)
    """The longest text or list one template evaluation may make or output."""
    template_max_integer_digits: int = Field(default=4300, ge=1)
    """The most digits of an integer template arithmetic may make."""
    template_max_range: int = Field(default=10_000, ge=1)
    """The most items of one `range()` in a template."""
    template_max_loop_iterations: int = Field(default=100_000, ge=1)
    """The most `{% for %}` iterations of one template evaluation, all loops together."""
    template_max_call_depth: int = Field(default=50, ge=1)
    """How deep macro calls may nest in a template."""
    template_max_nesting: int = Field(default=50, ge=1)
    """How deep brackets may nest in a template's text."""
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
    temporal_tls: bool | None = None
    """Connect with TLS; default: when a CA, a client certificate or an API key is set."""
    temporal_tls_ca_path: Path | None = None
    """The CA (PEM) the frontend's certificate is checked against; default: the system's."""
    temporal_tls_cert_path: Path | None = None
    """The client certificate (PEM) for mTLS; needs `temporal_tls_key_path`."""
    temporal_tls_key_path: Path | None = None
    """The client certificate's private key (PEM)."""
    temporal_tls_server_name: str | None = None
    """The name the frontend's certificate is checked against (and sent as SNI), when it is
    not the address's host."""
    temporal_api_key: SecretStr | None = None
    """An API key, sent as a bearer token (a hosted cluster's); turns TLS on by default."""

    @model_validator(mode="after")
    def _temporal_client_certificate(self) -> Settings:
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            given, missing = (
                ("temporal_tls_cert_path", "temporal_tls_key_path")
                if self.temporal_tls_key_path is None
                else ("temporal_tls_key_path", "temporal_tls_cert_path")
            )
            raise ValueError(f"{missing}: needed with {given} (a client certificate and its key)")
        return self

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked when read, so a wrong key stops the start with one line, not a delivery later.
        if value is None:
            return value
        keys = [part.strip() for part in value.get_secret_value().split(",") if part.strip()]
        if not keys:
            raise ValueError("give at least one Fernet key")
        for position, key in enumerate(keys, 1):
            try:
                raw = base64.urlsafe_b64decode(key.encode())
            except (ValueError, binascii.Error):
                raw = b""
            if len(raw) != 32:
                raise ValueError(
                    f"key {position} is not a Fernet key (32 bytes in URL-safe base64; make one "
                    'with python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())")'
                )
        return value

    @model_validator(mode="after")
    def _temporal_installed(self) -> Settings:
        # Said when the setting is read, not at the first connect: the fix is an install.
        if self.backend == "temporal":
            from conveyor.backends.temporal import require_temporal

            require_temporal()
        return self

    def template_limits(self) -> TemplateLimits:
        """The template limits these settings give."""
        from conveyor.pipeline.template_limits import TemplateLimits

        return TemplateLimits(
            timeout_seconds=self.template_timeout_seconds,
            max_output_chars=self.template_max_output_chars,
            max_integer_digits=self.template_max_integer_digits,
            max_range=self.template_max_range,
            max_loop_iterations=self.template_max_loop_iterations,
            max_call_depth=self.template_max_call_depth,
            max_nesting=self.template_max_nesting,
        )

    def queue_capacity(self, queue: str) -> int:
        """How many steps of `queue` may run at once."""
        return self.queues.get(queue, self.default_queue_capacity)
