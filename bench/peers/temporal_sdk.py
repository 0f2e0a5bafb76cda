"""A hand-written Temporal workflow (Python SDK) on the dev server the bench started.

Run by the bench with its own virtualenv: `python temporal_sdk.py --workload NAME
--temporal-address HOST:PORT ...`. No-op activities run sequentially or with asyncio.gather;
an external event is a signal; the worker runs in this process with the SDK's defaults.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, not_offered, now, parser, percentile, rss_mb
from temporal_flows import MARKED, Parallel, Sequential, Waiter, mark, noop
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker


async def timed(client: Client, queue: str, workflow_run: Any, steps: int) -> float:
    started = now()
    await client.execute_workflow(workflow_run, steps, id=uuid.uuid4().hex, task_queue=queue)
    return now() - started


async def until_waiting(client: Client, handles: list[Any]) -> None:
    """Until every Waiter is running and the last started has answered a query.

    Workflow tasks are served about in order, so once the last one has run its first task the
    others have too; a signal sent earlier would only be buffered, not lost.
    """
    query = "WorkflowType = 'Waiter' AND ExecutionStatus = 'Running'"
    # Visibility can only be polled: there is nothing to wait on.
    while (await client.count_workflows(query)).count < len(handles):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    while True:
        try:
            await handles[-1].query(Waiter.ready)
            return
        except RPCError:
            # The worker is still running the first tasks of thousands: the query timed out.
            continue


async def event_resume(client: Client, queue: str, runs: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    handles = [
        await client.start_workflow(Waiter.run, True, id=uuid.uuid4().hex, task_queue=queue)
        for _ in range(runs + 1)
    ]
    await until_waiting(client, handles)
    latencies: list[float] = []
    for index, handle in enumerate(handles):
        future = MARKED[handle.id] = loop.create_future()
        sent = now()
        await handle.signal(Waiter.done)
        resumed = await future
        await handle.result()
        if index:
            latencies.append((resumed - sent) * 1000)
    return {"median": percentile(latencies, 50), "p99": percentile(latencies, 99)}


async def waiting(
    client: Client, queue: str, runs: int, events: int, server_pid: int | None
) -> dict[str, float]:
    def rss() -> float:
        return rss_mb() + (rss_mb(server_pid) if server_pid else 0.0)

    baseline = rss()
    started = now()
    handles = []
    for first in range(0, runs, 500):
        batch = [
            client.start_workflow(Waiter.run, False, id=uuid.uuid4().hex, task_queue=queue)
            for _ in range(first, min(first + 500, runs))
        ]
        handles += await asyncio.gather(*batch)
    await until_waiting(client, handles)
    start_seconds = now() - started
    memory = rss()
    latencies: list[float] = []
    for handle in random.Random(20240601).sample(handles, min(events, runs)):
        sent = now()
        await handle.signal(Waiter.done)
        await handle.result()
        latencies.append((now() - sent) * 1000)
    return {
        "rss": memory,
        "rss_baseline": baseline,
        "start_seconds": start_seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


async def run(args: Any) -> dict[str, Any]:
    client = await Client.connect(args.temporal_address)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    plans: dict[str, Any] = {
        "seq100": lambda: _total(client, queue, Sequential.run, 100, 1000),
        "par100": lambda: _total(client, queue, Parallel.run, 100, 1000),
        "par1000": lambda: _total(client, queue, Parallel.run, 1000, 1),
        "event_resume": lambda: event_resume(client, queue, 50 if args.quick else 200),
        "waiting10k": lambda: waiting(client, queue, 10_000, 200, args.server_pid),
    }
    if args.workload not in plans:
        return not_offered(
            "not measured: 10,000 waiting workflows took about 6 minutes to start on the dev "
            "server here (about 30 a second with 2 cores), so 100,000 would take an hour, "
            "past the bench's bound; waiting10k is the measured size"
        )
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[Sequential, Parallel, Waiter],
        activities=[noop, mark],
    )
    async with worker:
        if args.workload in ("seq100", "par100", "par1000"):
            await plans[args.workload]()  # Warm-up: the worker's first tasks, the sandbox.
        samples: dict[str, list[float]] = {}
        for index in range(args.repeat):
            values = await plans[args.workload]()
            for key, value in values.items():
                samples.setdefault(key, []).append(value)
            print(f"  repeat {index + 1}/{args.repeat}: {values}", file=sys.stderr, flush=True)
    return {"samples": samples}


async def _total(
    client: Client, queue: str, workflow_run: Any, steps: int, unit: float
) -> dict[str, float]:
    return {"total": await timed(client, queue, workflow_run, steps) * unit}


def main() -> None:
    args = parser("temporal_sdk").parse_args()
    if not args.temporal_address:
        emit(not_offered("no dev server address given (--temporal-address)"))
        return
    emit(asyncio.run(run(args)))
    # Temporal's core threads can abort the interpreter as it finalizes (PyGILState_Release,
    # exit -6: seen after par1000); the figures are out already.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
