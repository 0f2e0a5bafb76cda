"""The embedded engine's storage: one SQLite file in WAL mode.

Every call is synchronous and short. The engine runs them on its event loop on purpose: a
commit costs tens of microseconds here, far less than a hop to a thread, and one writer on one
loop needs no locking of its own. Writes are grouped by the caller inside `transaction()`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from conveyor.backends.local.sql import Q, migrations
from conveyor.engine.state import RunState, RunStatus, StepState, UnitState
from conveyor.errors import DatabaseBusyError, EngineBusyError, RunNotFoundError
from conveyor.runs import MANUAL, RunTrigger

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def dumps(value: Any) -> str:
    """Compact JSON; values JSON cannot hold are stored as their text.

    orjson, because encoding unit rows is on the engine's hot path (several per step).
    """
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


loads = orjson.loads


@dataclass(frozen=True)
class RunRecord:
    """A run's row, without its units."""

    id: str
    pipeline_hash: str
    pipeline_name: str
    kind: str
    status: RunStatus
    params: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    idempotency_key: str | None
    owner: str | None
    labels: dict[str, str]
    retry_of: str | None = None
    trigger: RunTrigger = MANUAL


_WAL_SIZE_LIMIT = 16 * 1024 * 1024


class Store:
    """SQLite persistence of runs, units, waits, timers, events and the inbox."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 10.0,
    ) -> None:
        """A store of the SQLite file `path` (opened by `open()`).

        Args:
            path: The database file.
            synchronous: SQLite's `synchronous` pragma.
            busy_timeout: How long a write waits for another process's write lock before
                `DatabaseBusyError`. A store used on an event loop keeps this short: the
                wait blocks the thread, and the loop with it.
        """
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._depth = 0
        # Tells this engine's lock from another's, including another in the same process.
        self._token = uuid.uuid4().hex

    # ------------------------------------------------------------ connection

    def open(self) -> Store:
        """Connect, set the pragmas and bring the schema up to date."""
        if self._db is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE) so a write
        # never has to upgrade a read lock, which is how SQLite deadlocks under two writers.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        # WAL: readers (CLI, API) never block the engine's writer.
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed; only an OS crash or
        # power loss can drop the last commits. FULL also survives those, at an fsync a commit.
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        # Another process (the CLI) may hold the write lock for a moment: wait, don't fail,
        # for as long as the owner of this store can afford to block.
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA foreign_keys=ON")
        # The engine keeps one run's failure from undoing a batch with savepoints, and SQLite
        # keeps what a savepoint would restore in a temporary file by default: a write call
        # per page changed, six times the bytes of the WAL itself under a stream of events.
        db.execute("PRAGMA temp_store=MEMORY")
        self._db = db
        self._migrate()
        return self

    def close(self) -> None:
        """Close the connection (and the checkpointing one, if opened)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def defer_checkpoints(self) -> None:
        """Stop this connection from checkpointing the WAL inside its own commits.

        By default the commit that grows the WAL past 1,000 pages copies it back into the
        database file before returning, a pause of several milliseconds in whatever the engine
        was doing (it showed as the p99 of event routing). The engine calls this and then
        `checkpoint()` from a thread instead, so commits stay short.
        """
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        # A WAL that grew during a burst is cut back to this size when it restarts.
        self.db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")

    def finish_checkpoint(self) -> None:
        """Checkpoint what the WAL still holds on this (the writer's) connection.

        A checkpoint in another thread runs beside commits and may leave the frames that
        arrived meanwhile; a WAL that grew past the size limit is also cut back here. Called
        between transactions, after that checkpoint, so little is left to copy.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            oversized = wal.stat().st_size > _WAL_SIZE_LIMIT
        except FileNotFoundError:
            return
        mode = "TRUNCATE" if oversized else "PASSIVE"
        self.db.execute(f"PRAGMA wal_checkpoint({mode})")

    def checkpoint(self) -> int:
        """Copy committed WAL pages into the database file; returns the pages still in the WAL.

        PASSIVE: never waits for readers or the writer, so it can run in a thread beside the
        engine's commits. It uses a connection of its own, made on first use.
        """
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._checkpointer.execute("PRAGMA busy_timeout=10000")
        _busy, wal_pages, done = self._checkpointer.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
        return max(int(wal_pages) - int(done), 0)

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    def _migrate(self) -> None:
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        for version, script in migrations():
            if version <= current:
                continue
            with self.transaction():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={version}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one)."""
        db = self.db
        if self._depth:
            self._depth += 1
            try:
                yield db
            finally:
                self._depth -= 1
            return
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise DatabaseBusyError(
                    f"the database {self.path} is locked by another process; try again"
                ) from exc
            raise
        self._depth = 1
        try:
            yield db
        except BaseException:
            self._depth = 0
            db.execute("ROLLBACK")
            raise
        self._depth = 0
        db.execute("COMMIT")
        self.after_commit()

    def after_commit(self) -> None:
        """Called after every commit; a hook for subclasses (fault injection in tests)."""

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap to poll)."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------ engine lock

    def acquire_lock(self) -> None:
        """Take the database for this engine.

        Raises:
            EngineBusyError: another live engine holds it (in this process or another).
        """
        with self.transaction() as db:
            row = db.execute(Q["get_lock"]).fetchone()
            host = socket.gethostname()
            if (
                row is not None
                and row["token"] != self._token
                and row["host"] == host
                and _alive(row["pid"])
            ):
                raise EngineBusyError(
                    f"the database {self.path} is in use by another engine (pid "
                    f"{row['pid']}); stop it, or use another database"
                )
            db.execute(Q["take_lock"], (os.getpid(), self._token, host, time.time()))

    def lock_holder(self) -> int | None:
        """The pid of the live engine holding the database, if any."""
        row = self.db.execute(Q["get_lock"]).fetchone()
        if row is None or row["host"] != socket.gethostname() or not _alive(row["pid"]):
            return None
        return int(row["pid"])

    def release_lock(self) -> None:
        """Give the database up."""
        with self.transaction() as db:
            db.execute(Q["release_lock"], (self._token,))

    # ------------------------------------------------------------ pipelines and runs

    def save_pipeline(self, digest: str, name: str, version: str, document: dict[str, Any]) -> None:
        """Keep a pipeline snapshot by its content hash."""
        self.db.execute(
            Q["insert_pipeline"],
            {
                "hash": digest,
                "name": name,
                "version": version,
                "document": dumps(document),
                "created_at": time.time(),
            },
        )

    def pipeline_document(self, digest: str) -> dict[str, Any]:
        """The pipeline snapshot with that hash."""
        row = self.db.execute(Q["get_pipeline"], (digest,)).fetchone()
        if row is None:
            raise KeyError(digest)
        document: dict[str, Any] = loads(row["document"])
        return document

    def waiting_runs(self, limit: int) -> list[str]:
        """The runs with a step (or item) waiting for an event, longest waiting first."""
        return [str(row["run_id"]) for row in self.db.execute(Q["waiting_runs"], (limit,))]

    def run_for_key(self, key: str) -> str | None:
        """The run started with this idempotency key, if any."""
        row = self.db.execute(Q["run_by_idempotency_key"], (key,)).fetchone()
        return str(row["id"]) if row else None

    def insert_run(
        self,
        state: RunState,
        pipeline_hash: str,
        *,
        kind: str = "pipeline",
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: dict[str, str] | None = None,
        retry_of: str | None = None,
        trigger: RunTrigger | None = None,
    ) -> None:
        """Insert a new run's row."""
        trigger = trigger or MANUAL
        self.db.execute(
            Q["insert_run"],
            {
                "id": state.run_id,
                "pipeline_hash": pipeline_hash,
                "pipeline_name": state.pipeline_name,
                "kind": kind,
                "status": state.status.value,
                "params": dumps(state.params),
                "created_at": state.created_at,
                "idempotency_key": idempotency_key,
                "owner": owner,
                "labels": dumps(labels or {}),
                "retry_of": retry_of,
                "trigger": trigger.kind,
                "trigger_id": trigger.id,
                "trigger_time": trigger.stored_time(),
            },
        )

    def save_state(self, state: RunState) -> None:
        """Write what changed in `state` (its dirty units, and its row if needed)."""
        db = self.db
        if state.dirty:
            rows = []
            for step_id, index in state.dirty:
                unit = state.unit(step_id, index)
                rows.append(
                    (
                        state.run_id,
                        step_id,
                        -1 if index is None else index,
                        unit.status.value,
                        dumps(unit.to_dict()),
                    )
                )
            db.executemany(Q["upsert_unit"], rows)
            state.dirty.clear()
        if state.run_dirty:
            db.execute(
                Q["update_run"],
                {
                    "id": state.run_id,
                    "status": state.status.value,
                    "outputs": dumps(state.outputs) if state.outputs is not None else None,
                    "error": state.error,
                    "failed_step": state.failed_step,
                    "started_at": state.started_at,
                    "finished_at": state.finished_at,
                    "deadline_at": state.deadline_at,
                },
            )
            state.run_dirty = False

    def run_record(self, run_id: str) -> RunRecord:
        """A run's row.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.execute(Q["get_run"], (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return _record(row)

    def load_state(self, run_id: str) -> tuple[RunState, RunRecord]:
        """A run's full state and its row.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.execute(Q["get_run"], (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        record = _record(row)
        state = RunState(
            run_id=record.id,
            pipeline_name=record.pipeline_name,
            params=record.params,
            status=record.status,
            outputs=record.outputs,
            error=record.error,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            deadline_at=row["deadline_at"],
            failed_step=row["failed_step"],
        )
        for unit_row in self.db.execute(Q["units_of_run"], (run_id,)):
            data = loads(unit_row["data"])
            index = unit_row["idx"]
            if index < 0:
                state.steps[unit_row["step_id"]] = StepState.from_dict(data)
            else:
                step = state.steps[unit_row["step_id"]]
                assert step.items is not None
                step.items[index] = UnitState.from_dict(data)
        state.recount()
        return state, record

    def list_runs(
        self,
        *,
        status: Sequence[str] | None = None,
        pipeline: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        trigger: str | None = None,
        trigger_id: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching the filters, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append(f"status IN ({','.join('?' * len(status))})")
            args.extend(status)
        for column, value in (
            ("pipeline_name", pipeline),
            ("owner", owner),
            ("kind", kind),
            ("trigger", trigger),
            ("trigger_id", trigger_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if created_after is not None:
            where.append("created_at >= ?")
            args.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            args.append(created_before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT * FROM runs {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        rows = self.db.execute(sql, [*args, limit, offset]).fetchall()
        return [_record(row) for row in rows]

    def run_ids(self, query: str, *args: Any) -> list[str]:
        """Ids returned by a named query."""
        return [row[0] for row in self.db.execute(Q[query], args)]

    # ------------------------------------------------------------ timeline

    def add_run_events(
        self, rows: list[tuple[str, float, str, str | None, int | None, str]]
    ) -> None:
        """Append timeline rows: (run_id, at, kind, step_id, index, data JSON)."""
        self.db.executemany(Q["insert_run_event"], rows)

    def run_events(
        self, run_id: str, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, float, str, str | None, int | None, dict[str, Any]]]:
        """(seq, at, kind, step_id, index, data) of a run's timeline after `after`."""
        return [
            (row[0], row[2], row[3], row[4], row[5], loads(row[6]))
            for row in self.db.execute(Q["run_events_of"], (run_id, after, limit))
        ]

    # ------------------------------------------------------------ waits and timers

    def add_wait(
        self, correlation_id: str, run_id: str, step_id: str, index: int | None, attempt: int
    ) -> None:
        """Route events with `correlation_id` to the unit."""
        self.db.execute(
            Q["insert_wait"],
            (correlation_id, run_id, step_id, _idx(index), attempt, time.time()),
        )

    def remove_wait(
        self, correlation_id: str, run_id: str, step_id: str, index: int | None
    ) -> None:
        """Stop routing events with `correlation_id` to the unit."""
        self.db.execute(Q["delete_wait"], (correlation_id, run_id, step_id, _idx(index)))

    def waits_for(self, correlation_id: str) -> list[tuple[str, str, int | None, int]]:
        """(run_id, step_id, index, attempt) of the units waiting on `correlation_id`."""
        return [
            (row[0], row[1], None if row[2] < 0 else row[2], row[3])
            for row in self.db.execute(Q["waits_for"], (correlation_id,))
        ]

    def set_timer(self, run_id: str, step_id: str | None, index: int | None, at: float) -> None:
        """Arm (or move) a durable timer."""
        self.db.execute(Q["set_timer"], (run_id, step_id or "", _idx(index), at))

    def clear_timer(self, run_id: str, step_id: str | None, index: int | None) -> None:
        """Disarm a timer."""
        self.db.execute(Q["clear_timer"], (run_id, step_id or "", _idx(index)))

    def clear_fired_timer(
        self, run_id: str, step_id: str | None, index: int | None, at: float
    ) -> None:
        """Remove a timer that fired, unless it was moved later since."""
        self.db.execute(Q["clear_fired_timer"], (run_id, step_id or "", _idx(index), at))

    def timers_due_before(self, until: float) -> list[tuple[float, str, str | None, int | None]]:
        """(fire_at, run_id, step_id, index) of timers due before `until`."""
        return [
            (row[3], row[0], row[1] or None, None if row[2] < 0 else row[2])
            for row in self.db.execute(Q["timers_due_before"], (until,))
        ]

    # ------------------------------------------------------------ inbox

    def post_inbox(self, kind: str, payload: dict[str, Any]) -> None:
        """Leave a request for the engine process that holds the database."""
        with self.transaction() as db:
            db.execute(Q["insert_inbox"], (kind, dumps(payload), time.time()))

    def take_inbox(self) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return the waiting requests, oldest first."""
        top = self.db.execute(Q["max_inbox"]).fetchone()[0]
        if top is None:
            return []
        with self.transaction() as db:
            rows = db.execute(Q["take_inbox"], (top,)).fetchall()
        rows.sort(key=lambda row: row["seq"])
        return [(row["kind"], loads(row["payload"])) for row in rows]


def _idx(index: int | None) -> int:
    return -1 if index is None else index


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        pipeline_hash=row["pipeline_hash"],
        pipeline_name=row["pipeline_name"],
        kind=row["kind"],
        status=RunStatus(row["status"]),
        params=loads(row["params"]),
        outputs=loads(row["outputs"]) if row["outputs"] is not None else None,
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        idempotency_key=row["idempotency_key"],
        owner=row["owner"],
        labels=loads(row["labels"] or "{}"),
        retry_of=row["retry_of"],
        trigger=RunTrigger.stored(row["trigger"], row["trigger_id"], row["trigger_time"]),
    )


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
