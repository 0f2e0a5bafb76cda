"""Retention: deleting finished runs past an age, with everything kept for them.

A pruned run goes with its steps, timeline (step logs included), waits, timers, event
deliveries and lifecycle deliveries. Events go once they are older than the cutoff and no
kept delivery refers to them; events still waiting for a step (`pending`) stay until their
own TTL. Pipeline snapshots stay (a run of the same pipeline reuses them), as do the catalog
and API keys. Runs are deleted in batches, each its own short transaction, so an engine
writing to the same database waits at most one batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.backends.local.store import Store
from conveyor.config import RetentionRule, Settings

FINISHED = ("completed", "failed", "cancelled", "timed_out")
"""The statuses a run may be pruned in: a run that has not ended is never deleted."""

BATCH = 200
"""Runs deleted a transaction."""

_RUN_TABLES = ("units", "run_events", "waits", "timers", "deliveries")
_PUBLISH_TABLES = ("publish_deliveries", "publish_targets", "publish_cursors")


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted (or, in a dry run, would delete)."""

    runs: int = 0
    events: int = 0
    deliveries: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.runs + other.runs,
            self.events + other.events,
            self.deliveries + other.deliveries,
        )


def prune(
    store: Store,
    *,
    older_than_seconds: float,
    statuses: Sequence[str] = FINISHED,
    owner: str | None = None,
    except_owners: Sequence[str] = (),
    events: bool = True,
    dry_run: bool = False,
    now: float | None = None,
) -> Pruned:
    """Delete the runs in `statuses` that ended more than `older_than_seconds` ago.

    Args:
        store: The open database.
        older_than_seconds: The age past which a finished run goes (by when it ended).
        statuses: Which finished statuses go.
        owner: Only this owner's runs; every owner's when None.
        except_owners: Keep these owners' runs (their own rules apply to them).
        events: Also delete events older than the cutoff that nothing refers to.
        dry_run: Count only.
        now: The current time (tests pass their own).

    Raises:
        ValueError: a status that is not a finished one.
    """
    unknown = [status for status in statuses if status not in FINISHED]
    if unknown:
        raise ValueError(
            f"only finished runs are pruned ({', '.join(FINISHED)}), not {', '.join(unknown)}"
        )
    cutoff = (now if now is not None else time.time()) - older_than_seconds
    where = [
        f"status IN ({','.join('?' * len(statuses))})",
        "coalesce(finished_at, created_at) < ?",
    ]
    args: list[object] = [*statuses, cutoff]
    if owner is not None:
        where.append("owner = ?")
        args.append(owner)
    if except_owners:
        where.append(f"(owner IS NULL OR owner NOT IN ({','.join('?' * len(except_owners))}))")
        args.extend(except_owners)
    select = f"SELECT id FROM runs WHERE {' AND '.join(where)}"
    publishing = [table for table in _PUBLISH_TABLES if _exists(store, table)]
    total = Pruned()
    if dry_run:
        ids = [row[0] for row in store.db.execute(select, args)]
        deliveries = sum(
            _count_deliveries(store, publishing, ids[i : i + BATCH])
            for i in range(0, len(ids), BATCH)
        )
        events_count = _old_events(store, cutoff, count=True) if events else 0
        return Pruned(len(ids), events_count, deliveries)
    while True:
        ids = [row[0] for row in store.db.execute(f"{select} LIMIT {BATCH}", args)]
        if not ids:
            break
        with store.transaction() as db:
            marks = ",".join("?" * len(ids))
            deliveries = _count_deliveries(store, publishing, ids)
            for table in (*_RUN_TABLES, *publishing):
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
            db.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids)
        total += Pruned(runs=len(ids), deliveries=deliveries)
    if events:
        total += Pruned(events=_old_events(store, cutoff, count=False))
    return total


def prune_by_policy(store: Store, settings: Settings, now: float | None = None) -> Pruned:
    """Apply the retention rules of `settings`: each owner's own, the default to the rest."""
    total = Pruned()
    for owner, rule in settings.retention_by_owner.items():
        total += _apply(store, rule, owner=owner, events=False, now=now)
    if settings.retention is not None:
        total += _apply(
            store,
            settings.retention,
            except_owners=list(settings.retention_by_owner),
            events=True,
            now=now,
        )
    return total


def _apply(
    store: Store,
    rule: RetentionRule,
    *,
    owner: str | None = None,
    except_owners: Sequence[str] = (),
    events: bool,
    now: float | None,
) -> Pruned:
    return prune(
        store,
        older_than_seconds=rule.older_than_days * 86400,
        statuses=rule.statuses,
        owner=owner,
        except_owners=except_owners,
        events=events,
        now=now,
    )


def _exists(store: Store, table: str) -> bool:
    row = store.db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def _count_deliveries(store: Store, publishing: list[str], ids: list[str]) -> int:
    if "publish_deliveries" not in publishing or not ids:
        return 0
    marks = ",".join("?" * len(ids))
    row = store.db.execute(
        f"SELECT count(*) FROM publish_deliveries WHERE run_id IN ({marks})", ids
    ).fetchone()
    return int(row[0])


def _old_events(store: Store, cutoff: float, *, count: bool) -> int:
    condition = (
        "received_at < ? AND status != 'pending' "
        "AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event_seq = events.seq)"
    )
    if count:
        row = store.db.execute(f"SELECT count(*) FROM events WHERE {condition}", (cutoff,))
        return int(row.fetchone()[0])
    with store.transaction() as db:
        return db.execute(f"DELETE FROM events WHERE {condition}", (cutoff,)).rowcount
