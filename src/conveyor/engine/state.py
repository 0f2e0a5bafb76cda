"""The state of one run, as the state machine sees it and the stores persist it.

Plain mutable dataclasses: the machine updates them in place and records what it touched in
`RunState.dirty`, so a store writes only the rows that changed (a 1,000-step run must not be
rewritten for each step that finishes).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.actions import StepStatus


class RunStatus(StrEnum):
    """Where a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        """Whether the run will not change again."""
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class TimerKind(StrEnum):
    """What a unit's timer means when it fires."""

    RETRY = "retry"
    """Backoff before the next attempt."""
    WAIT = "wait"
    """Deadline of a wait for an event."""
    SLEEP = "sleep"
    """End of a durable sleep; the unit completes."""


@dataclass
class UnitState:
    """One execution unit: a step, or one item of a `for_each` step.

    `index` is None for a plain step and the item's position for an item.
    """

    step_id: str
    index: int | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    params: dict[str, Any] | None = None
    """The rendered params of the current attempt; set when the unit is queued."""
    outputs: Any = None
    error: str | None = None
    external_id: str | None = None
    progress: float = 0.0
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    timer_at: float | None = None
    timer_kind: TimerKind | None = None
    item: Any = None
    # What a backend last reported of this unit (not stored; see backends' timelines).
    seen_status: str | None = field(default=None, compare=False, repr=False)
    seen_progress: float = field(default=0.0, compare=False, repr=False)

    @property
    def key(self) -> str:
        """The unit's key, unique in its run: `step` or `step[3]`."""
        return self.step_id if self.index is None else f"{self.step_id}[{self.index}]"

    @property
    def active(self) -> bool:
        """Whether the unit has started and not finished."""
        return self.status in (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.RETRYING)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "step_id": self.step_id,
            "index": self.index,
            "status": self.status.value,
            "attempt": self.attempt,
            "params": self.params,
            "outputs": self.outputs,
            "error": self.error,
            "external_id": self.external_id,
            "progress": self.progress,
            "message": self.message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "timer_at": self.timer_at,
            "timer_kind": self.timer_kind.value if self.timer_kind else None,
            "item": self.item,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitState:
        """The inverse of `to_dict`."""
        return cls(**_unit_fields(data))


@dataclass
class StepState(UnitState):
    """A step; a `for_each` step also holds its items."""

    items: list[UnitState] | None = None
    reason: str | None = None
    """Why a step was skipped or cancelled."""
    next_item: int = 0
    """For `for_each`: the index of the next item to queue."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, without the items (each item is a row of its own)."""
        data = super().to_dict()
        data["item_count"] = len(self.items) if self.items is not None else None
        data["reason"] = self.reason
        data["next_item"] = self.next_item
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepState:
        """The inverse of `to_dict`; items are stored apart and attached by the caller."""
        count = data.get("item_count")
        step_id = data["step_id"]
        return cls(
            **_unit_fields(data),
            items=[UnitState(step_id=step_id, index=i) for i in range(count)]
            if count is not None
            else None,
            reason=data.get("reason"),
            next_item=data.get("next_item", 0),
        )


