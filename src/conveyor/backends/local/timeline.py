"""A run's timeline: what changed in a transition, kept as rows and told to listeners.

Computed from the units a transition touched, against what was last reported of each, so the
state machine stays free of bookkeeping about who has seen what. Entries are plain tuples on
the hot path; `RunEvent` models are built only for readers and listeners.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from conveyor.actions import EventResult
from conveyor.engine.state import RunState, UnitState
from conveyor.runs import RunEvent

Entry = tuple[str, str | None, int | None, dict[str, Any]]
"""(kind, step_id, index, data)."""


def changes(state: RunState, rank: Mapping[str, int]) -> list[Entry]:
    """The timeline entries for `state`'s dirty units and run status; marks them reported.

    Units are taken upstream first (by `rank`, a topological position), so a step that
    completed reads before the step its completion started.
    """
    found: list[Entry] = []

    def order(key: tuple[str, int | None]) -> tuple[int, int]:
        return rank.get(key[0], 0), -1 if key[1] is None else key[1]

    for step_id, index in sorted(state.dirty, key=order):
        unit = state.unit(step_id, index)
        status = unit.status.value
        if status != unit.seen_status:
            first = unit.seen_status is None
            unit.seen_status = status
            if not (first and status == "pending"):
                found.append(("step", step_id, index, _unit_data(unit)))
        elif unit.progress != unit.seen_progress and status in ("running", "waiting"):
            found.append(("progress", step_id, index, _unit_data(unit)))
        unit.seen_progress = unit.progress
    if state.status.value != state.seen_status:
        state.seen_status = state.status.value
        entry: Entry = ("run", None, None, {"status": state.status.value, "error": state.error})
        # A run starts before its steps and finishes after them.
        if state.status.is_terminal:
            found.append(entry)
        else:
            found.insert(0, entry)
    return found


def event_applied(step_id: str, index: int | None, event_seq: int, result: EventResult) -> Entry:
    """The timeline entry for an event applied to a waiting unit."""
    data: dict[str, Any] = {"event_seq": event_seq, "action": result.action.value}
    if result.status is not None:
        data["status"] = result.status.value
    return ("event", step_id, index, data)


def mark_seen(state: RunState) -> None:
    """Treat everything in a freshly loaded state as already reported."""
    state.seen_status = state.status.value
    for step in state.steps.values():
        for unit in [step, *(step.items or [])]:
            unit.seen_status = unit.status.value
            unit.seen_progress = unit.progress


def to_event(run_id: str, at: float, entry: Entry, seq: int = 0) -> RunEvent:
    """The `RunEvent` of a timeline entry."""
    kind, step_id, index, data = entry
    known = {k: data.get(k) for k in ("status", "attempt", "progress", "message", "error")}
    extra = {k: v for k, v in data.items() if k not in known}
    return RunEvent(
        seq=seq,
        run_id=run_id,
        at=datetime.fromtimestamp(at, tz=UTC),
        kind=kind,
        step_id=step_id,
        index=index,
        data=extra or None,
        **known,
    )


def _unit_data(unit: UnitState) -> dict[str, Any]:
    data: dict[str, Any] = {"status": unit.status.value, "attempt": unit.attempt}
    if unit.progress:
        data["progress"] = unit.progress
    if unit.message is not None:
        data["message"] = unit.message
    if unit.error is not None:
        data["error"] = unit.error
    return data
