"""The client API on both backends: errors for bad input and unknown runs, idempotency keys,
single actions, queues, outputs, listing.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.client import Client
from conveyor.engine import RunStatus
from conveyor.errors import ParamValidationError, PipelineValidationError, RunNotFoundError
from tests.integration.engine.actions import Journal
from tests.temporal.scenario import WAIT, echo, pipeline, run_to_end, unique, waiting


@pytest.mark.parametrize("call", ["get", "wait", "cancel"])
async def test_an_unknown_run_is_not_found(conveyor: Client, call: str) -> None:
    unknown = "conveyor-run-" + "0" * 32
    calls = {
        "get": lambda: conveyor.get(unknown),
        "wait": lambda: conveyor.wait(unknown, timeout=5),
        "cancel": lambda: conveyor.cancel(unknown),
    }
    with pytest.raises(RunNotFoundError):
        await calls[call]()


async def test_waiting_past_the_timeout_raises(conveyor: Client) -> None:
    run_id = await conveyor.start(pipeline(waiting(unique("slow"))))
    with pytest.raises(TimeoutError):
        await conveyor.wait(run_id, timeout=0.5)
    assert not (await conveyor.get(run_id)).status.is_terminal
    await conveyor.cancel(run_id)


async def test_a_bad_pipeline_is_refused_with_every_error_and_starts_nothing(
    conveyor: Client,
) -> None:
    spec = pipeline(
        {"id": "a", "action": "nope"},
        echo(1, id="b", depends_on=["missing"], params={"count": 50}),
    )
    with pytest.raises(PipelineValidationError) as raised:
        await conveyor.start(spec)
    text = str(raised.value)
    assert "steps[0].action" in text
    assert "steps[1].depends_on" in text
    assert "steps[1].params.count" in text


async def test_bad_params_are_refused_by_name(conveyor: Client) -> None:
    spec = pipeline(
        echo("{{ params.size }}", id="a"),
        parameters=[{"name": "size", "type": "number", "required": True}],
    )
    with pytest.raises(ParamValidationError, match="size"):
        await conveyor.start(spec, {"size": "big"})
    with pytest.raises(ParamValidationError, match="size"):
        await conveyor.start(spec, {})


async def test_an_idempotency_key_returns_the_first_run(conveyor: Client) -> None:
    spec = pipeline(echo(1, id="a"))
    key = unique("order")
    first = await conveyor.start(spec, idempotency_key=key)
    await conveyor.wait(first, timeout=WAIT)
    again = await conveyor.start(spec, idempotency_key=key)
    assert again == first
    assert (await conveyor.get(first)).idempotency_key == key


async def test_single_actions_run_through_the_client(conveyor: Client) -> None:
    run = await conveyor.run_action("echo", {"value": {"k": [1, 2]}}, timeout=WAIT)
    assert run.kind == "action" and run.status is RunStatus.COMPLETED
    run_id = await conveyor.start_action("echo", {"value": "{{ not a template }}"})
    await conveyor.wait(run_id, timeout=WAIT)
    assert (await conveyor.get_action_status(run_id)).value == "COMPLETED"
    result = await conveyor.get_action_result(run_id)
    assert result["value"] == "{{ not a template }}"


async def test_invalid_params_after_rendering_fail_the_step_by_name(conveyor: Client) -> None:
    spec = pipeline(
        echo(50, id="a"),
        echo(1, id="b", depends_on=["a"], params={"count": "{{ steps.a.outputs.value }}"}),
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.FAILED
    assert run.step("b").error == "invalid params: count: must be <= 10, got 50"


async def test_outputs_that_fail_to_render_fail_the_run(conveyor: Client) -> None:
    spec = pipeline(echo("x", id="a"), outputs={"x": "{{ steps.a.outputs.value + 1 }}"})
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.startswith("outputs:")


async def test_a_queue_of_capacity_one_runs_its_steps_one_at_a_time(
    conveyor: Client, journal: Journal
) -> None:
    spec = pipeline(
        *(
            {"id": f"g{i}", "action": "gpu_echo", "params": {"sleep": 0.3, "queue_name": "gpu"}}
            for i in range(3)
        ),
        echo(1, id="cpu", params={"sleep": 0.3}),
    )
    started = time.monotonic()
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED
    assert journal.max_by_queue["gpu"] == 1
    assert time.monotonic() - started >= 0.89


async def test_runs_are_listed_by_status_and_pipeline(conveyor: Client) -> None:
    name = unique("listed")
    done = await conveyor.start(pipeline(echo(1, id="a"), name=name))
    await conveyor.wait(done, timeout=WAIT)
    held = await conveyor.start(pipeline(waiting(unique("listed")), name=name))
    deadline = time.monotonic() + WAIT
    # Temporal's visibility store lags a little behind the runs themselves.
    while True:
        completed = await conveyor.list_runs(pipeline=name, status=["completed"])
        running = await conveyor.list_runs(pipeline=name, status=["running"])
        if [r.run_id for r in completed] == [done] and [r.run_id for r in running] == [held]:
            break
        assert time.monotonic() < deadline, (completed, running)
        await asyncio.sleep(0.2)
    await conveyor.cancel(held)
