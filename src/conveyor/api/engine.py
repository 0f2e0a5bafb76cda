"""The backend surface the HTTP service uses, and one adapter per backend.

Routes speak only `ServiceBackend`: async reads and writes of runs and events, and `watch`, a
wake-up when a run may have changed. `LocalEngine` serves it from the embedded engine (reads
from memory, wake-ups from its commits); `TemporalEngine` from a Temporal cluster, where
nothing announces a change, so a watcher is woken on a timer and reads again.

What exists on one backend only (the stored-event log, the global timeline sequence behind
the per-owner stream, lifecycle publishing) is reached through `embedded`, which answers 501
on Temporal instead of something wrong.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.api.errors import ApiError
from conveyor.backends.local import LocalBackend
from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store
from conveyor.events import Event, EventReceipt
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import RunEvent, RunSummary, RunTrigger, RunView

if TYPE_CHECKING:
    from conveyor.backends.temporal.backend import TemporalBackend

__all__ = [
    "COUNT_CAP",
    "POLL_SECONDS",
    "LocalEngine",
    "ServiceBackend",
    "TemporalEngine",
    "embedded",
    "subscribed",
]

POLL_SECONDS = 0.5
"""How often a watcher of a run on Temporal is woken to read it again."""

COUNT_CAP = 10_000
"""The most runs `TemporalEngine.count_runs` counts (it lists them to count)."""


_COUNT_FILTERS = (
    "pipeline",
    "owner",
    "kind",
    "trigger",
    "trigger_id",
    "created_after",
    "created_before",
)
"""The filters of `runs_count`, each None unless given."""


class ServiceBackend(Protocol):
    """What the HTTP service needs of a backend."""

    name: str
    """``local`` or ``temporal``."""

    async def start(self) -> None:
        """Get ready (resume runs, or connect)."""
        ...

    async def stop(self) -> None:
        """Stop."""
        ...

    async def start_run(
        self,
        pipeline: PipelineSpec,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: Mapping[str, str] | None = None,
        kind: str = "pipeline",
        trigger: RunTrigger | None = None,
    ) -> str:
        """Start a run; with a used idempotency key, return the first run's id."""
        ...

    async def run_for_key(self, key: str) -> str | None:
        """The run started with idempotency key `key`, if any."""
        ...

    async def get(self, run_id: str) -> RunView:
        """The run with its steps (RunNotFoundError when unknown)."""
        ...

    async def waiting_runs(self, limit: int) -> list[str]:
        """Runs that may have a step waiting for an event (at most `limit`), oldest first."""
        ...

    async def list_runs(
        self, *, status: list[str] | None = None, limit: int = 50, offset: int = 0, **filters: Any
    ) -> list[RunSummary]:
        """A page of runs matching the filters, newest first."""
        ...

    async def count_runs(self, *, status: list[str] | None = None, **filters: Any) -> int:
        """How many runs match the filters of `list_runs`."""
        ...

    async def timeline(self, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        """The run's timeline entries after the cursor `after`."""
        ...

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run."""
        ...

    async def retry(self, run_id: str) -> str:
        """Start a new run of an ended run, keeping its completed steps; its id."""
        ...

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Store and route one event."""
        ...

    async def send_events(self, events: Sequence[Event | Mapping[str, Any]]) -> list[EventReceipt]:
        """Store and route events, each checked before any is kept."""
        ...

    async def pipeline_document(self, run_id: str) -> dict[str, Any]:
        """The pipeline the run runs, as a document."""
        ...

    def watch(self, run_id: str) -> AbstractContextManager[asyncio.Event]:
        """An event set whenever the run may have changed; clear it before each read."""
        ...


@contextmanager
def subscribed(backend: LocalBackend, accept: Callable[[str], bool]) -> Iterator[asyncio.Event]:
    """An event set whenever the engine commits a change to a run that `accept`s."""
    changed = asyncio.Event()

    def listener(run_id: str) -> None:
        if accept(run_id):
            changed.set()

    unsubscribe = backend.subscribe(listener)
    try:
        yield changed
    finally:
        unsubscribe()


class LocalEngine:
    """`ServiceBackend` over the embedded engine; `store` is the service's own connection."""

    name = "local"

    def __init__(self, backend: LocalBackend, store: Store) -> None:
        self.backend = backend
        self.store = store
        # Bound once: these are the hot paths, and a bound method is what the engine offers.
        self.start = backend.start
        self.stop = backend.stop
        self.start_run = backend.start_run
        self.timeline = backend.timeline
        self.cancel = backend.cancel
        self.send_event = backend.send_event
        self.send_events = backend.send_events

    async def run_for_key(self, key: str) -> str | None:
        """The run started with `key`, from the engine's own table."""
        return self.backend.store.run_for_key(key)

    async def get(self, run_id: str) -> RunView:
        """The run, read from memory (or the database for a run no longer active)."""
        return self.backend.view(run_id)

    async def waiting_runs(self, limit: int) -> list[str]:
        """The runs with a wait, from the engine's table of waits."""
        return self.store.waiting_runs(limit)

    async def list_runs(
        self, *, status: list[str] | None = None, limit: int = 50, offset: int = 0, **filters: Any
    ) -> list[RunSummary]:
        """A page of runs."""
        return await self.backend.list_runs(status=status, limit=limit, offset=offset, **filters)

    async def count_runs(self, *, status: list[str] | None = None, **filters: Any) -> int:
        """Counted by one query with the same filters as the page."""
        every = dict.fromkeys(_COUNT_FILTERS)
        row = self.store.db.execute(
            Q["runs_count"],
            {**every, **filters, "statuses": json.dumps(status) if status else None},
        ).fetchone()
        return int(row[0])

    async def retry(self, run_id: str) -> str:
        """A new run of the ended run."""
        return await self.backend.retry(run_id)

    async def pipeline_document(self, run_id: str) -> dict[str, Any]:
        """The document stored with the run."""
        record = self.store.run_record(run_id)
        return self.store.pipeline_document(record.pipeline_hash)

    def watch(self, run_id: str) -> AbstractContextManager[asyncio.Event]:
        """Set by the engine's commits to the run."""
        return subscribed(self.backend, lambda changed: changed == run_id)


class TemporalEngine:
    """`ServiceBackend` over a Temporal cluster (workers run the runs)."""

    name = "temporal"

    def __init__(self, backend: TemporalBackend, poll_seconds: float = POLL_SECONDS) -> None:
        self.backend = backend
        self.poll_seconds = poll_seconds
        self.start = backend.start
        self.stop = backend.stop
        self.start_run = backend.start_run
        self.get = backend.get
        self.timeline = backend.timeline
        self.cancel = backend.cancel
        self.send_event = backend.send_event
        self.send_events = backend.send_events

    async def run_for_key(self, key: str) -> str | None:
        """The keyed run, if Temporal knows its workflow."""
        return await self.backend.run_for_key(key)

    async def list_runs(
        self, *, status: list[str] | None = None, limit: int = 50, offset: int = 0, **filters: Any
    ) -> list[RunSummary]:
        """A page from Temporal's visibility store."""
        if _only_pending(status):
            return []
        return await self.backend.list_runs(status=status, limit=limit, offset=offset, **filters)

    async def count_runs(self, *, status: list[str] | None = None, **filters: Any) -> int:
        """Counted by listing (owner, pipeline and kind are filtered here), up to `COUNT_CAP`."""
        if _only_pending(status):
            return 0
        found = await self.backend.list_runs(status=status, limit=COUNT_CAP, **filters)
        return len(found)

    async def waiting_runs(self, limit: int) -> list[str]:
        """The running runs (Temporal keeps no table of waits), oldest first."""
        found = await self.backend.list_runs(status=["running"], limit=limit)
        return [summary.run_id for summary in reversed(found)]

    async def retry(self, run_id: str) -> str:
        """A new run (a new workflow) of the ended run."""
        return await self.backend.retry(run_id)

    async def pipeline_document(self, run_id: str) -> dict[str, Any]:
        """The pipeline from the workflow's input."""
        return await self.backend.pipeline_document(run_id)

    @contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """Set every `poll_seconds`: nothing on Temporal announces a change."""
        changed = asyncio.Event()

        async def tick() -> None:
            while True:
                await asyncio.sleep(self.poll_seconds)
                changed.set()

        ticking = asyncio.get_running_loop().create_task(tick())
        try:
            yield changed
        finally:
            ticking.cancel()


def _only_pending(status: list[str] | None) -> bool:
    # A workflow runs from its start: no run is ever pending on Temporal, and the backend,
    # given no status it knows, would not filter by status at all.
    return bool(status) and set(status or ()) <= {"pending"}


def embedded(engine: ServiceBackend, what: str) -> LocalBackend:
    """The embedded engine behind `engine`, for what only it offers.

    Raises:
        ApiError: 501 naming `what`, on any other backend.
    """
    if isinstance(engine, LocalEngine):
        return engine.backend
    raise ApiError(
        501,
        "not_implemented",
        f"{what} needs the embedded backend; this service runs on {engine.name}",
    )
