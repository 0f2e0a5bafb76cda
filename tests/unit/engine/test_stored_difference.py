"""`stored_difference`: what a run held in memory has that its stored copy has not."""

from __future__ import annotations

from conveyor.actions import StepStatus
from conveyor.engine import RunState, StepState, UnitState, stored_difference


def _run() -> RunState:
    state = RunState(run_id="r", pipeline_name="p", params={"n": 1})
    step = StepState(step_id="each", status=StepStatus.RUNNING, next_item=1)
    step.items = [UnitState(step_id="each", index=i, item=i) for i in range(3)]
    state.steps["each"] = step
    state.recount()
    return state


def test_the_same_run_has_no_difference() -> None:
    assert stored_difference(_run(), _run()) is None


def test_a_field_changed_in_memory_only_is_named() -> None:
    held = _run()
    held.steps["each"].next_item = 2
    assert stored_difference(held, _run()) == "unit 'each' next_item 2 (stored: 1)"


def test_an_item_value_of_another_json_kind_is_a_difference() -> None:
    held, stored = _run(), _run()
    assert held.steps["each"].items is not None
    assert stored.steps["each"].items is not None
    held.steps["each"].items[2].outputs = {"t": (1, 2)}
    stored.steps["each"].items[2].outputs = {"t": [1, 2]}
    assert (
        stored_difference(held, stored)
        == "unit 'each[2]' outputs {'t': (1, 2)} (stored: {'t': [1, 2]})"
    )


def test_run_fields_and_the_queue_are_compared() -> None:
    held = _run()
    held.error = "boom"
    assert stored_difference(held, _run()) == "run error 'boom' (stored: None)"
    held = _run()
    held.queue.append(("each", 0))
    assert stored_difference(held, _run()) == "queue [('each', 0)] (stored: [])"
