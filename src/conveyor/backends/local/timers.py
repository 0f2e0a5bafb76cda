"""Durable timers: stored in SQLite, kept in memory only for the near future.

A timer fires even if the process restarts in between, because it lives in the `timers` table.
Only timers due within `horizon` seconds are held in a heap; the rest are read when they come
near, so 100,000 runs each waiting on a day-long deadline cost rows, not memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable

from conveyor.backends.local.store import Store

TimerKey = tuple[str, str | None, int | None]
Fire = Callable[[str, str | None, int | None, float], None]


class TimerService:
    """Fires stored timers at their time, calling `fire(run_id, step_id, index, at)`."""

    def __init__(
        self, store: Store, fire: Fire, clock: Callable[[], float], horizon: float = 300.0
    ) -> None:
        self._store = store
        self._fire = fire
        self._clock = clock
        self._horizon = horizon
        self._heap: list[tuple[float, str, str, int]] = []
        self._loaded_until = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the near timers and start firing."""
        self._refill()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="conveyor-timers")

    async def stop(self) -> None:
        """Stop firing (stored timers stay for the next start)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def armed(self, run_id: str, step_id: str | None, index: int | None, at: float) -> None:
        """A timer was stored: hold it in memory if it is due soon."""
        if at <= self._loaded_until:
            heapq.heappush(self._heap, (at, run_id, step_id or "", -1 if index is None else index))
            if self._heap[0][0] == at:
                self._wake.set()

    def _refill(self) -> None:
        until = self._clock() + self._horizon
        for at, run_id, step_id, index in self._store.timers_due_before(until):
            if at > self._loaded_until or not self._loaded_until:
                heapq.heappush(
                    self._heap, (at, run_id, step_id or "", -1 if index is None else index)
                )
        self._loaded_until = until

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            if now >= self._loaded_until - self._horizon / 2:
                self._refill()
            while self._heap and self._heap[0][0] <= now:
                at, run_id, step_id, index = heapq.heappop(self._heap)
                self._fire(run_id, step_id or None, None if index < 0 else index, at)
            next_at = self._heap[0][0] if self._heap else self._loaded_until
            delay = max(0.0, min(next_at, self._loaded_until - self._horizon / 2) - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
