"""`event_resume`: from `send_event(...)` to the successor step's `execute()` starting.

Each run is `wait` (EVENT_DRIVEN, waiting on its own correlation id) then `after` (a no-op that
records `time.perf_counter()` as its first statement). All runs are waiting before the first
event is sent; events then go one at a time. The clock stops when the successor starts (the
bench awaits a future it resolves, not `wait()`, whose own reads would be timed too); the run
is then let finish before the next event.
"""

from __future__ import annotations

import asyncio
import time

from bench.actions import STARTED
from bench.harness import (
    Metric,
    Options,
    Workload,
    engine,
    median,
    percentile,
    pipeline,
    profiled,
    run_async,
    until_waiting,
)
from conveyor.engine import RunStatus

RUNS = 200
QUICK_RUNS = 50

SPEC = {
    "name": "event_resume",
    "parameters": [{"name": "correlation_id", "type": "string", "required": True}],
    "steps": [
        {
            "id": "wait",
            "action": "bench_wait",
            "params": {"correlation_id": "{{ params.correlation_id }}"},
        },
        {"id": "after", "action": "bench_mark", "depends_on": ["wait"]},
    ],
}


async def _measure(options: Options) -> dict[str, float]:
    spec = pipeline(SPEC)
    runs = QUICK_RUNS if options.quick else RUNS
    STARTED.clear()
    latencies: list[float] = []
    async with engine() as backend:
        # Warm-up: one whole run through the same path.
        warm_id = await backend.start_run(spec, {"correlation_id": "warm-up"})
        await until_waiting(backend, 1)
        await backend.send_event({"workflow_id": "warm-up", "type": "done"})
        warm = await backend.wait(warm_id)
        assert warm.status is RunStatus.COMPLETED, warm.error

        run_ids = [
            await backend.start_run(spec, {"correlation_id": f"resume-{i}"}) for i in range(runs)
        ]
        await until_waiting(backend, runs)
        loop = asyncio.get_running_loop()
        for i, run_id in enumerate(run_ids):
            body = {"workflow_id": f"resume-{i}", "type": "done"}
            started = STARTED[run_id] = loop.create_future()
            with profiled(options.profiler):
                sent = time.perf_counter()
                await backend.send_event(body)
                resumed = await started
            latencies.append((resumed - sent) * 1000)
            # Outside the measurement: let the run finish before the next event.
            view = await backend.wait(run_id)
            if view.status is not RunStatus.COMPLETED:
                raise RuntimeError(f"event_resume run ended {view.status.value}: {view.error}")
    options.notes.append(f"event_resume: {len(latencies)} events a repeat")
    return {"median": median(latencies), "p99": percentile(latencies, 99)}


def measure(options: Options) -> dict[str, float]:
    """Median and p99 over one batch of runs, each resumed by one event."""
    return run_async(_measure(options), options.timeout)


WORKLOAD = Workload(
    name="event_resume",
    description=f"send_event → successor execute() starts, {RUNS} runs a repeat",
    metrics=(
        Metric("median", "send_event → next execute(), median", "ms", target=2.0),
        Metric("p99", "send_event → next execute(), p99", "ms"),
    ),
    measure=measure,
    timeout=120.0,
)