def _unit_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`UnitState`'s fields from `to_dict`'s form (read once a run is loaded: keep it lean)."""
    kind = data.get("timer_kind")
    return {
        "step_id": data["step_id"],
        "index": data.get("index"),
        "status": StepStatus(data["status"]),
        "attempt": data.get("attempt", 0),
        "params": data.get("params"),
        "outputs": data.get("outputs"),
        "error": data.get("error"),
        "external_id": data.get("external_id"),
        "progress": data.get("progress", 0.0),
        "message": data.get("message"),
        "started_at": data.get("started_at"),
        "finished_at": data.get("finished_at"),
        "timer_at": data.get("timer_at"),
        "timer_kind": TimerKind(kind) if kind else None,
        "item": data.get("item"),
    }


@dataclass
class RunState:
    """One run: its inputs, status, steps and outputs."""

    run_id: str
    pipeline_name: str
    params: dict[str, Any]
    status: RunStatus = RunStatus.PENDING
    steps: dict[str, StepState] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    failed_step: str | None = None
    """The step whose failure fails the run (with fail_fast off the run goes on until idle)."""

    # Bookkeeping derived from the steps; rebuilt by `recount` after loading, never stored.
    running: int = 0
    open_steps: int = 0
    queue: deque[tuple[str, int | None]] = field(default_factory=deque)
    dirty: set[tuple[str, int | None]] = field(default_factory=set)
    run_dirty: bool = False
    seen_status: str | None = None

    def unit(self, step_id: str, index: int | None) -> UnitState:
        """The unit `step_id` (index None) or its item `index`."""
        step = self.steps[step_id]
        if index is None:
            return step
        assert step.items is not None
        return step.items[index]

    def touch(self, unit: UnitState) -> None:
        """Mark a unit's row as changed."""
        self.dirty.add((unit.step_id, unit.index))

    def recount(self) -> None:
        """Rebuild the derived bookkeeping from the steps (after loading from a store)."""
        self.running = 0
        self.open_steps = 0
        self.queue.clear()
        for step in self.steps.values():
            if not step.status.is_terminal:
                self.open_steps += 1
            units: list[UnitState] = list(step.items) if step.items is not None else [step]
            for unit in units:
                if unit.status is StepStatus.RUNNING:
                    self.running += 1
                elif unit.status is StepStatus.PENDING and unit.params is not None:
                    self.queue.append((unit.step_id, unit.index))

    @property
    def progress(self) -> float:
        """The run's progress, 0 to 100: finished steps count fully, active ones by their own."""
        if not self.steps:
            return 0.0
        if self.status is RunStatus.COMPLETED:
            return 100.0
        total = 0.0
        for step in self.steps.values():
            # Work done: a cancelled or failed step counts only as far as it got.
            if step.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                total += 100.0
            elif step.items:
                done = sum(100.0 if i.status.is_terminal else i.progress for i in step.items)
                total += done / len(step.items)
            else:
                total += step.progress
        return total / len(self.steps)


_STORED_RUN_FIELDS = (
    "status",
    "params",
    "outputs",
    "error",
    "started_at",
    "finished_at",
    "deadline_at",
    "failed_step",
)


def stored_difference(held: RunState, stored: RunState) -> str | None:
    """What `held` (a run in memory) has that `stored` (the same run read back) has not.

    None when they agree on everything a store keeps and on what is derived from it (the
    queue and the counts), so the run goes on the same whether or not it was read back.
    Names the first difference found, e.g. ``"step 'a' next_item 2 (stored: 1)"``.
    """
    for name in _STORED_RUN_FIELDS:
        mine, theirs = getattr(held, name), getattr(stored, name)
        if not _same(mine, theirs):
            return f"run {name} {mine!r} (stored: {theirs!r})"
    if held.steps.keys() != stored.steps.keys():
        return f"steps {sorted(held.steps)} (stored: {sorted(stored.steps)})"
    for step_id, step in held.steps.items():
        other = stored.steps[step_id]
        pairs: list[tuple[UnitState, UnitState]] = [(step, other)]
        if step.items is not None and other.items is not None:
            pairs += list(zip(step.items, other.items, strict=False))
        for unit, twin in pairs:
            mine_data, theirs_data = unit.to_dict(), twin.to_dict()
            for key, mine in mine_data.items():
                theirs = theirs_data.get(key)
                if not _same(mine, theirs):
                    return f"unit {unit.key!r} {key} {mine!r} (stored: {theirs!r})"
    for name in ("running", "open_steps"):
        if getattr(held, name) != getattr(stored, name):
            return f"{name} {getattr(held, name)} (stored: {getattr(stored, name)})"
    if set(held.queue) != set(stored.queue):
        return f"queue {sorted(held.queue, key=str)} (stored: {sorted(stored.queue, key=str)})"
    return None


def _same(mine: Any, theirs: Any) -> bool:
    """Equal, and of the same JSON kinds all the way down (a tuple is not a stored list)."""
    if isinstance(mine, dict):
        return (
            isinstance(theirs, dict)
            and mine.keys() == theirs.keys()
            and all(_same(value, theirs[key]) for key, value in mine.items())
        )
    if isinstance(mine, list):
        return (
            isinstance(theirs, list)
            and len(mine) == len(theirs)
            and all(_same(a, b) for a, b in zip(mine, theirs, strict=True))
        )
    if type(mine) is not type(theirs) and not (
        isinstance(mine, int | float) and isinstance(theirs, int | float)
    ):
        return False
    return bool(mine == theirs)
