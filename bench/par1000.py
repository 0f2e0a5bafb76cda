"""`par1000` / `par100`: independent no-op steps with `max_parallel_steps` equal to their count."""

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


async def _measure(options: Options, steps: int, unit: float) -> dict[str, float]:
    spec = pipeline(fan(steps))
    async with engine() as backend:
        warm = await backend.wait(await backend.start_run(spec))
        assert warm.status is RunStatus.COMPLETED, warm.error
        with profiled(options.profiler):
            started = time.perf_counter()
            run_id = await backend.start_run(spec)
            view = await backend.wait(run_id)
            elapsed = time.perf_counter() - started
    if view.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"par{steps} run ended {view.status.value}: {view.error}")
    capacity = backend.settings.queue_capacity("default")
    options.notes.append(
        f"par{steps}: default settings, so the default queue's capacity ({capacity} at once in "
        "a process) bounds concurrency as well as max_parallel_steps"
    )
    return {"total": elapsed * unit}


def _workload(steps: int, unit: str, target: float | None, timeout: float) -> Workload:
    scale = 1000.0 if unit == "ms" else 1.0

    def measure(options: Options) -> dict[str, float]:
        """Time one run of the fan (after one warm-up run on the same engine)."""
        return run_async(_measure(options, steps, scale), options.timeout)

    return Workload(
        name=f"par{steps}",
        description=f"{steps:,} independent no-op steps, max_parallel_steps {steps}: "
        "start_run → completed",
        metrics=(Metric("total", "start_run → completed", unit, target=target),),
        measure=measure,
        timeout=timeout,
    )


WORKLOAD = _workload(STEPS, "s", 0.5, 120.0)
PAR100 = _workload(100, "ms", None, 60.0)
