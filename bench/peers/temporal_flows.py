"""The hand-written Temporal workflows and activities (imported by temporal_sdk.py).

Kept apart from the script so the workflow sandbox, which re-imports a workflow's module, finds
nothing here but Temporal and the standard library.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow

MARKED: dict[str, asyncio.Future[float]] = {}
TIMEOUT = timedelta(minutes=5)


@activity.defn
async def noop() -> None:
    """Does nothing."""


@activity.defn
async def mark() -> None:
    """Records when it starts, for the bench waiting on it (same process)."""
    started = time.perf_counter()
    future = MARKED.pop(activity.info().workflow_id, None)
    if future is not None and not future.done():
        future.set_result(started)


@workflow.defn
class Sequential:
    @workflow.run
    async def run(self, steps: int, activity_queue: str | None = None) -> None:
        # activity_queue: run the activities on another task queue (no eager start).
        for _ in range(steps):
            await workflow.execute_activity(
                noop, start_to_close_timeout=TIMEOUT, task_queue=activity_queue
            )


@workflow.defn
class Parallel:
    @workflow.run
    async def run(self, steps: int, activity_queue: str | None = None) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    noop, start_to_close_timeout=TIMEOUT, task_queue=activity_queue
                )
                for _ in range(steps)
            )
        )


@workflow.defn
class Waiter:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self, then_mark: bool) -> None:
        await workflow.wait_condition(lambda: self._done)
        if then_mark:
            await workflow.execute_activity(mark, start_to_close_timeout=TIMEOUT)

    @workflow.signal
    def done(self) -> None:
        self._done = True

    @workflow.query
    def ready(self) -> bool:
        """Answered once the workflow's first task has run (it is waiting)."""
        return True
