"""Where a sequential step's time goes on Temporal: `python -m bench.temporal_profile [--fan]`.

Runs the 100-step chain four ways on one dev server:

- Conveyor on Temporal as it is (actions on their queue's task queue, apart from the workflows);
- Conveyor with its actions on the workflow's own task queue (the placement proposed to close
  the gap; the backend is not changed, see `conveyor_one_queue`);
- the hand-written workflow with its activities on the workflow's task queue, where the SDK
  starts them eagerly, in the round trip that completes the workflow task;
- the hand-written workflow with its activities on a task queue of their own.

It splits each step from the workflow's history: schedule → activity started, started →
completed, completed → next workflow task started, that task's run; and the history's size.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections import defaultdict
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from bench.actions import registry
from bench.harness import pipeline
from bench.par1000 import fan
from bench.peer_envs import SCRIPTS
from bench.seq100 import chain
from bench.temporal_server import dev_server
from conveyor.backends.temporal import names
from conveyor.backends.temporal.activities import ConveyorActivities
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.backends.temporal.worker import _RUNNER as RUNNER
from conveyor.backends.temporal.worker import build_workers, run_workers
from conveyor.backends.temporal.workflows import MailboxWorkflow, RunWorkflow
from conveyor.config import Settings

STEPS = 100
FAN = "--fan" in sys.argv[1:]
"""`--fan`: the 100 steps in parallel (par100) instead of in a chain."""


def document() -> dict[str, object]:
    """The pipeline measured: the chain, or with `--fan` the fan."""
    return fan(STEPS) if FAN else chain(STEPS)


def phases(history: WorkflowHistory) -> dict[str, float]:
    """Mean milliseconds per step of each phase, from the history's event times."""
    times: dict[str, list[float]] = defaultdict(list)
    last: dict[int, float] = {}
    scheduled_at = started_at = completed_at = task_scheduled = None
    for event in history.events:
        at = event.event_time.ToMicroseconds() / 1000
        kind = event.event_type
        last[kind] = at
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled_at = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED and scheduled_at is not None:
            times["scheduled → activity started"].append(at - scheduled_at)
            started_at = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and started_at is not None:
            times["activity started → completed"].append(at - started_at)
            completed_at = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            task_scheduled = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and completed_at is not None:
            times["activity completed → workflow task started"].append(at - completed_at)
            if task_scheduled is not None:
                times["… of which queued for a workflow worker"].append(at - task_scheduled)
            started_at_task = at
            last[-1] = started_at_task
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and -1 in last:
            times["workflow task started → completed"].append(at - last[-1])
    figures = {name: statistics.fmean(values) for name, values in times.items() if values}
    figures["history events"] = float(len(history.events))
    figures["history bytes"] = float(sum(event.ByteSize() for event in history.events))
    return figures


async def conveyor(client: Client, address: str) -> WorkflowHistory:
    settings = Settings(
        backend="temporal",
        temporal_address=address,
        temporal_task_queue_prefix=f"profile-{uuid.uuid4().hex[:8]}",
    )
    actions = registry()
    backend = TemporalBackend(actions, settings, client=client)
    stop = asyncio.Event()
    workers = asyncio.create_task(run_workers(build_workers(client, actions, settings), stop))
    try:
        spec = pipeline(document())
        await backend.wait(await backend.start_run(spec))  # Warm-up.
        started = time.perf_counter()
        run_id = await backend.start_run(spec)
        await client.get_workflow_handle(run_id).result()
        print(f"conveyor on temporal: {time.perf_counter() - started:.2f} s", flush=True)
        return await client.get_workflow_handle(run_id).fetch_history()
    finally:
        stop.set()
        await workers


async def conveyor_one_queue(client: Client) -> WorkflowHistory:
    """The proposed placement: the actions' activities on the workflow's own task queue.

    Done here without touching the backend: `names.activity_queue` is pointed at the workflow
    queue for this measurement only, and one worker serves the workflows and the activities, so
    the SDK can start each activity eagerly.
    """
    settings = Settings(
        backend="temporal", temporal_task_queue_prefix=f"profile-{uuid.uuid4().hex[:8]}"
    )
    actions = registry()
    prefix = settings.temporal_task_queue_prefix
    original = names.activity_queue
    names.activity_queue = lambda prefix, queue: names.workflow_queue(prefix)
    acts = ConveyorActivities(actions, settings, client)
    worker = Worker(
        client,
        task_queue=names.workflow_queue(prefix),
        workflows=[RunWorkflow, MailboxWorkflow],
        activities=[acts.subscribe, *acts.for_queue()],
        workflow_runner=RUNNER,  # The one `build_workers` uses.
    )
    backend = TemporalBackend(actions, settings, client=client)
    try:
        async with worker:
            spec = pipeline(document())
            await backend.wait(await backend.start_run(spec))  # Warm-up.
            started = time.perf_counter()
            run_id = await backend.start_run(spec)
            await client.get_workflow_handle(run_id).result()
            elapsed = time.perf_counter() - started
            print(f"conveyor on temporal, one task queue: {elapsed:.2f} s", flush=True)
            return await client.get_workflow_handle(run_id).fetch_history()
    finally:
        names.activity_queue = original


async def hand_written(client: Client, separate_queue: bool) -> WorkflowHistory:
    sys.path.insert(0, str(SCRIPTS))
    from temporal_flows import Parallel, Sequential, noop  # type: ignore[import-not-found]

    shape = Parallel if FAN else Sequential

    queue = f"profile-{uuid.uuid4().hex[:8]}"
    activity_queue = f"{queue}-activities" if separate_queue else queue
    workers = [Worker(client, task_queue=queue, workflows=[shape], activities=[noop])]
    if separate_queue:
        workers.append(Worker(client, task_queue=activity_queue, activities=[noop]))
    started = 0.0
    for worker in workers:
        await worker.__aenter__()
    try:
        for _ in range(2):  # A warm-up, then the one measured.
            started = time.perf_counter()
            handle = await client.start_workflow(
                shape.run,
                args=[STEPS, activity_queue] if separate_queue else [STEPS],
                id=uuid.uuid4().hex,
                task_queue=queue,
            )
            await handle.result()
        label = (
            "activities on a queue of their own" if separate_queue else "activities on its queue"
        )
        print(f"hand-written, {label}: {time.perf_counter() - started:.2f} s", flush=True)
        history: WorkflowHistory = await handle.fetch_history()
        return history
    finally:
        for worker in reversed(workers):
            await worker.__aexit__(None, None, None)


async def main() -> None:
    with dev_server() as server:
        client = await Client.connect(server.address)
        results: dict[str, dict[str, float]] = {}
        results["Conveyor"] = phases(await conveyor(client, server.address))
        results["Conveyor, one queue"] = phases(await conveyor_one_queue(client))
        results["hand, one queue"] = phases(await hand_written(client, False))
        results["hand, two queues"] = phases(await hand_written(client, True))
    names: list[str] = []
    for figures in results.values():
        names += [name for name in figures if name not in names]
    print(f"{'ms per step (mean)':45}" + "".join(f"{k:>19} " for k in results))
    for name in names:
        cells: list[Any] = [results[k].get(name, float("nan")) for k in results]
        print(f"{name:45}" + "".join(f"{v:19.1f} " for v in cells))


if __name__ == "__main__":
    asyncio.run(main())
