"""The events table: accepting, routing, buffering and delivering events durably.

An event is committed before it is acknowledged. Deliveries to waiting units are planned in the
same transaction that accepts the event (or that makes a unit wait, for an event that came
first), and marked done in the transaction that applies `on_event`'s result, so after a crash
every planned delivery not yet done is simply made again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store, dumps, loads
from conveyor.events import Event, RouteStatus


@dataclass(frozen=True)
class Delivery:
    """An event planned for one waiting unit."""

    event_seq: int
    run_id: str
    step_id: str
    index: int | None
    attempt: int


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored."""

    seq: int
    id: str
    correlation_id: str | None
    type: str
    source: str | None
    data: dict[str, Any]
    received_at: float
    status: str


def accept(
    store: Store, event: Event, now: float, ttl: float
) -> tuple[RouteStatus, list[Delivery]]:
    """Store `event` and plan its deliveries; call inside a transaction.

    Returns:
        How it was routed, and the deliveries to make once committed.
    """
    db = store.db
    if event.correlation_id is None:
        status = RouteStatus.UNROUTABLE
        waits: list[tuple[str, str, int | None, int]] = []
    else:
        waits = store.waits_for(event.correlation_id)
        status = RouteStatus.ROUTED if waits else RouteStatus.PENDING
    cursor = db.execute(
        Q["insert_event"],
        {
            "id": event.id,
            "correlation_id": event.correlation_id,
            "type": event.type,
            "source": event.source,
            "data": dumps(event.data),
            "received_at": now,
            "expires_at": now + ttl if status is RouteStatus.PENDING else None,
            "status": status.value,
        },
    )
    if cursor.rowcount == 0:
        return RouteStatus.DUPLICATE, []
    seq = int(cursor.lastrowid or 0)
    deliveries = [
        Delivery(seq, run_id, step_id, index, attempt) for run_id, step_id, index, attempt in waits
    ]
    for delivery in deliveries:
        _plan(store, delivery)
    return status, deliveries


def claim_pending(
    store: Store,
    correlation_id: str,
    run_id: str,
    step_id: str,
    index: int | None,
    attempt: int,
    now: float,
) -> list[Delivery]:
    """Plan buffered events for a unit that just started waiting; call inside a transaction."""
    deliveries = []
    for row in store.db.execute(Q["pending_events_for"], (correlation_id, now)).fetchall():
        delivery = Delivery(int(row[0]), run_id, step_id, index, attempt)
        _plan(store, delivery)
        store.db.execute(Q["set_event_status"], (RouteStatus.ROUTED.value, delivery.event_seq))
        deliveries.append(delivery)
    return deliveries


def finish(store: Store, delivery: Delivery) -> None:
    """Mark a delivery applied; call in the transaction that applies its result."""
    store.db.execute(
        Q["finish_delivery"],
        (delivery.event_seq, delivery.run_id, delivery.step_id, _idx(delivery.index)),
    )


def planned(store: Store) -> list[Delivery]:
    """Deliveries planned and not yet applied (to make again after a restart)."""
    return [
        Delivery(row[0], row[1], row[2], None if row[3] < 0 else row[3], row[4])
        for row in store.db.execute(Q["planned_deliveries"])
    ]


def get(store: Store, seq: int) -> StoredEvent | None:
    """The stored event with sequence number `seq`."""
    row = store.db.execute(Q["get_event"], (seq,)).fetchone()
    return _stored(row) if row is not None else None


def expire(store: Store, now: float) -> int:
    """Mark buffered events past their TTL as expired; returns how many."""
    with store.transaction() as db:
        return db.execute(Q["expire_events"], (now,)).rowcount


def list_events(
    store: Store, *, status: list[str] | None = None, limit: int = 50, offset: int = 0
) -> list[StoredEvent]:
    """Stored events, newest first, optionally only those with the given statuses."""
    args: list[Any] = []
    clause = ""
    if status:
        clause = f"WHERE status IN ({','.join('?' * len(status))})"
        args.extend(status)
    sql = f"SELECT * FROM events {clause} ORDER BY seq DESC LIMIT ? OFFSET ?"
    return [_stored(row) for row in store.db.execute(sql, [*args, limit, offset])]


def _plan(store: Store, delivery: Delivery) -> None:
    store.db.execute(
        Q["insert_delivery"],
        (
            delivery.event_seq,
            delivery.run_id,
            delivery.step_id,
            _idx(delivery.index),
            delivery.attempt,
        ),
    )


def _idx(index: int | None) -> int:
    return -1 if index is None else index


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        id=row["id"],
        correlation_id=row["correlation_id"],
        type=row["type"],
        source=row["source"],
        data=loads(row["data"]),
        received_at=row["received_at"],
        status=row["status"],
    )
