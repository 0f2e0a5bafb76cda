"""What only the Temporal backend has to get right: closed runs read without workers,
deployments sharing a namespace that must not take each other's events, and cancels that do
not wait for a heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio.client import Client as TemporalClient

from conveyor.actions import ActionRegistry, StepStatus
from conveyor.backends.temporal.backend import NoWorkerError, TemporalBackend
from conveyor.backends.temporal.worker import WorkerOptions, build_workers, run_workers
from conveyor.client import Client
from conveyor.config import Settings
from conveyor.engine import RunStatus
from tests.integration.engine.actions import Journal
from tests.temporal.conftest import HEARTBEAT_SECONDS
from tests.temporal.scenario import WAIT, echo, eventually, pipeline, unique, until, waiting


@asynccontextmanager
async def workers(settings: Settings, registry: ActionRegistry) -> AsyncIterator[None]:
    """Every worker of `settings`' task-queue prefix, in this process, for the block."""
    client = await TemporalClient.connect(settings.temporal_address)
    built = build_workers(client, registry, settings, WorkerOptions(graceful_shutdown_seconds=1))
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(built, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


def deployment(settings: Settings) -> Settings:
    """The same server under another task-queue prefix: another deployment."""
    return settings.model_copy(
        update={"temporal_task_queue_prefix": f"test-{uuid.uuid4().hex[:12]}"}
    )


async def test_closed_runs_are_read_with_no_worker_running(
    temporal_settings: Settings,
    temporal_registry: ActionRegistry,
    temporal_client: Client,
) -> None:
    async with workers(temporal_settings, temporal_registry):
        done = await temporal_client.start(pipeline(echo(1, id="a"), outputs={"v": "{{ 2 }}"}))
        failed = await temporal_client.start(pipeline({"id": "bad", "action": "flaky"}))
        cancelled = await temporal_client.start(pipeline(waiting(unique("closed"))))
        await until(temporal_client, cancelled, lambda r: r.step("wait").status.value == "waiting")
        await temporal_client.cancel(cancelled, "stop")
        for run_id in (done, failed):
            await temporal_client.wait(run_id, timeout=WAIT)
    # No worker polls this prefix now: only the cluster can answer.
    run = await temporal_client.get(done)
    assert run.status is RunStatus.COMPLETED and run.outputs == {"v": 2}
    run = await temporal_client.get(failed)
    assert run.status is RunStatus.FAILED
    assert run.step("bad").error == "ValueError: boom on attempt 1"
    run = await temporal_client.get(cancelled)
    assert run.status is RunStatus.CANCELLED and run.error == "stop"
    assert (await temporal_client.wait(done, timeout=5)).status is RunStatus.COMPLETED


async def test_deployments_sharing_a_namespace_keep_their_events_apart(
    temporal_settings: Settings, temporal_registry: ActionRegistry
) -> None:
    cid = unique("deployments")
    first, second = temporal_settings, deployment(temporal_settings)
    async with (
        TemporalBackend(temporal_registry, first, heartbeat_seconds=HEARTBEAT_SECONDS) as old,
        TemporalBackend(temporal_registry, second, heartbeat_seconds=HEARTBEAT_SECONDS) as new,
    ):
        old_client, new_client = Client(old), Client(new)
        async with workers(first, temporal_registry):
            stale = await old_client.start(pipeline(waiting(cid)))
            await until(old_client, stale, lambda r: r.step("wait").status is StepStatus.WAITING)
        # The first deployment's workers are gone, its run still waits on the same id.
        async with workers(second, temporal_registry):
            run_id = await new_client.start(pipeline(waiting(cid)))
            await until(new_client, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
            await new_client.send_event({"workflow_id": cid, "status": "COMPLETED", "result": 1})
            run = await new_client.wait(run_id, timeout=WAIT)
        assert run.status is RunStatus.COMPLETED
        assert run.step("wait").outputs == {"started": True, "result": 1}


@pytest.mark.usefixtures("temporal_workers")
async def test_a_cancel_reaches_a_running_step_at_once_with_the_default_heartbeat(
    temporal_settings: Settings, temporal_registry: ActionRegistry, journal: Journal
) -> None:
    # The default heartbeat timeout (30 s) is for noticing a lost worker; it must not also
    # be how long a cancel takes to reach the running step.
    async with Client(TemporalBackend(temporal_registry, temporal_settings)) as client:
        run_id = await client.start(pipeline(echo(1, id="busy", params={"sleep": 60})))
        await eventually(lambda: journal.executions["busy"] == 1)
        started = time.monotonic()
        run = await client.cancel(run_id)
        took = time.monotonic() - started
    assert run.status is RunStatus.CANCELLED
    assert took < 6, f"the cancel took {took:.1f}s"
    await eventually(lambda: journal.cleanups == ["busy"])


@pytest.mark.usefixtures("temporal_workers")
async def test_a_kept_event_past_its_ttl_is_not_delivered(
    temporal_settings: Settings, temporal_registry: ActionRegistry, journal: Journal
) -> None:
    settings = temporal_settings.model_copy(update={"event_ttl_seconds": 4.0})
    cid = unique("ttl")
    async with Client(TemporalBackend(temporal_registry, settings)) as client:
        await client.send_event({"workflow_id": cid, "status": "COMPLETED"})
        await asyncio.sleep(1.5)
        # A second event wakes the mailbox while the first is still fresh.
        await client.send_event({"workflow_id": cid, "status": "SOMETHING"})
        await asyncio.sleep(2.7)
        run_id = await client.start(pipeline(waiting(cid)))
        await eventually(lambda: len(journal.events) == 1)
        run = await client.get(run_id)
        assert run.step("wait").status is StepStatus.WAITING
        assert journal.events[0]["data"]["status"] == "SOMETHING"
        await client.cancel(run_id)


async def test_a_waiting_run_survives_its_workers_and_replays_on_new_ones(
    temporal_settings: Settings, temporal_registry: ActionRegistry, temporal_client: Client
) -> None:
    cid = unique("replay")
    spec = pipeline(
        echo(["a", "b"], id="list"),
        {
            "id": "each",
            "action": "flaky",
            "depends_on": ["list"],
            "for_each": "{{ steps.list.outputs.value }}",
            "params": {"succeed_on": 2},
            "retry": {"max_attempts": 2, "initial_interval_seconds": 0.05},
        },
        {**waiting(cid), "depends_on": ["each"]},
        echo("{{ steps.wait.outputs.result }}", id="after", depends_on=["wait"]),
        outputs={"result": "{{ steps.after.outputs.value }}"},
    )
    async with workers(temporal_settings, temporal_registry):
        run_id = await temporal_client.start(spec)
        await until(temporal_client, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    # No worker runs now: the event is still stored, and the run's history is all that is left.
    await temporal_client.send_event({"workflow_id": cid, "status": "COMPLETED", "result": "ok"})
    async with workers(temporal_settings, temporal_registry):
        run = await temporal_client.wait(run_id, timeout=WAIT)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {"result": "ok"}
    each = run.step("each")
    assert each.items is not None and [i.attempt for i in each.items] == [2, 2]


async def test_reading_a_running_run_with_no_worker_names_the_problem(
    temporal_settings: Settings, temporal_registry: ActionRegistry
) -> None:
    backend = TemporalBackend(temporal_registry, temporal_settings, query_timeout_seconds=1)
    async with Client(backend) as client:
        run_id = await client.start(pipeline(echo(1, id="a")))
        started = time.monotonic()
        with pytest.raises(NoWorkerError) as raised:
            await client.get(run_id)
        assert time.monotonic() - started < 10
        queue = f"{temporal_settings.temporal_task_queue_prefix}-workflows"
        assert raised.value.run_id == run_id and raised.value.task_queue == queue
        assert "start one with `conveyor worker`" in str(raised.value)
        with pytest.raises(NoWorkerError):
            await backend.timeline(run_id)
        # Once a worker runs, the same run reads and finishes.
        async with workers(temporal_settings, temporal_registry):
            assert (await client.wait(run_id, timeout=WAIT)).status is RunStatus.COMPLETED
