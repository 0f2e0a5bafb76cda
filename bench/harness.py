"""What every workload shares: a durable engine in a temp dir, figures, statistics, profiling."""

from __future__ import annotations

import asyncio
import cProfile
import math
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.actions import registry
from conveyor.backends.local import LocalBackend
from conveyor.backends.local.store import Synchronous
from conveyor.config import Settings
from conveyor.pipeline.spec import PipelineSpec


@dataclass(frozen=True)
class Metric:
    """One figure a workload reports; `target` is the bound it should stay within."""

    key: str
    label: str
    unit: str
    target: float | None = None
    at_least: bool = False
    """True when `target` is a lower bound (a rate), not an upper one."""


@dataclass
class Options:
    """How one repeat of a workload runs."""

    quick: bool = False
    timeout: float = 60.0
    profiler: cProfile.Profile | None = None
    notes: list[str] = field(default_factory=list)


Measure = Callable[[Options], dict[str, float]]


@dataclass(frozen=True)
class Workload:
    """A named measurement: `measure(options)` runs once and returns a value per metric key."""

    name: str
    description: str
    metrics: tuple[Metric, ...]
    measure: Measure
    default_repeat: int = 5
    timeout: float = 60.0
    """Seconds one repeat may take before it counts as crashed."""
    in_process: bool = True
    """False when it runs in a subprocess (not profiled here)."""
    compared: bool = True
    """False for a workload only Conveyor has a form of (no peer runs it)."""


# ------------------------------------------------------------------ the engine


def pipeline(document: dict[str, Any]) -> PipelineSpec:
    """A pipeline from its JSON form."""
    return PipelineSpec.model_validate(document)


@asynccontextmanager
async def engine(
    synchronous: Synchronous = "NORMAL", **settings: Any
) -> AsyncIterator[LocalBackend]:
    """A started embedded backend on a fresh SQLite file (WAL; synchronous=NORMAL unless
    given)."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        config = Settings(db_path=Path(tmp) / "bench.db", **settings)
        async with LocalBackend(registry(), config, synchronous=synchronous) as backend:
            yield backend


def run_async(coroutine: Coroutine[Any, Any, dict[str, float]], timeout: float) -> dict[str, float]:
    """Run one repeat on a fresh event loop, bounded by `timeout` seconds."""

    async def bounded() -> dict[str, float]:
        async with asyncio.timeout(timeout):
            return await coroutine

    return asyncio.run(bounded())


@contextmanager
def profiled(profiler: cProfile.Profile | None) -> Iterator[None]:
    """Profile the block when a profiler is given (only the measured part of a workload)."""
    if profiler is None:
        yield
        return
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()


def waiting_units(backend: LocalBackend) -> int:
    """How many units wait for an event (committed rows of the engine's `waits` table)."""
    return int(backend.store.db.execute("SELECT COUNT(*) FROM waits").fetchone()[0])


async def until_waiting(backend: LocalBackend, count: int) -> None:
    """Return once at least `count` units wait for events (checked after each commit)."""
    changed = asyncio.Event()
    unsubscribe = backend.subscribe(lambda _run_id: changed.set())
    try:
        while waiting_units(backend) < count:
            changed.clear()
            await changed.wait()
    finally:
        unsubscribe()


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100), interpolating linearly between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median."""
    return percentile(values, 50)
