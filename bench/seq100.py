"""`seq100`: 100 no-op steps in a chain, from `start_run` to the run completed.

`seq100_full` is the same with SQLite's `synchronous=FULL` (an fsync a commit; see
docs/limits.md), beside the default NORMAL, so the cost of durability against power loss
is measured rather than guessed.
"""

from __future__ import annotations

import time
from functools import partial

from bench.harness import Metric, Options, Workload, engine, pipeline, profiled, run_async
from conveyor.backends.local.store import Synchronous
from conveyor.engine import RunStatus

STEPS = 100


def chain(steps: int = STEPS) -> dict[str, object]:
    """A pipeline of `steps` no-op steps, each depending on the one before."""
    return {
        "name": f"seq{steps}",
        "steps": [
            {
                "id": f"s{i}",
                "action": "bench_noop",
                "depends_on": [f"s{i - 1}"] if i else [],
            }
            for i in range(steps)
        ],
    }


async def _measure(options: Options, synchronous: Synchronous) -> dict[str, float]:
    spec = pipeline(chain())
    async with engine(synchronous) as backend:
        # Warm-up: imports, plan compile, SQLite statement cache.
        warm = await backend.wait(await backend.start_run(spec))
        assert warm.status is RunStatus.COMPLETED, warm.error
        with profiled(options.profiler):
            started = time.perf_counter()
            run_id = await backend.start_run(spec)
            view = await backend.wait(run_id)
            elapsed = time.perf_counter() - started
    if view.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"seq100 run ended {view.status.value}: {view.error}")
    return {"total": elapsed * 1000}


def measure(options: Options, synchronous: Synchronous = "NORMAL") -> dict[str, float]:
    """Time one run of the chain (after one warm-up run on the same engine)."""
    return run_async(_measure(options, synchronous), options.timeout)


WORKLOAD = Workload(
    name="seq100",
    description="100 sequential no-op steps: start_run → run completed",
    metrics=(Metric("total", "start_run → completed", "ms", target=30.0),),
    measure=measure,
    timeout=60.0,
)

WORKLOAD_FULL = Workload(
    name="seq100_full",
    description="seq100 with SQLite synchronous=FULL (an fsync a commit)",
    metrics=(Metric("total", "start_run → completed, synchronous=FULL", "ms"),),
    measure=partial(measure, synchronous="FULL"),
    timeout=60.0,
    compared=False,
)
