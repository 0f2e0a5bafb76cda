"""A NOMAD-style action (hand-written workflow, two activities on the CPU queue) registered as a
Conveyor action and run on a real Temporal dev server through the NOMAD client functions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from conveyor.actions import ActionRegistry
from conveyor.backends.local import LocalBackend
from conveyor.client import ActionStatus, Client
from conveyor.errors import ParamValidationError, PipelineValidationError
from tests.temporal.nomad_example import greet_action

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


@pytest.fixture
def temporal_registry(temporal_registry: ActionRegistry) -> ActionRegistry:
    """The shared test actions plus the NOMAD-style one."""
    temporal_registry.add(greet_action)
    return temporal_registry


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Wait until `check()` is true, failing past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.1)


async def test_a_workflow_action_runs_to_its_result(
    temporal_client: Client, temporal_workers: object
) -> None:
    run_id = await temporal_client.start_action(
        "greet_workflow", {"name": "Ada", "repeat": 2, "pause_seconds": 2}
    )
    assert await temporal_client.get_action_status(run_id) is ActionStatus.RUNNING

    async def completed() -> bool:
        return await temporal_client.get_action_status(run_id) is ActionStatus.COMPLETED

    await eventually(completed)
    assert await temporal_client.get_action_result(run_id) == {
        "text": "HELLO ADA, HELLO ADA",
        "length": 20,
    }


async def test_stop_action_cancels_the_run_and_its_workflow(
    temporal_client: Client, temporal_workers: object, temporal_server: str
) -> None:
    run_id = await temporal_client.start_action(
        "greet_workflow", {"name": "Ada", "pause_seconds": 600}
    )
    temporal = await TemporalClient.connect(temporal_server)
    inner = temporal.get_workflow_handle(f"{run_id}.action.1")

    async def workflow_started() -> bool:
        try:
            await inner.describe()
        except RPCError:
            return False
        return True

    await eventually(workflow_started)
    assert await temporal_client.stop_action(run_id) is ActionStatus.CANCELED
    assert await temporal_client.get_action_status(run_id) is ActionStatus.CANCELED

    async def inner_cancelled() -> bool:
        described = await inner.describe()
        return described.status is WorkflowExecutionStatus.CANCELED

    await eventually(inner_cancelled)


async def test_bad_data_is_refused_naming_the_fields_before_anything_starts(
    temporal_client: Client,
) -> None:
    before = await temporal_client.list_action_runs()
    with pytest.raises(ParamValidationError) as raised:
        await temporal_client.start_action("greet_workflow", {"repeat": "many"})
    named = {problem.name for problem in raised.value.problems}
    assert named == {"name", "repeat"}
    assert "name: " in str(raised.value)
    after = await temporal_client.list_action_runs()
    assert after.runs == before.runs


async def test_an_unknown_id_is_unknown_and_a_terminated_run_is_terminated(
    temporal_client: Client, temporal_workers: object, temporal_server: str
) -> None:
    assert await temporal_client.get_action_status("conveyor-run-never") is ActionStatus.UNKNOWN
    assert await temporal_client.stop_action("conveyor-run-never") is ActionStatus.UNKNOWN
    # A run waiting on an event: terminated between activities, as an operator would.
    run_id = await temporal_client.start_action("hold", {"correlation_id": "never-sent"})

    async def waiting() -> bool:
        view = await temporal_client.get(run_id)
        return view.step("action").status.value == "waiting"

    await eventually(waiting)
    temporal = await TemporalClient.connect(temporal_server)
    await temporal.get_workflow_handle(run_id).terminate("operator said so")
    assert await temporal_client.get_action_status(run_id) is ActionStatus.TERMINATED


async def test_list_action_runs_pages_through_one_owners_actions(
    temporal_client: Client, temporal_workers: object
) -> None:
    started = [
        await temporal_client.start_action("greet_workflow", {"name": f"n{i}"}, owner="ada")
        for i in range(3)
    ]
    started_by_bob = await temporal_client.start_action(
        "greet_workflow", {"name": "x"}, owner="bob"
    )
    # Ended before the workers stop, so no run is cut off mid-activity at teardown.
    for run_id in (*started, started_by_bob):
        await temporal_client.wait(run_id, timeout=60)

    async def all_listed() -> bool:
        return len((await temporal_client.list_action_runs(owner="ada", page_size=10)).runs) == 3

    await eventually(all_listed)
    first = await temporal_client.list_action_runs(owner="ada", page_size=2)
    assert len(first.runs) == 2 and first.next_page_token is not None
    second = await temporal_client.list_action_runs(
        owner="ada", page_size=2, next_page_token=first.next_page_token
    )
    assert second.next_page_token is None
    seen = [a.run_id for a in (*first.runs, *second.runs)]
    assert sorted(seen) == sorted(started)
    assert {a.action for a in (*first.runs, *second.runs)} == {"greet_workflow"}
    assert {a.owner for a in (*first.runs, *second.runs)} == {"ada"}


async def test_the_embedded_engine_refuses_a_workflow_action(tmp_path: Path) -> None:
    registry = ActionRegistry([greet_action])
    backend = LocalBackend(db_path=tmp_path / "conveyor.db", registry=registry)
    async with Client(backend) as client:
        with pytest.raises(PipelineValidationError, match="runs only on the Temporal backend"):
            await client.start_action("greet_workflow", {"name": "Ada"})
        assert (await client.list_action_runs()).runs == []
