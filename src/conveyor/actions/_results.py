"""What executors return: `ActionResult` from `execute()`, `EventResult` from `on_event()`.

Both check themselves when built, so a result that the engine could not act on (a wait without
a correlation id, a completion without a status) fails inside the action that made it, with a
message, instead of leaving a step stuck.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StepStatus(StrEnum):
    """Where a step (or one item of a fanned-out step) stands."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the step will not change again."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
)


class EventAction(StrEnum):
    """What `on_event` decided about an event."""

    COMPLETE = "complete"
    """Finish the step with `status` (COMPLETED or FAILED)."""
    UPDATE_PROGRESS = "update_progress"
    """Record `progress` (and `message`) and keep waiting."""
    IGNORE = "ignore"
    """Not for this step's completion; keep waiting."""


class ActionResult(BaseModel):
    """The outcome of `execute()`.

    A failure is `success=False` with an `error`. To wait for an external service, return
    `success=True, awaiting_event=True` and the `external_workflow_id` its events will carry. To
    pause durably, return `sleep_seconds`: the step completes when that timer fires, across
    restarts.
    """

    model_config = ConfigDict(extra="forbid")

    success: bool
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    awaiting_event: bool = False
    external_workflow_id: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    sleep_seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ActionResult:
        if self.awaiting_event:
            if not self.success:
                raise ValueError(
                    "awaiting_event=True needs success=True: a failed call waits for nothing"
                )
            if not self.external_workflow_id:
                raise ValueError(
                    "awaiting_event=True needs external_workflow_id: the id events will carry"
                )
        if self.sleep_seconds is not None:
            if not self.success:
                raise ValueError("sleep_seconds needs success=True")
            if self.awaiting_event:
                raise ValueError("sleep_seconds and awaiting_event cannot be combined")
        return self


class EventResult(BaseModel):
    """The outcome of `on_event()` for one event."""

    model_config = ConfigDict(extra="forbid")

    action: EventAction
    status: StepStatus | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    progress: float | None = Field(default=None, ge=0, le=100)
    message: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EventResult:
        if self.action is EventAction.COMPLETE:
            if self.status is None:
                raise ValueError("action COMPLETE needs a status (COMPLETED or FAILED)")
            if self.status not in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.TIMEOUT):
                raise ValueError(
                    "action COMPLETE takes status COMPLETED, FAILED or TIMEOUT, "
                    f"not {self.status.name}"
                )
        if self.action is EventAction.UPDATE_PROGRESS and self.progress is None:
            raise ValueError("action UPDATE_PROGRESS needs progress (0 to 100)")
        return self
