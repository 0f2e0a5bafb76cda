"""Fan-outs that wait between commits, and values JSON cannot hold exactly, on every backend.

Each case was once a difference between the backends: a `for_each` over a durable delay that
stopped partway on the embedded engine once the run was read back, and template values
(iterators, tuples, `inf`, 65-bit integers) that one backend kept and the other changed.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import StepStatus
from conveyor.client import Client
from conveyor.engine import RunStatus
from tests.temporal.scenario import FAST_RETRY, echo, pipeline, run_to_end


@pytest.mark.parametrize("max_parallel", [1, 2])
async def test_a_for_each_of_delays_runs_every_item(conveyor: Client, max_parallel: int) -> None:
    spec = pipeline(
        {
            "id": "pause",
            "action": "delay",
            "for_each": [0.1, 0.1, 0.1],
            "max_parallel": max_parallel,
            "params": {"seconds": "{{ item }}"},
        },
        echo("after", id="after", depends_on=["pause"]),
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED, run.error
    pause = run.step("pause")
    assert pause.items is not None
    assert [item.status for item in pause.items] == [StepStatus.COMPLETED] * 3
    assert pause.outputs == [{"delayed_seconds": 0.1}] * 3
    assert run.step("after").status is StepStatus.COMPLETED


async def test_a_for_each_whose_items_fail_and_retry_still_runs_every_item(
    conveyor: Client,
) -> None:
    spec = pipeline(
        {
            "id": "try",
            "action": "flaky",
            "for_each": [1, 2, 3],
            "max_parallel": 1,
            "on_failure": "continue",
            "retry": FAST_RETRY,
            "params": {"succeed_on": "{{ 2 if item == 2 else 0 }}"},
        },
        {
            "id": "pause",
            "action": "delay",
            "for_each": [0.05, 0.05],
            "max_parallel": 1,
            "depends_on": ["try"],
            "params": {"seconds": "{{ item }}"},
        },
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED, run.error
    tried = run.step("try")
    assert tried.items is not None
    assert [(i.status, i.attempt) for i in tried.items] == [
        (StepStatus.FAILED, 3),
        (StepStatus.COMPLETED, 2),
        (StepStatus.FAILED, 3),
    ]
    assert tried.outputs == [None, {"attempt": 2}, None]
    assert run.step("pause").status is StepStatus.COMPLETED


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ [3, 1, 3, 2] | unique }}", [3, 1, 2]),
        ("{{ [1, 2, 3] | reverse }}", [3, 2, 1]),
        ("{{ [1, 2, 3, 4] | select('odd') }}", [1, 3]),
        ("{{ [1, 2, 3] | map('string') }}", ["1", "2", "3"]),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{ {'k': (1, (2, 3))} }}", {"k": [1, [2, 3]]}),
        (
            "{{ {1: 'one', none: 'nothing', 1.5: 'half'} }}",
            {"1": "one", "null": "nothing", "1.5": "half"},
        ),
        ("{{ 2 ** 63 - 1 }}", 2**63 - 1),
    ],
)
async def test_rendered_values_are_stored_and_passed_on_as_json(
    conveyor: Client, template: str, expected: Any
) -> None:
    spec = pipeline(
        echo(template, id="make"),
        echo("{{ steps.make.outputs.value }}", id="use", depends_on=["make"]),
        outputs={"value": "{{ steps.use.outputs.value }}"},
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.step("make").params == {"value": expected}
    assert run.step("make").outputs["value"] == expected
    assert run.step("use").params == {"value": expected}
    assert run.step("use").outputs["value"] == expected
    assert run.outputs == {"value": expected}


async def test_a_for_each_over_an_iterator_runs_its_items(conveyor: Client) -> None:
    spec = pipeline(
        {
            "id": "each",
            "action": "echo",
            "for_each": "{{ [1, 2, 3, 4] | select('even') }}",
            "params": {"value": "{{ item * 10 }}"},
        },
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED, run.error
    assert [item["value"] for item in run.step("each").outputs] == [20, 40]


UNSTORABLE = [
    ("{{ 2 ** 64 }}", "params.value: the integer 18446744073709551616 is outside the 64-bit"),
    ("{{ -(2 ** 63) - 1 }}", "params.value: the integer -9223372036854775809 is outside"),
    ("{{ 10 ** 400 }}", "params.value: the integer 10000000000000000000...0000000000 (401 digits)"),
    ("{{ params.big * 10 }}", "params.value: inf is not a number a run can store"),
    ("{{ [1, params.big * -10] }}", "params.value[1]: -inf is not a number a run can store"),
    ("{{ {'x': params.big * 10 - params.big * 10} }}", "params.value.x: nan is not a number"),
    ("{{ 1e308 * 10 }}", "params.value: inf is not a number a run can store"),
    ("{{ [1, params.big.nope] | unique }}", "params.value: the template failed while its result"),
    ("{{ {1: 'a', '1': 'b'} }}", "params.value: two keys are both '1' once stored as text"),
]


@pytest.mark.parametrize(("template", "message"), UNSTORABLE)
@pytest.mark.parametrize("position", ["first", "later"])
async def test_a_value_a_run_cannot_store_fails_its_step_by_name(
    conveyor: Client, template: str, message: str, position: str
) -> None:
    steps: list[dict[str, Any]] = []
    if position == "later":
        steps.append(echo("fine", id="before"))
    steps.append(
        echo(template, id="bad", depends_on=["before"] if position == "later" else []),
    )
    steps.append(echo("never", id="after", depends_on=["bad"]))
    spec = pipeline(*steps, parameters=[{"name": "big", "type": "number", "default": 1e308}])
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("step 'bad' failed: ")
    assert message in run.error
    bad = run.step("bad")
    assert bad.status is StepStatus.FAILED
    assert bad.attempt == 0
    assert run.step("after").status is StepStatus.SKIPPED
    if position == "later":
        assert run.step("before").status is StepStatus.COMPLETED


async def test_a_run_output_a_run_cannot_store_fails_the_run(conveyor: Client) -> None:
    spec = pipeline(echo(1e308, id="a"), outputs={"o": "{{ steps.a.outputs.value * 10 }}"})
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.FAILED
    assert run.error == "outputs.o: inf is not a number a run can store (only finite numbers are)"
    assert run.step("a").status is StepStatus.COMPLETED


async def test_a_condition_over_an_empty_iterator_is_false(conveyor: Client) -> None:
    spec = pipeline(
        echo("x", id="a", condition="{{ [1, 3] | select('even') }}"),
        echo("y", id="b", condition="{{ [1, 2] | select('even') }}"),
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.step("a").status is StepStatus.SKIPPED
    assert run.step("b").status is StepStatus.COMPLETED
