"""`par1000`: 1,000 independent no-op steps with `max_parallel_steps: 1000`."""

from __future__ import annotations

import time

from bench.harness import Metric, Options, Workload, engine, pipeline, profiled, run_async
from conveyor.engine import RunStatus

STEPS = 1000


def fan(steps: int = STEPS) -> dict[str, object]:
    """A pipeline of `steps` no-op steps with no dependencies, all allowed to run at once."""
    return {
        "name": f"par{steps}",
        "settings": {"max_parallel_steps": steps},
        "steps": [{"id": f"s{i}", "action": "bench_noop"} for i in range(steps)],
    }


async def _measure(options: Options) -> dict[str, float]:
    spec = pipeline(fan())
    async with engine() as backend:
        warm = await backend.wait(await backend.start_run(spec))
        assert warm.status is RunStatus.COMPLETED, warm.error
        with profiled(options.profiler):
            started = time.perf_counter()
            run_id = await backend.start_run(spec)
            view = await backend.wait(run_id)
            elapsed = time.perf_counter() - started
    if view.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"par1000 run ended {view.status.value}: {view.error}")
    capacity = backend.settings.queue_capacity("default")
    options.notes.append(
        f"par1000: default settings, so the default queue's capacity ({capacity} at once in "
        "a process) bounds concurrency as well as max_parallel_steps"
    )
    return {"total": elapsed}


def measure(options: Options) -> dict[str, float]:
    """Time one run of the fan (after one warm-up run on the same engine)."""
    return run_async(_measure(options), options.timeout)


WORKLOAD = Workload(
    name="par1000",
    description="1,000 independent no-op steps, max_parallel_steps 1000: start_run → completed",
    metrics=(Metric("total", "start_run → completed", "s", target=0.5),),
    measure=measure,
    timeout=120.0,
)
