"""DBOS Transact on a SQLite system database: the same workloads as Conveyor embedded.

Run by the bench with DBOS's own virtualenv: `python dbos_sqlite.py --workload NAME ...`.
Steps are `@DBOS.step` no-ops inside one `@DBOS.workflow`; parallel steps are gathered in an
async workflow; an external event is `DBOS.send` to a workflow blocked in `DBOS.recv`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, not_offered, now, parser, percentile, repeat, rss_mb
from dbos import DBOS, DBOSConfig

MARKED: dict[str, asyncio.Future[float]] = {}


@DBOS.step()
async def noop() -> None:
    """Does nothing."""


@DBOS.step()
async def mark() -> None:
    """Records when it starts, for the workflow that is waiting on it."""
    started = now()
    future = MARKED.pop(DBOS.workflow_id or "", None)
    if future is not None and not future.done():
        future.get_loop().call_soon_threadsafe(_resolve, future, started)


def _resolve(future: asyncio.Future[float], value: float) -> None:
    if not future.done():
        future.set_result(value)


@DBOS.workflow()
async def sequential(steps: int) -> None:
    """`steps` no-op steps one after the other."""
    for _ in range(steps):
        await noop()


@DBOS.workflow()
async def parallel(steps: int) -> None:
    """`steps` no-op steps at once."""
    await asyncio.gather(*(noop() for _ in range(steps)))


@DBOS.workflow()
async def waiter(then_mark: bool) -> None:
    """Wait for one message on topic `done`, then (optionally) run the marker step."""
    await DBOS.recv_async("done", timeout_seconds=3600)
    if then_mark:
        await mark()


async def timed(workflow: Any, *args: Any) -> float:
    started = now()
    handle = await DBOS.start_workflow_async(workflow, *args)
    await handle.get_result()
    return now() - started


async def until_waiting(count: int) -> None:
    """Until `count` waiter workflows are blocked in recv (their recv has been recorded)."""
    while True:
        listed = await DBOS.list_workflows_async(status="PENDING", name=waiter.__qualname__)
        if len(listed) >= count:
            # Started is not blocked: give the last ones a moment to reach recv.
            await asyncio.sleep(0.2)
            return
        await asyncio.sleep(0.05)


async def seq(runs: int) -> dict[str, float]:
    await timed(sequential, 100)  # Warm-up.
    return {"total": await timed(sequential, 100) * 1000}


async def par(steps: int, unit: float) -> dict[str, float]:
    await timed(parallel, steps)
    return {"total": await timed(parallel, steps) * unit}


async def event_resume(runs: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    handles = [await DBOS.start_workflow_async(waiter, True) for _ in range(runs + 1)]
    await until_waiting(runs + 1)
    latencies: list[float] = []
    for index, handle in enumerate(handles):
        future = MARKED[handle.workflow_id] = loop.create_future()
        sent = now()
        await DBOS.send_async(handle.workflow_id, "go", topic="done")
        resumed = await future
        await handle.get_result()
        if index:  # The first is the warm-up.
            latencies.append((resumed - sent) * 1000)
    return {"median": percentile(latencies, 50), "p99": percentile(latencies, 99)}


async def waiting(runs: int, events: int) -> dict[str, float]:
    baseline = rss_mb()
    started = now()
    handles = [await DBOS.start_workflow_async(waiter, False) for _ in range(runs)]
    await until_waiting(runs)
    start_seconds = now() - started
    rss = rss_mb()
    chosen = random.Random(20240601).sample(handles, min(events, runs))
    latencies: list[float] = []
    for handle in chosen:
        sent = now()
        await DBOS.send_async(handle.workflow_id, "go", topic="done")
        await handle.get_result()
        latencies.append((now() - sent) * 1000)
    return {
        "rss": rss,
        "rss_baseline": baseline,
        "start_seconds": start_seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def main() -> None:
    args = parser("dbos_sqlite").parse_args()
    name = args.workload
    plans: dict[str, Any] = {
        "seq100": lambda: seq(100),
        "par100": lambda: par(100, 1000),
        "par1000": lambda: par(1000, 1),
        # recv finds a message by polling its table about once a second, so these take
        # about a second per event: fewer events keep them within the bench's time bound.
        "event_resume": lambda: event_resume(10 if args.quick else 20),
        "waiting10k": lambda: waiting(10_000, 20),
    }
    if name == "waiting100k" and not args.quick:
        emit(
            not_offered(
                "not measured: 10,000 waiting workflows took 150-230 s to start here (45-65 "
                "a second with 2 cores), so 100,000 would take 25 minutes or "
                "more, past the bench's bound; waiting10k is the measured size"
            )
        )
        return
    plans["waiting100k"] = lambda: waiting(10_000, 20)
    if name not in plans:
        emit(not_offered(f"no DBOS version of {name}"))
        return

    def once() -> dict[str, float]:
        # A fresh SQLite system database each repeat, as Conveyor gets a fresh file.
        database = args.workdir / f"dbos-{uuid.uuid4().hex}.sqlite"
        config: DBOSConfig = {
            "name": "bench",
            "system_database_url": f"sqlite:///{database}",
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            figures: dict[str, float] = asyncio.run(plans[name]())
        finally:
            DBOS.destroy(destroy_registry=False)
        return figures

    emit({"samples": repeat(args.repeat, once)})


if __name__ == "__main__":
    main()
