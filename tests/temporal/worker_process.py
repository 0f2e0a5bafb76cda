"""A worker process for the test actions.

    python -m tests.temporal.worker_process ADDRESS PREFIX [QUEUE ...]

Serves the given queues of `tests.temporal.actions` (the workflows and every queue when none is
given) against the given server and task-queue prefix until it is stopped (SIGTERM or SIGINT)
or killed.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from temporalio.client import Client

from conveyor.backends.temporal.worker import WorkerOptions, build_workers, run_workers
from conveyor.config import Settings
from tests.temporal import actions


async def serve(address: str, prefix: str, queues: list[str] | None) -> None:
    """Run the workers until a stop signal arrives."""
    settings = Settings(
        backend="temporal", temporal_address=address, temporal_task_queue_prefix=prefix
    )
    client = await Client.connect(address)
    workers = build_workers(
        client,
        actions.registry(),
        settings,
        WorkerOptions(queues=queues, graceful_shutdown_seconds=1.0),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_workers(workers, stop)


if __name__ == "__main__":
    address, prefix, *queues = sys.argv[1:]
    asyncio.run(serve(address, prefix, queues or None))
