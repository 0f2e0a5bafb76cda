"""The embedded backend: runs pipelines in this process and commits every transition to SQLite.

How a transition happens: whatever occurred (a step returned, an event was decided, a timer
fired) is submitted as a state machine input. Inputs are applied in batches on the next turn
of the event loop: for each run, its state (cached while the run has work in flight, else read
from the store) goes through `engine.transition`, the changed rows, waits and timers are
written, and the batch is committed in one transaction. Only then are the commands carried out
(executions started, tasks cancelled, waiters woken), so nothing ever depends on a transition
that a crash could undo. A run that only waits holds no task and no memory: its waits and
timers are rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from conveyor.actions import ActionRegistry, Publisher, ServiceInvoker, StepStatus
from conveyor.backends.local import eventlog, timeline
from conveyor.backends.local.eventlog import Delivery
from conveyor.backends.local.runner import Runner, UnitView
from conveyor.backends.local.steplogs import StepLogBook, read_logs
from conveyor.backends.local.store import RunRecord, Store, Synchronous, dumps
from conveyor.backends.local.timeline import Entry as TimelineEntry
from conveyor.backends.local.timers import TimerService
from conveyor.config import Settings
from conveyor.engine import (
    Abort,
    CancelRun,
    ClearTimer,
    Command,
    EventApplied,
    Execute,
    Input,
    Plan,
    Recover,
    RunFinished,
    RunState,
    RunStatus,
    SetTimer,
    StartRun,
    StepState,
    TimerFired,
    UnitState,
    Unwatch,
    Watch,
    stored_difference,
    transition,
)
from conveyor.errors import DatabaseBusyError, RunNotFoundError, RunStateError
from conveyor.events import Event, EventReceipt, RouteStatus, event_from_body
from conveyor.ids import new_id
from conveyor.pipeline.spec import PipelineSpec
from conveyor.pipeline.template_limits import configure_template_limits
from conveyor.runs import RunEvent, RunSummary, RunTrigger, RunView, as_datetime

log = structlog.get_logger("conveyor.engine")

_MAINTENANCE_SECONDS = 0.1
_EXPIRY_SECONDS = 30.0
_CHECKPOINT_SECONDS = 1.0
_CHECKPOINT_COMMITS = 500
_BUSY_RETRY_SECONDS = 0.2
_INLINE_PLAN_STEPS = 50

LOOP_BUSY_TIMEOUT = 0.1
"""How long a write on an event loop waits for another process's write lock (seconds)."""


EntryListener = Callable[[str, float, list[TimelineEntry]], None]
"""Told `(run_id, at, entries)` after each commit that added timeline entries to a run."""

_Done = tuple["_Active", list[Command], list[Delivery], list[TimelineEntry]]
"""A run's applied transition: its state, the commands and deliveries to carry out, and the
timeline entries to tell listeners."""

_Accepting = tuple[list[Event], "asyncio.Future[list[EventReceipt]]"]
"""A caller's events waiting for the next commit, and where its receipts go."""


class UncommittedStateError(RuntimeError):
    """The engine changed a run in memory without writing it (a defect; see `force_evict`)."""


@dataclass
class _Active:
    state: RunState
    plan: Plan
    record: RunRecord


