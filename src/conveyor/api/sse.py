"""Live reads of the timeline: async iterators of `RunEvent`s, woken by the engine's commits.

A reader replays what is stored after its cursor, then sleeps until `LocalBackend.subscribe`
says a run changed, and reads on from the same cursor. The timeline table is the single source:
nothing is buffered per reader, so a slow reader cannot lose entries or hold the engine back,
and one that reconnects with its last seq gets exactly the rest.

The cursor is the timeline's `seq`, one sequence for the whole database (an AUTOINCREMENT key),
so it orders entries across runs too: the per-owner stream is resumable with the same cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
def woken(
    backend: LocalBackend, accept: Callable[[str], bool], gate: StreamGate | None = None
) -> Iterator[asyncio.Event]:
    """An event set whenever a run that `accept`s changes (or the gate closes).

    Unsubscribed on exit.
    """
    changed = asyncio.Event()

    def listener(run_id: str) -> None:
        if accept(run_id):
            changed.set()

    unsubscribe = backend.subscribe(listener)
    if gate is not None:
        gate._waiting.add(changed)
    try:
        yield changed
    finally:
        unsubscribe()
        if gate is not None:
            gate._waiting.discard(changed)


async def run_entries(
    backend: LocalBackend, run_id: str, after: int = 0, gate: StreamGate | None = None
) -> AsyncIterator[RunEvent | RunView]:
    """The run's timeline after `after`, live, then its final view once it has ended.

    Ends after yielding the `RunView` of the finished run; a run that had already ended
    gives what is left of its timeline and its view at once. Ends early when `gate` closes.

    Raises:
        RunNotFoundError: no such run.
    """
    with woken(backend, lambda changed: changed == run_id, gate) as changed:
        while True:
            # Cleared before reading: a change committed while the entries are being yielded
            # sets it again, so nothing committed after the read is slept through.
            changed.clear()
            batch = await backend.timeline(run_id, after=after, limit=PAGE)
            for event in batch:
                yield event
                after = event.seq
            if len(batch) == PAGE:
                continue
            if not changed.is_set():
                view = backend.view(run_id)
                if view.status.is_terminal:
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
