"""The outbox: lifecycle deliveries kept in SQLite until each is delivered or given up.

Every database call of publishing is here. Calls are synchronous and short, made on the event
loop like the engine's own: a write is a few rows in one transaction and never waits on the
network, so no delivery holds a lock while it is being sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from conveyor.backends.local.store import Store, dumps
from conveyor.ids import new_id
from conveyor.publishing.specs import Target

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

DeliveryStatus = Literal["pending", "delivered", "failed"]


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _schema() -> str:
    return (
        resources.files("conveyor.api")
        .joinpath("sql", "003_publishing.sql")
        .read_text(encoding="utf-8")
    )


Q = _load_queries()


@dataclass(frozen=True)
class Pending:
    """A delivery to try: the oldest pending one of its target."""

    seq: int
    id: str
    target_id: str
    run_id: str
    event_seq: int
    type: str
    message: dict[str, Any]
    attempts: int
    next_attempt_at: float
    kind: str
    address: str
    secret: str | None


@dataclass(frozen=True)
class NewDelivery:
    """A message for one target, to be added to the outbox."""

    target_id: str
    event_seq: int
    type: str
    message: dict[str, Any]


class Outbox:
    """Targets, cursors and deliveries, on the service's connection to the database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def migrate(self) -> None:
        """Create the tables (idempotent)."""
        lines = [line for line in _schema().splitlines() if not line.lstrip().startswith("--")]
        statements = [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
        with self.store.transaction() as db:
            for statement in statements:
                db.execute(statement)

    # ------------------------------------------------------------ targets and cursors

    def add_targets(self, targets: Iterable[Target], now: float) -> None:
        """Record where a run's lifecycle goes, and start its cursor (repeats are ignored)."""
        with self.store.transaction() as db:
            for target in targets:
                db.execute(
                    Q["insert_target"],
                    {
                        "id": target.id,
                        "run_id": target.run_id,
                        "position": target.position,
                        "kind": target.kind,
                        "address": target.address,
                        "secret": target.secret,
                        "events": json.dumps(target.events) if target.events else None,
                        "created_at": now,
                    },
                )
                db.execute(Q["insert_cursor"], (target.run_id,))

    def targets_of(self, run_id: str) -> list[Target]:
        """Where `run_id`'s lifecycle goes."""
        rows = self.store.db.execute(Q["targets_of"], (run_id,)).fetchall()
        return [
            Target(
                id=row["id"],
                run_id=row["run_id"],
                position=row["position"],
                kind=row["kind"],
                address=row["address"],
                secret=row["secret"],
                events=json.loads(row["events"]) if row["events"] else None,
            )
            for row in rows
        ]

    def seal_plain_secrets(self, seal: Callable[[str], str]) -> int:
        """Encrypt the secrets stored before secrets were encrypted; how many there were."""
        with self.store.transaction() as db:
            rows = db.execute(Q["plain_secrets"]).fetchall()
            for row in rows:
                db.execute(Q["update_secret"], (seal(row["secret"]), row["id"]))
        return len(rows)

    def cursor(self, run_id: str) -> tuple[int, bool] | None:
        """(the last timeline seq turned into deliveries, whether the run is done), or None."""
        row = self.store.db.execute(Q["cursor_of"], (run_id,)).fetchone()
        return None if row is None else (int(row["after_seq"]), bool(row["finished"]))

    def unfinished_runs(self) -> list[str]:
        """The runs whose lifecycle is still being turned into deliveries."""
        return [row[0] for row in self.store.db.execute(Q["unfinished_runs"])]

    def advance(
        self,
        run_id: str,
        after_seq: int,
        finished: bool,
        deliveries: Iterable[NewDelivery],
        now: float,
    ) -> None:
        """Add `deliveries` and move the run's cursor, in one transaction."""
        with self.store.transaction() as db:
            for new in deliveries:
                db.execute(
                    Q["insert_delivery"],
                    {
                        "id": new_id(),
                        "target_id": new.target_id,
                        "run_id": run_id,
                        "event_seq": new.event_seq,
                        "type": new.type,
                        "message": dumps(new.message),
                        "created_at": now,
                    },
                )
            db.execute(
                Q["update_cursor"],
                {"run_id": run_id, "after_seq": after_seq, "finished": int(finished)},
            )

    def unit_outputs(self, run_id: str, step_id: str, index: int | None) -> Any:
        """The outputs stored for a step (or one of its items), None when there are none."""
        row = self.store.db.execute(
            Q["unit_data"], (run_id, step_id, -1 if index is None else index)
        ).fetchone()
        if row is None:
            return None
        return json.loads(row["data"]).get("outputs")

    # ------------------------------------------------------------ deliveries

    def pending_heads(self, limit: int) -> list[Pending]:
        """The oldest pending delivery of each target, soonest due first."""
        rows = self.store.db.execute(Q["pending_heads"], (limit,)).fetchall()
        return [
            Pending(
                seq=row["seq"],
                id=row["id"],
                target_id=row["target_id"],
                run_id=row["run_id"],
                event_seq=row["event_seq"],
                type=row["type"],
                message=json.loads(row["message"]),
                attempts=row["attempts"],
                next_attempt_at=row["next_attempt_at"],
                kind=row["kind"],
                address=row["address"],
                secret=row["secret"],
            )
            for row in rows
        ]

    def delivered(self, delivery_id: str, attempts: int, now: float) -> None:
        """Record a delivery as delivered."""
        with self.store.transaction() as db:
            db.execute(Q["mark_delivered"], {"id": delivery_id, "attempts": attempts, "now": now})

    def retry_at(self, delivery_id: str, attempts: int, error: str, at: float) -> None:
        """Record a failed attempt; the next one is due at `at`."""
        with self.store.transaction() as db:
            db.execute(
                Q["mark_retry"],
                {"id": delivery_id, "attempts": attempts, "error": error, "next": at},
            )

    def failed(self, delivery_id: str, attempts: int, error: str) -> None:
        """Record a delivery as given up."""
        with self.store.transaction() as db:
            db.execute(Q["mark_failed"], {"id": delivery_id, "attempts": attempts, "error": error})

    def deliveries_of(
        self, run_id: str, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the run's deliveries (oldest first) and how many match in all."""
        params = {"run_id": run_id, "status": status, "limit": limit, "offset": offset}
        rows = self.store.db.execute(Q["deliveries_of"], params).fetchall()
        total = self.store.db.execute(Q["deliveries_count"], params).fetchone()[0]
        return [dict(row) for row in rows], int(total)
