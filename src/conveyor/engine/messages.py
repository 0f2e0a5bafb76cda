"""What the state machine is told (inputs) and what it asks for (commands).

Inputs carry the attempt they belong to, so a late answer from an attempt that was cancelled,
timed out or replaced after a restart is recognised and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from conveyor.actions import ActionResult, EventResult

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class StartRun:
    """Begin the run."""


@dataclass(frozen=True)
class Recover:
    """The engine restarted: re-run or fail the units that were running when it stopped."""


class FailureKind(StrEnum):
    """Why an execution failed."""

    ERROR = "error"
    """The executor returned a failure or raised."""
    TIMEOUT = "timeout"
    """It ran past its timeout."""
    INTERRUPTED = "interrupted"
    """The engine stopped while it ran and the action is not idempotent."""
    INVALID = "invalid"
    """Its params or result were invalid; trying again would not help."""


@dataclass(frozen=True)
class ExecutionFinished:
    """`execute()` of a unit returned."""

    step_id: str
    index: int | None
    attempt: int
    result: ActionResult


@dataclass(frozen=True)
class ExecutionFailed:
    """`execute()` of a unit raised, timed out or could not run."""

    step_id: str
    index: int | None
    attempt: int
    error: str
    kind: FailureKind = FailureKind.ERROR


@dataclass(frozen=True)
class EventApplied:
    """`on_event()` of a waiting unit decided about one event."""

    step_id: str
    index: int | None
    attempt: int
    result: EventResult


@dataclass(frozen=True)
class ProgressReported:
    """A running unit reported progress."""

    step_id: str
    index: int | None
    attempt: int
    percent: float
    message: str | None = None


@dataclass(frozen=True)
class TimerFired:
    """A timer armed by `SetTimer` fired. `step_id` None is the run's own deadline."""

    step_id: str | None
    index: int | None
    at: float


@dataclass(frozen=True)
class CancelRun:
    """Someone asked to cancel the run."""

    reason: str = "cancelled"


Input = (
    StartRun
    | Recover
    | ExecutionFinished
    | ExecutionFailed
    | EventApplied
    | ProgressReported
    | TimerFired
    | CancelRun
)

# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Execute:
    """Run `execute()` of the unit's action."""

    step_id: str
    index: int | None
    attempt: int
    action: str
    params: dict[str, Any]
    queue: str
    timeout_seconds: float | None
    item: Any = None


@dataclass(frozen=True)
class Abort:
    """Stop a unit: cancel its running `execute()` if any, then call `cleanup()`."""

    step_id: str
    index: int | None
    attempt: int
    action: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Watch:
    """Deliver events with this correlation id to the unit (persistent until `Unwatch`)."""

    step_id: str
    index: int | None
    attempt: int
    correlation_id: str


@dataclass(frozen=True)
class Unwatch:
    """Stop delivering events to the unit."""

    step_id: str
    index: int | None
    correlation_id: str


@dataclass(frozen=True)
class SetTimer:
    """Arm (or move) the unit's durable timer; `step_id` None is the run's deadline."""

    step_id: str | None
    index: int | None
    at: float


@dataclass(frozen=True)
class ClearTimer:
    """Disarm the unit's timer."""

    step_id: str | None
    index: int | None


@dataclass(frozen=True)
class RunFinished:
    """The run reached a terminal status; its outputs are in the state."""

    status: str


Command = Execute | Abort | Watch | Unwatch | SetTimer | ClearTimer | RunFinished
