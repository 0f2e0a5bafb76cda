"""The pure run state machine: given a run's state and what happened, what happens next."""

from conveyor.engine.machine import transition
from conveyor.engine.messages import (
    Abort,
    CancelRun,
    ClearTimer,
    Command,
    EventApplied,
    Execute,
    ExecutionFailed,
    ExecutionFinished,
    FailureKind,
    Input,
    ProgressReported,
    Recover,
    RunFinished,
    SetTimer,
    StartRun,
    TimerFired,
    Unwatch,
    Watch,
)
from conveyor.engine.plan import Plan, StepPlan
from conveyor.engine.state import RunState, RunStatus, StepState, TimerKind, UnitState

__all__ = [
    "Abort",
    "CancelRun",
    "ClearTimer",
    "Command",
    "EventApplied",
    "Execute",
    "ExecutionFailed",
    "ExecutionFinished",
    "FailureKind",
    "Input",
    "Plan",
    "ProgressReported",
    "Recover",
    "RunFinished",
    "RunState",
    "RunStatus",
    "SetTimer",
    "StartRun",
    "StepPlan",
    "StepState",
    "TimerFired",
    "TimerKind",
    "UnitState",
    "Unwatch",
    "Watch",
    "transition",
]
