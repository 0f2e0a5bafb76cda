"""Conveyor on Temporal: the same pipelines through `TemporalBackend`, workers in this process.

The dev server is the one the bench started for this workload (the hand-written Temporal peer
uses the same one in the same run). Workers are Conveyor's own (`build_workers`), in this
process, so the marker action's start time is read from the same clock as the send.

`total` is taken as the hand-written peer takes it: from starting the workflow until its result
is available. `via_wait` is the same run through `TemporalBackend.wait`, which adds the query
that reads the run view.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.actions import STARTED, registry
from bench.event_resume import SPEC as EVENT_SPEC
from bench.harness import Metric, median, percentile, pipeline
from bench.par1000 import fan
from bench.seq100 import chain
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.backends.temporal.worker import build_workers, run_workers
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.pipeline.spec import PipelineSpec

Once = Callable[[TemporalBackend], Awaitable[dict[str, float]]]

TOTAL = Metric("total", "start → completed", "ms")
VIA_WAIT = Metric("via_wait", "start → backend.wait() returns", "ms")


async def _time(
    backend: TemporalBackend, spec: PipelineSpec, unit: float, via_wait: bool
) -> dict[str, float]:
    started = time.perf_counter()
    run_id = await backend.start_run(spec)
    await backend.client.get_workflow_handle(run_id).result()
    total = time.perf_counter() - started
    if not via_wait:
        return {"total": total * unit}
    started = time.perf_counter()
    run_id = await backend.start_run(spec)
    view = await backend.wait(run_id, timeout=600)
    waited = time.perf_counter() - started
    if view.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"run ended {view.status.value}: {view.error}")
    return {"total": total * unit, "via_wait": waited * unit}


def _timed(document: dict[str, object], unit: float, via_wait: bool = True) -> Once:
    spec = pipeline(document)

    async def once(backend: TemporalBackend) -> dict[str, float]:
        return await _time(backend, spec, unit, via_wait)

    return once


async def _until_waiting(backend: TemporalBackend, run_id: str) -> None:
    while True:
        view = await backend.get(run_id)
        if any(step.status.value == "waiting" for step in view.steps):
            return
        await asyncio.sleep(0.02)


def _event_resume(runs: int) -> Once:
    spec = pipeline(EVENT_SPEC)

    async def once(backend: TemporalBackend) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        tag = uuid.uuid4().hex[:8]
        run_ids = [
            await backend.start_run(spec, {"correlation_id": f"{tag}-{i}"}) for i in range(runs)
        ]
        for run_id in run_ids:
            await _until_waiting(backend, run_id)
        await asyncio.sleep(0.5)  # The subscriptions to the mailboxes follow the waits.
        latencies: list[float] = []
        for i, run_id in enumerate(run_ids):
            started = STARTED[run_id] = loop.create_future()
            sent = time.perf_counter()
            await backend.send_event({"workflow_id": f"{tag}-{i}", "type": "done"})
            resumed = await started
            latencies.append((resumed - sent) * 1000)
            view = await backend.wait(run_id, timeout=60)
            if view.status is not RunStatus.COMPLETED:
                raise RuntimeError(f"run ended {view.status.value}: {view.error}")
        return {"median": median(latencies), "p99": percentile(latencies, 99)}

    return once


METRICS: dict[str, tuple[Metric, ...]] = {
    "seq100": (TOTAL, VIA_WAIT),
    "par100": (TOTAL, VIA_WAIT),
    "par1000": (Metric("total", "start → completed", "s"),),
    "event_resume": (
        Metric("median", "send_event → next execute(), median", "ms"),
        Metric("p99", "send_event → next execute(), p99", "ms"),
    ),
}


def plan(name: str, quick: bool) -> Once | None:
    """What one repeat of workload `name` does on Temporal, or None if it is not measured."""
    plans: dict[str, Callable[[], Once]] = {
        "seq100": lambda: _timed(chain(), 1000),
        "par100": lambda: _timed(fan(100), 1000),
        "par1000": lambda: _timed(fan(), 1, via_wait=False),
        # Each event costs several workflow round trips here: 50 keep it within the bound.
        "event_resume": lambda: _event_resume(20 if quick else 50),
    }
    maker = plans.get(name)
    return maker() if maker else None


NOT_MEASURED = (
    "not measured on Temporal: each waiting run is a run workflow, a subscription (a local "
    "activity) and a mailbox workflow, so 10,000 runs are 20,000 workflows; the hand-written "
    "peer's 10,000 took about 6 minutes to start here, so these would take over 10, past the "
    "bench's bound"
)


async def measure(name: str, address: str, repeat: int, quick: bool) -> dict[str, list[float]]:
    """Run `repeat` repeats of workload `name` on the dev server at `address`."""
    once = plan(name, quick)
    if once is None:
        raise LookupError(name)
    settings = Settings(
        backend="temporal",
        temporal_address=address,
        temporal_task_queue_prefix=f"bench-{uuid.uuid4().hex[:8]}",
    )
    actions = registry()
    samples: dict[str, list[float]] = {}
    async with TemporalBackend(actions, settings) as backend:
        stop = asyncio.Event()
        workers = asyncio.create_task(
            run_workers(build_workers(backend.client, actions, settings), stop)
        )
        try:
            if name != "event_resume":
                await once(backend)  # Warm-up: the workers' first tasks, the sandbox.
            for index in range(repeat):
                values = await once(backend)
                for key, value in values.items():
                    samples.setdefault(key, []).append(value)
                shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                print(f"  conveyor-temporal {name} {index + 1}/{repeat}: {shown}", flush=True)
        finally:
            stop.set()
            await workers
    return samples


def run(name: str, address: str, repeat: int, quick: bool, timeout: float) -> dict[str, Any]:
    """`measure` on a fresh event loop, bounded by `timeout` seconds."""

    async def bounded() -> dict[str, list[float]]:
        async with asyncio.timeout(timeout):
            return await measure(name, address, repeat, quick)

    return asyncio.run(bounded())
