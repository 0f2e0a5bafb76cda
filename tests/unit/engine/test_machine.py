"""The pure state machine, driven by hand: no store, no event loop, no clock."""

from __future__ import annotations

from typing import Any

from conveyor.actions import ActionMeta, ActionResult, ExecutionMode, RetryPolicy, StepStatus
from conveyor.engine import (
    Abort,
    CancelRun,
    ClearTimer,
    Execute,
    ExecutionFailed,
    ExecutionFinished,
    Plan,
    Recover,
    RunFinished,
    RunState,
    RunStatus,
    SetTimer,
    StartRun,
    TimerFired,
    Watch,
    transition,
)
from conveyor.pipeline import PipelineSpec

SAFE = ActionMeta(
    type="safe",
    version="1.0.0",
    name="s",
    description="d",
    category="c",
    idempotent=True,
    dynamic_outputs=True,
)
UNSAFE = SAFE.model_copy(update={"type": "unsafe", "idempotent": False})
WAITS = SAFE.model_copy(update={"type": "waits", "execution_mode": ExecutionMode.EVENT_DRIVEN})
METAS = {m.type: m for m in (SAFE, UNSAFE, WAITS)}


def make(*steps: dict[str, Any], **fields: Any) -> tuple[Plan, RunState]:
    spec = PipelineSpec.model_validate({"name": "p", "steps": list(steps), **fields})
    return Plan.compile(spec, METAS), RunState(run_id="r1", pipeline_name="p", params={})


def ok(step: str, attempt: int = 1, **outputs: Any) -> ExecutionFinished:
    return ExecutionFinished(step, None, attempt, ActionResult(success=True, outputs=outputs))


def test_the_same_inputs_give_the_same_commands_and_state() -> None:
    def drive() -> tuple[list[Any], dict[str, Any]]:
        plan, state = make(
            {"id": "a", "action": "safe"},
            {"id": "b", "action": "safe", "depends_on": ["a"], "for_each": [1, 2]},
            {"id": "c", "action": "waits", "depends_on": ["a"]},
        )
        log = [transition(plan, state, StartRun(), 1.0)]
        log.append(transition(plan, state, ok("a", v=1), 2.0))
        return log, {k: s.to_dict() for k, s in state.steps.items()}

    assert drive() == drive()


def test_start_executes_the_roots_and_arms_the_run_deadline() -> None:
    plan, state = make(
        {"id": "a", "action": "safe"},
        {"id": "b", "action": "safe", "depends_on": ["a"]},
        settings={"timeout_seconds": 10},
    )
    commands = transition(plan, state, StartRun(), 100.0)
    assert commands == [
        SetTimer(None, None, 110.0),
        Execute("a", None, 1, "safe", {}, "default", None),
    ]
    assert state.status is RunStatus.RUNNING


def test_a_late_answer_from_an_old_attempt_is_ignored() -> None:
    plan, state = make({"id": "a", "action": "safe", "retry": {"max_attempts": 2}})
    transition(plan, state, StartRun(), 0.0)
    commands = transition(plan, state, ExecutionFailed("a", None, 1, "boom"), 1.0)
    assert state.steps["a"].status is StepStatus.RETRYING
    assert commands == [SetTimer("a", None, 2.0)]
    assert transition(plan, state, ok("a", attempt=1), 1.5) == []
    assert state.steps["a"].status is StepStatus.RETRYING


def test_a_timer_that_was_moved_does_not_fire_early() -> None:
    plan, state = make(
        {"id": "a", "action": "safe", "retry": RetryPolicy(max_attempts=2).model_dump()}
    )
    transition(plan, state, StartRun(), 0.0)
    transition(plan, state, ExecutionFailed("a", None, 1, "boom"), 1.0)
    assert transition(plan, state, TimerFired("a", None, 1.5), 1.5) == []
    commands = transition(plan, state, TimerFired("a", None, 2.0), 2.0)
    assert commands == [Execute("a", None, 2, "safe", {}, "default", None)]


def test_recover_reruns_idempotent_steps_and_fails_the_others() -> None:
    plan, state = make(
        {"id": "a", "action": "safe"},
        {"id": "b", "action": "unsafe"},
        settings={"fail_fast": False},
    )
    transition(plan, state, StartRun(), 0.0)
    commands = transition(plan, state, Recover(), 5.0)
    assert Execute("a", None, 1, "safe", {}, "default", None) in commands
    assert state.steps["b"].status is StepStatus.FAILED
    assert "interrupted" in (state.steps["b"].error or "")
    assert state.steps["a"].status is StepStatus.RUNNING


def test_waiting_emits_a_watch_and_cancel_aborts_it() -> None:
    plan, state = make({"id": "w", "action": "waits", "timeout_seconds": 30})
    transition(plan, state, StartRun(), 0.0)
    result = ActionResult(success=True, awaiting_event=True, external_workflow_id="x")
    commands = transition(plan, state, ExecutionFinished("w", None, 1, result), 1.0)
    assert commands == [Watch("w", None, 1, "x"), SetTimer("w", None, 31.0)]
    commands = transition(plan, state, CancelRun(), 2.0)
    assert commands[-1] == RunFinished("cancelled")
    assert Abort("w", None, 1, "waits", {}) in commands
    assert ClearTimer("w", None) in commands
    assert state.steps["w"].status is StepStatus.CANCELLED


def test_a_sync_action_that_asks_to_wait_fails() -> None:
    plan, state = make({"id": "a", "action": "safe"})
    transition(plan, state, StartRun(), 0.0)
    result = ActionResult(success=True, awaiting_event=True, external_workflow_id="x")
    transition(plan, state, ExecutionFinished("a", None, 1, result), 1.0)
    assert state.steps["a"].status is StepStatus.FAILED
    assert "SYNC" in (state.steps["a"].error or "")


def test_only_changed_rows_are_marked_dirty() -> None:
    plan, state = make(*({"id": f"s{i}", "action": "safe"} for i in range(50)))
    transition(plan, state, StartRun(), 0.0)
    state.dirty.clear()
    transition(plan, state, ok("s7"), 1.0)
    assert state.dirty == {("s7", None)}
