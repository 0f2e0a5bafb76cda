"""What callers see of a run: read-only views, the same whichever backend runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.actions import StepStatus
from conveyor.engine.state import RunState, RunStatus, StepState, UnitState


def as_datetime(value: float | None) -> datetime | None:
    """A stored epoch timestamp as an aware UTC datetime (None stays None)."""
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


TriggerKind = Literal["manual", "schedule", "webhook", "event"]
"""What started a run: a request (`manual`), a schedule, a webhook or an event trigger."""


class RunTrigger(BaseModel):
    """What started a run: its kind, the schedule's (webhook's, event trigger's) id and,
    for a schedule, the slot the run is for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TriggerKind = "manual"
    id: str | None = Field(
        default=None, max_length=200, description="The schedule's, webhook's or event trigger's id."
    )
    time: datetime | None = Field(
        default=None, description="The slot a schedule's run is for (UTC); None for the others."
    )

    def stored_time(self) -> str | None:
        """`time` as stored: ISO 8601 in UTC, or None."""
        if self.time is None:
            return None
        when = self.time if self.time.tzinfo is not None else self.time.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @classmethod
    def stored(cls, kind: str | None, ident: str | None, time: str | None) -> RunTrigger:
        """The trigger of a stored row (its three columns)."""
        return cls.model_validate({"kind": kind or "manual", "id": ident, "time": time})


MANUAL = RunTrigger()
"""The trigger of a run started on request."""


class ItemView(BaseModel):
    """One item of a `for_each` step."""

    model_config = ConfigDict(frozen=True)

    index: int
    item: Any = None
    status: StepStatus
    attempt: int
    outputs: Any = None
    error: str | None = None
    progress: float = 0.0
    external_id: str | None = None


class StepView(BaseModel):
    """One step of a run."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    status: StepStatus
    attempt: int
    params: dict[str, Any] | None = None
    outputs: Any = None
    error: str | None = None
    reason: str | None = None
    progress: float = 0.0
    message: str | None = None
    external_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_timer_at: datetime | None = None
    duration_seconds: float | None = None
    items: list[ItemView] | None = None
    items_total: int | None = Field(
        default=None,
        description="How many items a for_each step has; `items` holds the first of them "
        "(the rest: GET /runs/{id}/steps/{step_id}/items).",
    )

    @classmethod
    def of(cls, step: StepState) -> StepView:
        """The view of a step's state."""
        duration = (
            step.finished_at - step.started_at
            if step.finished_at is not None and step.started_at is not None
            else None
        )
        return cls(
            step_id=step.step_id,
            status=step.status,
            attempt=step.attempt,
            params=step.params,
            outputs=step.outputs,
            error=step.error,
            reason=step.reason,
            progress=_step_progress(step),
            message=step.message,
            external_id=step.external_id,
            started_at=as_datetime(step.started_at),
            finished_at=as_datetime(step.finished_at),
            next_timer_at=as_datetime(step.timer_at),
            duration_seconds=duration,
            items=[_item(unit) for unit in step.items] if step.items is not None else None,
            items_total=len(step.items) if step.items is not None else None,
        )


def _item(unit: UnitState) -> ItemView:
    return ItemView(
        index=unit.index or 0,
        item=unit.item,
        status=unit.status,
        attempt=unit.attempt,
        outputs=unit.outputs,
        error=unit.error,
        progress=unit.progress,
        external_id=unit.external_id,
    )


def _step_progress(step: StepState) -> float:
    if step.status is StepStatus.COMPLETED:
        return 100.0
    if step.items:
        done = sum(100.0 if i.status.is_terminal else i.progress for i in step.items)
        return done / len(step.items)
    return step.progress


class RunView(BaseModel):
    """A run with its steps, progress and (while it runs) an estimate of time left."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    pipeline: str
    kind: str = "pipeline"
    status: RunStatus
    params: dict[str, Any]
    outputs: dict[str, Any] | None = None
    error: str | None = None
    progress: float = 0.0
    eta_seconds: float | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    owner: str | None = None
    retry_of: str | None = None
    """The run this one retries, if it is a retry."""
    trigger: RunTrigger = MANUAL
    steps: list[StepView] = []

    @property
    def succeeded(self) -> bool:
        """Whether the run completed."""
        return self.status is RunStatus.COMPLETED

    def step(self, step_id: str) -> StepView:
        """The view of step `step_id`."""
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise KeyError(step_id)

    @classmethod
    def of(
        cls,
        state: RunState,
        *,
        kind: str = "pipeline",
        idempotency_key: str | None = None,
        owner: str | None = None,
        retry_of: str | None = None,
        trigger: RunTrigger | None = None,
        now: float | None = None,
        order: list[str] | None = None,
    ) -> RunView:
        """The view of a run's state; `now` gives the ETA, `order` the steps' order."""
        progress = state.progress
        eta = _eta(state, progress, now)
        ids = order or list(state.steps)
        return cls(
            run_id=state.run_id,
            pipeline=state.pipeline_name,
            kind=kind,
            status=state.status,
            params=state.params,
            outputs=state.outputs,
            error=state.error,
            progress=round(progress, 2),
            eta_seconds=eta,
            created_at=as_datetime(state.created_at),
            started_at=as_datetime(state.started_at),
            finished_at=as_datetime(state.finished_at),
            idempotency_key=idempotency_key,
            owner=owner,
            retry_of=retry_of,
            trigger=trigger or MANUAL,
            steps=[StepView.of(state.steps[i]) for i in ids if i in state.steps],
        )


def _eta(state: RunState, progress: float, now: float | None) -> float | None:
    """Seconds until the run is likely to end, or None when nothing says.

    Extrapolated from the progress so far, but never shorter than a durable timer the run
    must wait out (a 300 s delay, a retry's backoff): a retry that kept finished steps would
    otherwise look nearly done at once. None while a step waits for an event that has said
    nothing of its progress: when it comes is not the run's to know.
    """
    if now is None or state.status is not RunStatus.RUNNING or state.started_at is None:
        return None
    if not 0 < progress < 100:
        return None
    timers: list[float] = []
    for step in state.steps.values():
        for unit in [step, *(step.items or [])]:
            if unit.status is StepStatus.WAITING and unit.external_id and unit.progress <= 0:
                return None
            if unit.active and unit.timer_at is not None:
                timers.append(unit.timer_at - now)
    elapsed = now - state.started_at
    return max([elapsed * (100 - progress) / progress, *timers, 0.0])


class RunSummary(BaseModel):
    """A run in a list: no steps."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    pipeline: str
    kind: str
    status: RunStatus
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str | None = None
    trigger: RunTrigger = MANUAL


class RunEvent(BaseModel):
    """One entry of a run's timeline: a status change, a progress report or an applied event.

    `kind` is `run` (the run's status changed), `step` (a step's or item's status changed),
    `progress` (a step reported progress), `event` (an event was applied to a waiting step)
    or `log` (a line the step logged: `message`, `attempt`, `data.level`).
    """

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    run_id: str
    at: datetime
    kind: str
    step_id: str | None = None
    index: int | None = None
    status: str | None = None
    attempt: int | None = None
    progress: float | None = None
    message: str | None = None
    error: str | None = None
    data: dict[str, Any] | None = None