class LocalBackend:
    """Runs pipelines in-process on a SQLite file; the default backend.

    Use as an async context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        registry: ActionRegistry | None = None,
        settings: Settings | None = None,
        *,
        db_path: str | Path | None = None,
        services: ServiceInvoker | None = None,
        publisher: Publisher | None = None,
        synchronous: Synchronous | None = None,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
        drive: bool = True,
    ) -> None:
        """Create the backend (nothing happens until `start()`).

        Args:
            registry: The actions; discovered from entry points when None.
            settings: Settings; read from the environment when None.
            db_path: The SQLite file; `settings.db_path` when None.
            services: The service invoker actions use; from settings when None.
            publisher: The publisher actions use; from settings when None.
            synchronous: SQLite's `synchronous` pragma (FULL survives power loss too);
                `settings.sqlite_synchronous` when None.
            clock: Wall-clock time source (tests may pass their own).
            store: A store to use instead of opening `db_path`.
            drive: False opens the database without driving runs (no resume, no timers, no
                executions): for tools that only record a cancel or an event while no
                engine runs. What they record is carried out by the next engine that drives.
        """
        self.drive = drive
        self.settings = settings or Settings()
        self.registry = registry if registry is not None else ActionRegistry.default()
        self.store = store or Store(
            db_path or self.settings.db_path,
            synchronous=synchronous or self.settings.sqlite_synchronous,
            # The engine writes on its event loop: a lock another process holds is waited
            # for briefly, then the write is tried again later (or the caller told 503),
            # never waited out on the loop. A tool that only records keeps the long wait.
            busy_timeout=LOOP_BUSY_TIMEOUT if drive else 10.0,
        )
        configure_template_limits(self.settings.template_limits())
        self._clock = clock
        self._logs = StepLogBook(
            self.store, self.settings.step_log_max_bytes, clock, self._told_entries
        )
        self._runner = Runner(
            self.registry,
            self.settings,
            self._submit,
            services=services,
            publisher=publisher,
            clock=clock,
            log_sink=self._logs.record,
        )
        self._timers = TimerService(self.store, self._timer_fired, clock)
        self._active: dict[str, _Active] = {}
        self._plans: dict[str, Plan] = {}
        self._inbox: dict[str, list[tuple[Input, Delivery | None]]] = {}
        self._flush_scheduled = False
        self._busy_retry = False
        self._accepting: list[_Accepting] = []
        self._waiters: dict[str, list[asyncio.Future[RunView]]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._entry_listeners: list[EntryListener] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Future[int] | None = None
        self._last_checkpoint = 0.0
        self._commits_since_checkpoint = 0
        self._started = False

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LocalBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the database, take it for this process and resume every unfinished run.

        Raises:
            EngineBusyError: another live engine process holds the database.
        """
        if self._started:
            return
        self.store.open()
        if self.drive:
            try:
                self.store.acquire_lock()
            except BaseException:
                self.store.close()
                raise
        self._started = True
        if not self.drive:
            return
        self.store.defer_checkpoints()
        self._timers.start()
        for run_id in self.store.run_ids("runs_with_running_units"):
            self._submit(run_id, Recover(), None)
        for run_id in self.store.run_ids("pending_runs"):
            self._submit(run_id, StartRun(), None)
        for delivery in eventlog.planned(self.store):
            self._dispatch_delivery(delivery)
        self._maintenance = asyncio.get_running_loop().create_task(
            self._maintain(), name="conveyor-maintenance"
        )

    async def stop(self) -> None:
        """Stop: apply what is already decided, cancel what runs (it resumes on restart)."""
        if not self._started:
            return
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
            self._checkpointing = None
        await self._timers.stop()
        await self._runner.stop()
        if self._inbox or self._accepting:
            self._flush()
        self._started = False
        if self.drive:
            self.store.release_lock()
        self.store.close()
        self._active.clear()

    # ------------------------------------------------------------ starting runs

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
        """Validate and start a run of `pipeline`; return its id.

        With an `idempotency_key` used before, return that first run's id and start nothing.
        `trigger` records what started the run (default: a request, `manual`).

        Raises:
            PipelineValidationError: the pipeline has errors (every one listed).
            ParamValidationError: the params do not fit the pipeline's parameters.
        """
        from conveyor.pipeline.params import resolve_pipeline_params

        self._require_started()
        if idempotency_key is not None:
            existing = self.store.run_for_key(idempotency_key)
            if existing is not None:
                return existing
        document = pipeline.model_dump(mode="json", exclude_none=True)
        digest = hashlib.sha256(
            json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        plan = self._plans.get(digest)
        if plan is None:
            # Validated and compiled once per pipeline version, and kept, so later runs skip
            # this. A large pipeline in a thread: thousands of steps take seconds, and the
            # engine's other runs go on meanwhile; a small one here, in less than the hop.
            if len(pipeline.steps) > _INLINE_PLAN_STEPS:
                plan = await asyncio.to_thread(self._checked_plan, pipeline)
            else:
                plan = self._checked_plan(pipeline)
            self._keep_plan(digest, plan)
        resolved = resolve_pipeline_params(pipeline, params or {})
        now = self._clock()
        state = RunState(
            run_id=new_id(),
            pipeline_name=pipeline.name,
            params=resolved,
            created_at=now,
        )
        with self.store.transaction():
            if idempotency_key is not None:
                existing = self.store.run_for_key(idempotency_key)
                if existing is not None:
                    return existing
            self.store.save_pipeline(digest, pipeline.name, pipeline.version, document)
            self.store.insert_run(
                state,
                digest,
                kind=kind,
                idempotency_key=idempotency_key,
                owner=owner,
                labels=dict(labels or {}),
                trigger=trigger,
            )
            record = self.store.run_record(state.run_id)
            active = _Active(state, plan, record)
            if not self.drive:
                # Recorded as PENDING: the engine that drives starts it when it sees it.
                return state.run_id
            commands = transition(plan, state, StartRun(), now)
            deliveries = self._persist(active, commands, now)
            entries = self._record(active, [], now)
            self._save(state)
        self._active[state.run_id] = active
        self._carry_out(active, commands, deliveries, entries, now)
        self._settle(state.run_id)
        return state.run_id

    async def retry(self, run_id: str, *, owner: str | None = None) -> str:
        """Start a new attempt of a failed, cancelled or timed-out run; return its id.

        Completed steps keep their outputs and do not run again; failed, cancelled, skipped
        and never-run steps run (skips are decided anew). The new run records `retry_of`.

        Raises:
            RunNotFoundError: no such run.
            RunStateError: the run is still running, or it completed.
        """
        self._require_started()
        old, record = self.store.load_state(run_id)
        if not old.status.is_terminal:
            raise RunStateError(run_id, f"is {old.status.value}; cancel it before retrying")
        if old.status is RunStatus.COMPLETED:
            raise RunStateError(run_id, "completed; there is nothing to retry")
        plan = self._plan(record.pipeline_hash)
        now = self._clock()
        state = RunState(
            run_id=new_id(),
            pipeline_name=old.pipeline_name,
            params=old.params,
            created_at=now,
        )
        for step_id, step in old.steps.items():
            if step.status is StepStatus.COMPLETED and step_id in plan.steps:
                state.steps[step_id] = kept = _copy_step(step)
                for unit in [kept, *(kept.items or [])]:
                    state.touch(unit)
        with self.store.transaction():
            self.store.insert_run(
                state,
                record.pipeline_hash,
                kind=record.kind,
                owner=owner if owner is not None else record.owner,
                labels=record.labels,
                retry_of=run_id,
            )
            active = _Active(state, plan, self.store.run_record(state.run_id))
            if not self.drive:
                self.store.save_state(state)
                return state.run_id
            commands = transition(plan, state, StartRun(), now)
            deliveries = self._persist(active, commands, now)
            entries = self._record(active, [], now)
            self._save(state)
        self._active[state.run_id] = active
        self._carry_out(active, commands, deliveries, entries, now)
        self._settle(state.run_id)
        return state.run_id

    def _checked_plan(self, pipeline: PipelineSpec) -> Plan:
        from conveyor.errors import PipelineValidationError
        from conveyor.pipeline.validation import validate_pipeline

        report = validate_pipeline(pipeline, self.registry)
        if report.errors:
            raise PipelineValidationError(report.errors)
        return self._compile(pipeline)

    def _compile(self, pipeline: PipelineSpec) -> Plan:
        metas = {step.action: self.registry.get(step.action).meta for step in pipeline.steps}
        return Plan.compile(pipeline, metas, max_for_each_items=self.settings.max_for_each_items)

    def _keep_plan(self, digest: str, plan: Plan) -> None:
        if len(self._plans) > 512:
            self._plans.pop(next(iter(self._plans)))
        self._plans[digest] = plan

    def _plan(self, digest: str, pipeline: PipelineSpec | None = None) -> Plan:
        plan = self._plans.get(digest)
        if plan is None:
            if pipeline is None:
                pipeline = PipelineSpec.model_validate(self.store.pipeline_document(digest))
            plan = self._compile(pipeline)
            self._keep_plan(digest, plan)
        return plan

    # ------------------------------------------------------------ reading runs

    async def get(self, run_id: str) -> RunView:
        """The run with its steps.

        Raises:
            RunNotFoundError: no such run.
        """
        return self.view(run_id)

    def view(self, run_id: str) -> RunView:
        """The run with its steps, synchronously.

        Raises:
            RunNotFoundError: no such run.
        """
        active = self._active.get(run_id)
        if active is not None:
            return self._view_of(active)
        state, record = self.store.load_state(run_id)
        plan = self._plan_or_none(record.pipeline_hash)
        order = list(plan.steps) if plan is not None else None
        return RunView.of(
            state,
            kind=record.kind,
            idempotency_key=record.idempotency_key,
            owner=record.owner,
            retry_of=record.retry_of,
            trigger=record.trigger,
            now=self._clock(),
            order=order,
        )

    def _view_of(self, active: _Active) -> RunView:
        record = active.record
        return RunView.of(
            active.state,
            kind=record.kind,
            idempotency_key=record.idempotency_key,
            owner=record.owner,
            retry_of=record.retry_of,
            trigger=record.trigger,
            now=self._clock(),
            order=list(active.plan.steps),
        )

    def _plan_or_none(self, digest: str) -> Plan | None:
        try:
            return self._plan(digest)
        except Exception:  # noqa: BLE001 - a view needs the plan only for the steps' order
            return None

    async def list_runs(
        self,
        *,
        status: list[str] | None = None,
        pipeline: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        trigger: str | None = None,
        trigger_id: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs matching the filters, newest first."""
        records = self.store.list_runs(
            status=status,
            pipeline=pipeline,
            owner=owner,
            kind=kind,
            trigger=trigger,
            trigger_id=trigger_id,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
        )
        return [_summary(record) for record in records]

    async def wait(self, run_id: str, timeout: float | None = None) -> RunView:
        """Wait until the run ends and return it.

        Raises:
            RunNotFoundError: no such run.
            TimeoutError: it did not end within `timeout` seconds.
        """
        view = self.view(run_id)
        if view.status.is_terminal:
            return view
        future: asyncio.Future[RunView] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None
        finally:
            waiters = self._waiters.get(run_id)
            if waiters and future in waiters:
                waiters.remove(future)

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(run_id)` after every committed change of a run; returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def subscribe_events(self, listener: Callable[[list[RunEvent]], None]) -> Callable[[], None]:
        """Call `listener(events)` with each committed batch of timeline entries of a run."""

        def told(run_id: str, at: float, entries: list[TimelineEntry]) -> None:
            listener([timeline.to_event(run_id, at, entry) for entry in entries])

        return self.subscribe_entries(told)

    def subscribe_entries(self, listener: EntryListener) -> Callable[[], None]:
        """Call `listener(run_id, at, entries)` with each committed batch of timeline entries.

        The entries are plain `(kind, step_id, index, data)` tuples, as stored: a listener
        called on every commit that needs only a few fields is spared building `RunEvent`s.
        """
        self._entry_listeners.append(listener)
        return lambda: self._entry_listeners.remove(listener)

    def _told_entries(self, run_id: str, at: float, entries: list[TimelineEntry]) -> None:
        """Tell listeners about entries committed outside a transition (step log lines)."""
        for listener in list(self._listeners):
            listener(run_id)
        for entry_listener in list(self._entry_listeners):
            entry_listener(run_id, at, entries)

    async def step_logs(
        self, run_id: str, step_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> list[RunEvent]:
        """The run's log lines (of one step, when given) after `after`, oldest first.

        Raises:
            RunNotFoundError: no such run.
        """
        self.store.run_record(run_id)
        return [
            timeline.to_event(run_id, at, (kind, step, index, data), seq)
            for seq, at, kind, step, index, data in read_logs(
                self.store, run_id, step_id, after, limit
            )
        ]

    async def timeline(self, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        """The run's timeline entries after sequence number `after`, oldest first.

        Raises:
            RunNotFoundError: no such run.
        """
        self.store.run_record(run_id)
        return [
            timeline.to_event(run_id, at, (kind, step_id, index, data), seq)
            for seq, at, kind, step_id, index, data in self.store.run_events(run_id, after, limit)
        ]

    # ------------------------------------------------------------ cancel and events

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run: running steps are cancelled and cleaned up.

        Raises:
            RunNotFoundError: no such run.
        """
        self._require_started()
        self.store.run_record(run_id)
        self._submit(run_id, CancelRun(reason), None)
        self._flush()
        return self.view(run_id)

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Accept an event: store it, then route it to the steps waiting on its id.

        Returns:
            How it was routed; it is committed before this returns.

        Raises:
            EventError: the event is not a JSON object or is malformed.
        """
        (receipt,) = await self.send_events([event])
        return receipt

    async def send_events(self, events: Sequence[Event | Mapping[str, Any]]) -> list[EventReceipt]:
        """Accept several events in one commit (all or none), routed as `send_event` does.

        Events sent by concurrent callers in the same turn of the event loop share one commit
        (each caller's events still all or none), as a request's events do.

        Raises:
            EventError: one of them is not a JSON object or is malformed; none is stored.
        """
        self._require_started()
        parsed = [
            e if isinstance(e, Event) else event_from_body(e, paths=self.settings.correlation_paths)
            for e in events
        ]
        accepted: asyncio.Future[list[EventReceipt]] = asyncio.get_running_loop().create_future()
        self._accepting.append((parsed, accepted))
        self._schedule_flush()
        return await accepted

    def _accept(self, accepting: list[_Accepting]) -> None:
        """Store and route the events of every waiting caller in one transaction."""
        now = self._clock()
        try:
            try:
                outcomes = self._store_events(accepting, now, guarded=False)
            except sqlite3.OperationalError:
                raise  # Locked or full: no transaction can commit now.
            except Exception:
                if len(accepting) == 1:
                    raise
                # Again, each caller in a savepoint: one caller's failure is its own.
                outcomes = self._store_events(accepting, now, guarded=True)
        except BaseException as exc:
            for _, accepted in accepting:
                if not accepted.done():
                    accepted.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._committed()
        for (parsed, accepted), outcome in zip(accepting, outcomes, strict=True):
            if isinstance(outcome, Exception):
                if not accepted.done():
                    accepted.set_exception(outcome)
                continue
            receipts = []
            for event, (status, deliveries) in zip(parsed, outcome, strict=True):
                for delivery in deliveries:
                    self._dispatch_delivery(delivery, event)
                receipts.append(
                    EventReceipt(
                        event_id=event.id,
                        correlation_id=event.correlation_id,
                        status=status,
                        deliveries=len(deliveries),
                    )
                )
            if not accepted.done():
                accepted.set_result(receipts)

    def _store_events(
        self, accepting: list[_Accepting], now: float, *, guarded: bool
    ) -> list[list[tuple[RouteStatus, list[Delivery]]] | Exception]:
        """Store every caller's events in one transaction: per caller, routes or its error.

        Unguarded, any failure rolls back everything and is raised; guarded, a caller whose
        events fail is rolled back alone (a savepoint each) and gets its error.
        """
        ttl = self.settings.event_ttl_seconds
        outcomes: list[list[tuple[RouteStatus, list[Delivery]]] | Exception] = []
        with self.store.transaction() as db:
            for parsed, _ in accepting:
                if guarded:
                    db.execute("SAVEPOINT accept")
                try:
                    outcomes.append([eventlog.accept(self.store, e, now, ttl) for e in parsed])
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:  # That caller's alone.
                    if not guarded:
                        raise
                    db.execute("ROLLBACK TO accept")
                    outcomes.append(exc)
                if guarded:
                    db.execute("RELEASE accept")
        return outcomes

    async def list_events(
        self, *, status: list[str] | None = None, limit: int = 50, offset: int = 0
    ) -> list[eventlog.StoredEvent]:
        """Stored events, newest first (`status=["unroutable", "expired"]` for the lost ones)."""
        return eventlog.list_events(self.store, status=status, limit=limit, offset=offset)

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """(running, waiting in line) per queue in this process."""
        return self._runner.queue_depths()

    # ------------------------------------------------------------ the transition loop

    def _submit(self, run_id: str, message: Input, tag: Delivery | None) -> None:
        self._inbox.setdefault(run_id, []).append((message, tag))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _timer_fired(self, run_id: str, step_id: str | None, index: int | None, at: float) -> None:
        self._submit(run_id, TimerFired(step_id, index, at), None)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._started:
            return
        if self._accepting:
            accepting, self._accepting = self._accepting, []
            self._accept(accepting)
        if not self._inbox:
            return
        batch, self._inbox = self._inbox, {}
        try:
            self._apply(batch)
        except DatabaseBusyError:
            # Another process holds the write lock: nothing was applied. The inputs go back
            # in front of any that arrived since, and are tried again shortly.
            for run_id, inputs in self._inbox.items():
                batch.setdefault(run_id, []).extend(inputs)
            self._inbox = batch
            if not self._busy_retry:
                self._busy_retry = True
                asyncio.get_running_loop().call_later(_BUSY_RETRY_SECONDS, self._retry_flush)
        except RunNotFoundError:
            pass  # An input for a run that no longer exists; nothing to apply.
        except Exception as exc:  # The engine must go on.
            for run_id in batch:  # A batch of one run: fail that run.
                log.exception("transition_failed", run_id=run_id)
                self._fail_internally(run_id, exc)

    def _retry_flush(self) -> None:
        self._busy_retry = False
        self._schedule_flush()

    def _fail_internally(self, run_id: str, exc: BaseException) -> None:
        """A transition raised (a defect, not a step failure): end the run FAILED, visibly.

        Leaving it as it was would leave it RUNNING forever with nobody told why.
        """
        self._active.pop(run_id, None)
        try:
            with self.store.transaction():
                state, _ = self.store.load_state(run_id)
                if state.status.is_terminal:
                    return
                state.status = RunStatus.FAILED
                state.error = f"internal error: {type(exc).__name__}: {exc}"
                state.finished_at = self._clock()
                state.run_dirty = True
                _close_open_steps(state, state.error, state.finished_at)
                self.store.save_state(state)
        except Exception:
            log.exception("internal_failure_not_recorded", run_id=run_id)
            return
        view = self.view(run_id)
        for future in self._waiters.pop(run_id, []):
            if not future.done():
                future.set_result(view)

    def _apply(self, batch: dict[str, list[tuple[Input, Delivery | None]]]) -> None:
        now = self._clock()
        try:
            # Whole, at first: a savepoint a run (two statements) was about a third of the
            # statements of an event's transitions, spent against what is a defect when it
            # happens.
            done, failed = self._transitions(batch, now, guarded=False)
        except Exception:
            if len(batch) == 1:
                raise  # _flush fails the run (or drops inputs of a run that is gone).
            # Rolled back, while the states in memory went ahead: read them again, and apply
            # each run in a savepoint of its own so the failing one cannot undo the others.
            for run_id in batch:
                self._active.pop(run_id, None)
            done, failed = self._transitions(batch, now, guarded=True)
        self._committed()
        for active, commands, deliveries, entries in done:
            self._carry_out(active, commands, deliveries, entries, now)
        for active, _, _, _ in done:
            self._settle(active.state.run_id)
        for run_id, exc in failed:
            self._fail_internally(run_id, exc)

    def _transitions(
        self, batch: dict[str, list[tuple[Input, Delivery | None]]], now: float, *, guarded: bool
    ) -> tuple[list[_Done], list[tuple[str, Exception]]]:
        """Apply and write the batch in one transaction; returns what to carry out.

        Unguarded, any failure rolls the whole batch back and is raised. Guarded, a run that
        fails is rolled back alone and returned with its error (a run that no longer exists is
        just dropped), and the others are committed.
        """
        done: list[_Done] = []
        failed: list[tuple[str, Exception]] = []
        with self.store.transaction() as db:
            for run_id, messages in batch.items():
                if guarded:
                    db.execute("SAVEPOINT run")
                try:
                    done.append(self._transition(run_id, messages, now))
                except Exception as exc:  # That run's alone.
                    if not guarded:
                        raise
                    db.execute("ROLLBACK TO run")
                    self._active.pop(run_id, None)
                    if not isinstance(exc, RunNotFoundError):
                        log.exception("transition_failed", run_id=run_id)
                        failed.append((run_id, exc))
                if guarded:
                    db.execute("RELEASE run")
        return done, failed

    def _transition(
        self, run_id: str, messages: list[tuple[Input, Delivery | None]], now: float
    ) -> _Done:
        """Apply one run's inputs and write what changed (in the current transaction)."""
        active = self._load(run_id)
        commands: list[Command] = []
        deliveries: list[Delivery] = []
        applied: list[TimelineEntry] = []
        for message, tag in messages:
            if isinstance(message, TimerFired):
                self.store.clear_fired_timer(run_id, message.step_id, message.index, message.at)
            produced = transition(active.plan, active.state, message, now)
            if tag is not None:
                eventlog.finish(self.store, tag)
                if isinstance(message, EventApplied):
                    applied.append(
                        timeline.event_applied(
                            message.step_id, message.index, tag.event_seq, message.result
                        )
                    )
            deliveries += self._persist(active, produced, now)
            commands += produced
        entries = self._record(active, applied, now)
        self._save(active.state)
        return active, commands, deliveries, entries

    def _save(self, state: RunState) -> None:
        """Write what changed in `state`; with `force_evict`, prove it is all that changed.

        The state machine marks the rows it changes; a change it does not mark stays in memory
        only, and shows only once the run is read back (after an eviction or a restart). The
        check reads the run back in the same transaction, so a difference fails the run at the
        transition that made it.
        """
        self.store.save_state(state)
        if self.settings.force_evict:
            stored, _ = self.store.load_state(state.run_id)
            difference = stored_difference(state, stored)
            if difference is not None:
                raise UncommittedStateError(
                    f"run {state.run_id}: the engine holds {difference} that is not stored"
                )

    def _committed(self) -> None:
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint >= _CHECKPOINT_COMMITS:
            self._checkpoint()  # A burst of commits would outrun the timed checkpoints.

    def _record(
        self, active: _Active, applied: list[TimelineEntry], now: float
    ) -> list[TimelineEntry]:
        """Append the transition's timeline entries in the current transaction."""
        state = active.state
        entries = applied + timeline.changes(state, active.plan.rank)
        if entries:
            run_id = state.run_id
            self.store.add_run_events(
                [
                    (run_id, now, kind, step, index, dumps(data))
                    for kind, step, index, data in entries
                ]
            )
        return entries

    def _load(self, run_id: str) -> _Active:
        active = self._active.get(run_id)
        if active is None:
            state, record = self.store.load_state(run_id)
            timeline.mark_seen(state)
            active = _Active(state, self._plan(record.pipeline_hash), record)
            self._active[run_id] = active
        return active

    def _persist(self, active: _Active, commands: list[Command], now: float) -> list[Delivery]:
        """Write the durable part of `commands` (waits, timers) in the current transaction."""
        run_id = active.state.run_id
        deliveries: list[Delivery] = []
        for command in commands:
            if isinstance(command, Watch):
                self.store.add_wait(
                    command.correlation_id, run_id, command.step_id, command.index, command.attempt
                )
                deliveries += eventlog.claim_pending(
                    self.store,
                    command.correlation_id,
                    run_id,
                    command.step_id,
                    command.index,
                    command.attempt,
                    now,
                )
            elif isinstance(command, Unwatch):
                self.store.remove_wait(
                    command.correlation_id, run_id, command.step_id, command.index
                )
            elif isinstance(command, SetTimer):
                self.store.set_timer(run_id, command.step_id, command.index, command.at)
            elif isinstance(command, ClearTimer):
                self.store.clear_timer(run_id, command.step_id, command.index)
        return deliveries

    def _carry_out(
        self,
        active: _Active,
        commands: list[Command],
        deliveries: list[Delivery],
        entries: list[TimelineEntry],
        now: float,
    ) -> None:
        """Act on committed commands."""
        state = active.state
        run_id = state.run_id
        finished = False
        for command in commands:
            if not self.drive and isinstance(command, Execute | SetTimer):
                continue  # Left to the engine that drives; the state already says RUNNING.
            if isinstance(command, Execute):
                self._runner.execute(run_id, command, state.params, _OutputsView(state))
            elif isinstance(command, Abort):
                self._runner.abort(run_id, command, state.params, _OutputsView(state))
            elif isinstance(command, SetTimer):
                self._timers.armed(run_id, command.step_id, command.index, command.at)
            elif isinstance(command, RunFinished):
                finished = True
        for delivery in deliveries:
            self._dispatch_delivery(delivery)
        if finished and run_id in self._waiters:
            # The final view is made now, while the state is in memory.
            final = self._view_of(active)
            for future in self._waiters.pop(run_id):
                if not future.done():
                    future.set_result(final)
        for listener in list(self._listeners):
            listener(run_id)
        if entries:
            for entry_listener in list(self._entry_listeners):
                entry_listener(run_id, now, entries)

    def _settle(self, run_id: str) -> None:
        """Drop a run from memory once nothing of it is in flight (it waits, or it ended)."""
        active = self._active.get(run_id)
        if active is None or run_id in self._inbox:
            return
        state = active.state
        if self.settings.force_evict or (
            state.running == 0 and not state.queue and not self._runner.busy(run_id)
        ):
            del self._active[run_id]

    def _dispatch_delivery(self, delivery: Delivery, event: Event | None = None) -> None:
        """Hand a planned delivery to the runner; `event` when in hand, else it is read."""
        if not self.drive:
            return  # Stays planned; the engine that drives makes it at its start.
        if event is None:
            stored = eventlog.get(self.store, delivery.event_seq)
            if stored is None:
                return
            event = Event(
                id=stored.id,
                type=stored.type,
                source=stored.source,
                data=stored.data,
                correlation_id=stored.correlation_id,
            )
        run_id, step_id, index = delivery.run_id, delivery.step_id, delivery.index

        def unit_view() -> UnitView | None:
            # Read when the runner takes the unit's turn, not now: an event before it may
            # have moved the unit on. The state loaded here stays for the transition after.
            try:
                active = self._active.get(run_id) or self._load(run_id)
                unit = active.state.unit(step_id, index)
                action = active.plan.steps[step_id].meta.type
            except (RunNotFoundError, KeyError, IndexError):
                return None
            outputs = unit.outputs if isinstance(unit.outputs, dict) else {}
            return UnitView(
                action, unit.status, unit.attempt, unit.external_id, outputs, unit.params or {}
            )

        self._runner.deliver(run_id, step_id, index, delivery.attempt, event, unit_view, delivery)

    # ------------------------------------------------------------ upkeep

    async def _maintain(self) -> None:
        """Take requests other processes left in the inbox; expire old buffered events."""
        # None: the first pass reads the inbox, which may hold requests left for an engine
        # that stopped before taking them.
        version: int | None = None
        last_expiry = 0.0
        while True:
            try:
                current = self.store.data_version()
                if current != version:
                    version = current
                    for kind, payload in self.store.take_inbox():
                        await self._handle_request(kind, payload)
                    # Runs another process recorded while this engine drives.
                    for run_id in self.store.run_ids("pending_runs"):
                        if run_id not in self._active and run_id not in self._inbox:
                            self._submit(run_id, StartRun(), None)
                now = self._clock()
                if now - last_expiry > _EXPIRY_SECONDS:
                    last_expiry = now
                    eventlog.expire(self.store, now)
                if now - self._last_checkpoint > _CHECKPOINT_SECONDS:
                    self._checkpoint()
            except DatabaseBusyError:
                pass  # Another process writes; the next pass does this.
            except Exception:
                log.exception("maintenance_failed")
            await asyncio.sleep(_MAINTENANCE_SECONDS)

    def _checkpoint(self) -> None:
        """Start a WAL checkpoint in a thread, unless one is under way."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._last_checkpoint = self._clock()
        self._commits_since_checkpoint = 0
        # In a thread: the checkpoint's file I/O must not pause the engine. `stop()` waits for
        # it before closing the store.
        self._checkpointing = asyncio.ensure_future(asyncio.to_thread(self.store.checkpoint))
        self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpointed(self, future: asyncio.Future[int]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("checkpoint_failed", error=str(future.exception()))
            return
        if self._started:
            try:
                self.store.finish_checkpoint()
            except Exception:
                log.exception("checkpoint_failed")

    async def _handle_request(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            if kind == "event":
                await self.send_event(payload)
            elif kind == "cancel":
                await self.cancel(payload["run_id"], payload.get("reason", "cancelled"))
            else:
                log.warning("unknown_request", kind=kind)
        except Exception:
            log.exception("request_failed", kind=kind)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the backend is not started: use `async with LocalBackend(...)`")


class _OutputsView(Mapping[str, Any]):
    """`step_outputs` for an executor: earlier steps' outputs, read when asked for."""

    def __init__(self, state: RunState) -> None:
        self._steps = state.steps

    def __getitem__(self, step_id: str) -> Any:
        step = self._steps[step_id]
        if step.outputs is None:
            raise KeyError(step_id)
        return step.outputs

    def __iter__(self) -> Any:
        return (key for key, step in self._steps.items() if step.outputs is not None)

    def __len__(self) -> int:
        return sum(1 for step in self._steps.values() if step.outputs is not None)


def _close_open_steps(state: RunState, reason: str, now: float) -> None:
    """Close every step a failed run left open, so none is shown pending or waiting.

    A unit that had started is FAILED; one that never ran is SKIPPED.
    """
    for step in state.steps.values():
        if step.status.is_terminal:
            continue
        for unit in [step, *(step.items or [])]:
            if unit.status.is_terminal:
                continue
            unit.status = StepStatus.FAILED if unit.attempt else StepStatus.SKIPPED
            unit.finished_at = now
            state.touch(unit)
        step.status = StepStatus.FAILED if step.attempt or step.items else StepStatus.SKIPPED
        step.reason = reason
        state.touch(step)


def _copy_step(step: StepState) -> StepState:
    copy = StepState.from_dict(step.to_dict())
    if step.items is not None:
        copy.items = [UnitState.from_dict(item.to_dict()) for item in step.items]
    return copy


def _summary(record: RunRecord) -> RunSummary:
    ts = as_datetime
    return RunSummary(
        run_id=record.id,
        pipeline=record.pipeline_name,
        kind=record.kind,
        status=record.status,
        error=record.error,
        created_at=ts(record.created_at),
        started_at=ts(record.started_at),
        finished_at=ts(record.finished_at),
        owner=record.owner,
        trigger=record.trigger,
    )
