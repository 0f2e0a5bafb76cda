"""Live reads of the timeline: async iterators of `RunEvent`s, woken when a run changes.

A reader replays what is stored after its cursor, then sleeps until the backend's `watch` says
the run may have changed (the embedded engine's commits; a timer on Temporal, where nothing
announces a change), and reads on from the same cursor. The timeline table is the single source:
nothing is buffered per reader, so a slow reader cannot lose entries or hold the engine back,
and one that reconnects with its last seq gets exactly the rest.

The cursor is the timeline's `seq`, one sequence for the whole database (an AUTOINCREMENT key),
so it orders entries across runs too: the per-owner stream is resumable with the same cursor.
Temporal has no such sequence (each run counts its own), so the per-owner stream needs the
embedded backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from conveyor.api.engine import ServiceBackend, subscribed
from conveyor.backends.local import LocalBackend
from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store, loads
from conveyor.backends.local.timeline import to_event
from conveyor.runs import RunEvent, RunView

PAGE = 500
"""Entries read from the database at a time."""


@dataclass
class StreamGate:
    """Lets a stopping server end its live streams instead of waiting for their clients.

    A server stops gracefully by waiting for open requests, and a live stream never ends on
    its own: `close()` wakes every reader, and a woken reader that finds the gate closed ends
    its stream.
    """

    closing: bool = False
    _waiting: set[asyncio.Event] = field(default_factory=set)

    def close(self) -> None:
        """End every live stream (readers end at their next wake-up, which is now)."""
        self.closing = True
        for changed in list(self._waiting):
            changed.set()

    @contextmanager
    def holding(self, changed: asyncio.Event) -> Iterator[asyncio.Event]:
        """`changed`, also set when the gate closes (until the block ends)."""
        self._waiting.add(changed)
        try:
            yield changed
        finally:
            self._waiting.discard(changed)


@contextmanager
def woken(
    backend: LocalBackend, accept: Callable[[str], bool], gate: StreamGate | None = None
) -> Iterator[asyncio.Event]:
    """An event set whenever a run that `accept`s changes (or the gate closes).

    Unsubscribed on exit.
    """
    with subscribed(backend, accept) as changed:
        if gate is None:
            yield changed
        else:
            with gate.holding(changed):
                yield changed


@contextmanager
def _watching(
    engine: ServiceBackend, run_id: str, gate: StreamGate | None
) -> Iterator[asyncio.Event]:
    with engine.watch(run_id) as changed:
        if gate is None:
            yield changed
        else:
            with gate.holding(changed):
                yield changed


async def run_entries(
    engine: ServiceBackend, run_id: str, after: int = 0, gate: StreamGate | None = None
) -> AsyncIterator[RunEvent | RunView]:
    """The run's timeline after `after`, live, then its final view once it has ended.

    Ends after yielding the `RunView` of the finished run; a run that had already ended
    gives what is left of its timeline and its view at once. Ends early when `gate` closes.

    Raises:
        RunNotFoundError: no such run.
    """
    with _watching(engine, run_id, gate) as changed:
        while True:
            # Cleared before reading: a change committed while the entries are being yielded
            # sets it again, so nothing committed after the read is slept through.
            changed.clear()
            batch = await engine.timeline(run_id, after=after, limit=PAGE)
            for event in batch:
                yield event
                after = event.seq
            if len(batch) == PAGE:
                continue
            if not changed.is_set():
                view = await engine.get(run_id)
                if view.status.is_terminal:
                    # Where a change is not announced (Temporal) the run may have ended after
                    # the read above: what it wrote before ending comes first.
                    while batch := await engine.timeline(run_id, after=after, limit=PAGE):
                        for event in batch:
                            yield event
                            after = event.seq
                    yield view
                    return
            await changed.wait()
            if gate is not None and gate.closing:
                return


async def owner_entries(
    backend: LocalBackend,
    store: Store,
    owner: str | None,
    after: int | None = None,
    gate: StreamGate | None = None,
) -> AsyncIterator[RunEvent]:
    """Timeline entries of every run of `owner` (every run when None), live, never ending.

    Args:
        backend: The engine, whose changes wake the reader.
        store: The connection the entries are read on.
        owner: Only runs of this owner; None for all runs (admins).
        after: The cursor: entries with a greater seq. None starts at the current end, so
            a new reader sees what happens from now on rather than the whole history.
        gate: Ends the stream when it closes.
    """
    if after is None:
        after = int(store.db.execute(Q["last_run_event_seq"]).fetchone()[0])
    # Every change wakes it, whoever owns the run: the query filters by owner, and deciding
    # here would need the run's owner, a lookup per change per reader.
    with woken(backend, lambda _: True, gate) as changed:
        while True:
            changed.clear()
            rows = store.db.execute(
                Q["run_events_since"], {"after": after, "owner": owner, "limit": PAGE}
            ).fetchall()
            for seq, run_id, at, kind, step_id, index, data in rows:
                yield to_event(run_id, at, (kind, step_id, index, loads(data)), seq)
                after = seq
            if len(rows) == PAGE:
                continue
            await changed.wait()
            if gate is not None and gate.closing:
                return
