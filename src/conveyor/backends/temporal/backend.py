"""The Temporal backend: each run is a workflow on a Temporal cluster.

Same pipelines, same client API as the embedded engine; only the backend setting changes.
Workers (`conveyor worker`) run the workflows and the actions; this class is the client side.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from conveyor.actions import ActionRegistry, StepStatus
from conveyor.backends.temporal import names
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.errors import (
    EngineBusyError,
    PipelineValidationError,
    RunNotFoundError,
    RunStateError,
)
from conveyor.events import Event, EventReceipt, RouteStatus, event_from_body
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import MANUAL, RunEvent, RunSummary, RunTrigger, RunView

_STATUS = {
    WorkflowExecutionStatus.RUNNING: RunStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.RUNNING,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}
_TEMPORAL_STATUS = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Canceled",
    "timed_out": "TimedOut",
}


# How a query that no worker answered ends: refused at once when no poller was seen lately,
# or given up when one was but did not answer.
_NO_ANSWER = (
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
)


class NoWorkerError(EngineBusyError):
    """No workflow worker answered a query about a run (its view or timeline) in time."""

    def __init__(self, run_id: str, task_queue: str, waited: float) -> None:
        self.run_id = run_id
        self.task_queue = task_queue
        super().__init__(
            f"run {run_id}: no worker answered for its workflows (task queue {task_queue!r}) "
            f"within {waited:g}s; start one with `conveyor worker`"
        )


class TemporalBackend:
    """Runs pipelines as Temporal workflows.

    Args:
        registry: The actions, used to validate pipelines and to give workflows their metadata.
        settings: Address, namespace and task-queue prefix.
        client: A connected Temporal client to use instead of connecting.
        heartbeat_seconds: How soon a lost worker is noticed (activities heartbeat within it).
        query_timeout_seconds: How long reading a running run waits for a workflow worker to
            answer before `NoWorkerError`.
    """

    def __init__(
        self,
        registry: ActionRegistry | None = None,
        settings: Settings | None = None,
        *,
        client: Client | None = None,
        heartbeat_seconds: float = 30.0,
        query_timeout_seconds: float = 10.0,
    ) -> None:
        self.settings = settings or Settings()
        self.registry = registry if registry is not None else ActionRegistry.default()
        self._client = client
        self.heartbeat_seconds = heartbeat_seconds
        self.query_timeout_seconds = query_timeout_seconds

    @property
    def client(self) -> Client:
        """The connected Temporal client."""
        if self._client is None:
            raise RuntimeError("the backend is not started: use `async with TemporalBackend(...)`")
        return self._client

    async def start(self) -> None:
        """Connect to the cluster (TLS and API key as the settings say).

        Raises:
            TemporalConnectionError: the cluster cannot be reached or refused the connection,
                said in one line.
        """
        if self._client is None:
            from conveyor.backends.temporal.connection import connect

            self._client = await connect(self.settings)

    async def stop(self) -> None:
        """Nothing to release: runs live on the cluster."""

    async def __aenter__(self) -> TemporalBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ runs

    async def start_run(
        self,
        pipeline: PipelineSpec,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: Mapping[str, str] | None = None,
        kind: str = "pipeline",
        completed: Mapping[str, Any] | None = None,
        retry_of: str | None = None,
        trigger: RunTrigger | None = None,
    ) -> str:
        """Validate and start a run as a workflow; return its id.

        With an idempotency key used before, return that run's id: the workflow id is derived
        from the key and Temporal refuses a second workflow with it.
        """
        from conveyor.pipeline.params import resolve_pipeline_params
        from conveyor.pipeline.validation import validate_pipeline

        report = validate_pipeline(pipeline, self.registry)
        if report.errors:
            raise PipelineValidationError(report.errors)
        resolved = resolve_pipeline_params(pipeline, params or {})
        prefix = self.settings.temporal_task_queue_prefix
        if idempotency_key is not None:
            run_id = names.keyed_run_id(prefix, idempotency_key)
        else:
            run_id = f"{names.RUN_ID_PREFIX}{uuid.uuid4().hex}"
        metas = {
            step.action: self.registry.get(step.action).meta.model_dump(mode="json")
            for step in pipeline.steps
        }
        data = {
            "run_id": run_id,
            "pipeline": pipeline.model_dump(mode="json", exclude_none=True),
            "params": resolved,
            "metas": metas,
            "prefix": self.settings.temporal_task_queue_prefix,
            "created_at": datetime.now(UTC).timestamp(),
            "kind": kind,
            "owner": owner,
            "idempotency_key": idempotency_key,
            "retry_of": retry_of,
            "trigger": (trigger or MANUAL).model_dump(mode="json"),
            "completed": dict(completed or {}),
            "event_ttl_seconds": self.settings.event_ttl_seconds,
            "activity": {"heartbeat_seconds": self.heartbeat_seconds},
        }
        try:
            await self.client.start_workflow(
                names.RUN_WORKFLOW,
                data,
                id=run_id,
                task_queue=names.workflow_queue(self.settings.temporal_task_queue_prefix),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={
                    "pipeline": pipeline.name,
                    "owner": owner,
                    "kind": kind,
                    "labels": dict(labels or {}),
                    "trigger": (trigger or MANUAL).model_dump(mode="json"),
                },
            )
        except WorkflowAlreadyStartedError:
            if idempotency_key is None:
                raise
        return run_id

    def _handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(names.run_workflow_id(run_id))

    async def get(self, run_id: str) -> RunView:
        """The run with its steps.

        A closed run is read from what the cluster keeps (its result, its failure's details,
        or a cancelled run's memo), with no worker needed; a running one from a query, which a
        workflow worker answers.

        Raises:
            RunNotFoundError: Temporal does not know the run (never started, or past retention).
            NoWorkerError: the run is running and no workflow worker answered in time.
        """
        handle = self._handle(run_id)
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise RunNotFoundError(run_id) from exc
            raise
        closed = await self._closed_view(handle, described)
        if closed is not None:
            return RunView.model_validate(closed)
        return RunView.model_validate(await self._query(run_id, names.QUERY_VIEW))

    async def _query(self, run_id: str, query: str) -> Any:
        """Ask the run's workflow; a worker answers, within the query timeout."""
        try:
            return await self._handle(run_id).query(
                query, rpc_timeout=timedelta(seconds=self.query_timeout_seconds)
            )
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise RunNotFoundError(run_id) from exc
            if exc.status in _NO_ANSWER:
                raise NoWorkerError(
                    run_id,
                    names.workflow_queue(self.settings.temporal_task_queue_prefix),
                    self.query_timeout_seconds,
                ) from exc
            raise

    async def _closed_view(
        self, handle: WorkflowHandle[Any, Any], described: WorkflowExecutionDescription
    ) -> dict[str, Any] | None:
        """A closed run's final view, from what the cluster keeps (no worker needed)."""
        status = described.status
        if status is WorkflowExecutionStatus.COMPLETED:
            result: dict[str, Any] = await handle.result()
            return result
        if status is WorkflowExecutionStatus.FAILED:
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.details:
                    details: dict[str, Any] = cause.details[0]
                    return details
            return None
        if status is WorkflowExecutionStatus.CANCELED:
            memo = await described.memo()
            view = memo.get("view")
            return view if isinstance(view, dict) else None
        return None

    async def wait(self, run_id: str, timeout: float | None = None) -> RunView:
        """Wait for the run's workflow to close and return the run.

        Raises:
            RunNotFoundError: no such run.
            TimeoutError: it did not end within `timeout` seconds.
        """
        handle = self._handle(run_id)
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None
        except WorkflowFailureError:
            pass  # A failed or cancelled run: its view says how.
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFoundError(run_id) from exc
            raise
        return await self.get(run_id)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run through Temporal cancellation; cleanups run before it closes."""
        handle = self._handle(run_id)
        try:
            # Signals and the cancel request reach the workflow in the order they were sent.
            await handle.signal(names.SIGNAL_CANCEL_REASON, reason)
            await handle.cancel()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                view = await self.get(run_id)  # Raises RunNotFoundError when unknown.
                return view
            raise
        try:
            await asyncio.wait_for(handle.result(), 60)
        except (WorkflowFailureError, TimeoutError):
            pass
        return await self.get(run_id)

    async def retry(self, run_id: str, *, owner: str | None = None) -> str:
        """A new run of a failed run's pipeline that keeps its completed steps."""
        old = await self.get(run_id)
        if not old.status.is_terminal:
            raise RunStateError(run_id, f"is {old.status.value}; cancel it before retrying")
        if old.status is RunStatus.COMPLETED:
            raise RunStateError(run_id, "completed; there is nothing to retry")
        described = await self._handle(run_id).describe()
        memo = await described.memo()
        history_input = await self._first_input(run_id)
        pipeline = PipelineSpec.model_validate(history_input["pipeline"])
        completed: dict[str, Any] = {}
        for step in old.steps:
            if step.status is StepStatus.COMPLETED:
                completed[step.step_id] = _step_snapshot(step)
        return await self.start_run(
            pipeline,
            history_input["params"],
            owner=owner if owner is not None else memo.get("owner"),
            kind=memo.get("kind", "pipeline"),
            completed=completed,
            retry_of=run_id,
        )

    async def run_for_key(self, idempotency_key: str) -> str | None:
        """The run started with `idempotency_key`, if Temporal knows its workflow."""
        run_id = names.keyed_run_id(self.settings.temporal_task_queue_prefix, idempotency_key)
        try:
            await self._handle(run_id).describe()
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise
        return run_id

    async def pipeline_document(self, run_id: str) -> dict[str, Any]:
        """The pipeline the run runs, as the document its workflow was started with.

        Raises:
            RunNotFoundError: no such run.
        """
        try:
            data = await self._first_input(run_id)
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise RunNotFoundError(run_id) from exc
            raise
        document: dict[str, Any] = data["pipeline"]
        return document

    async def _first_input(self, run_id: str) -> dict[str, Any]:
        history = await self._handle(run_id).fetch_history()
        for event in history.events:
            attributes = event.workflow_execution_started_event_attributes
            if attributes.input.payloads:
                data: dict[str, Any] = self.client.data_converter.payload_converter.from_payloads(
                    attributes.input.payloads
                )[0]
                return data
        raise RunNotFoundError(run_id)

    async def timeline(self, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        """The run's timeline entries after `after`."""
        entries = await self._query(run_id, names.QUERY_TIMELINE)
        chosen = [e for e in entries if e["seq"] > after][:limit]
        return [_timeline_event(run_id, entry) for entry in chosen]

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
        """Runs matching the filters, newest first (from Temporal's visibility store).

        Only this deployment's runs (those on its task-queue prefix's workflow queue): another
        deployment sharing the namespace has runs, and owners, of its own.
        """
        queue = names.workflow_queue(self.settings.temporal_task_queue_prefix)
        clauses = [f"WorkflowType = '{names.RUN_WORKFLOW}'", f"TaskQueue = '{queue}'"]
        if status:
            wanted = [_TEMPORAL_STATUS[s] for s in status if s in _TEMPORAL_STATUS]
            if wanted:
                clauses.append("(" + " OR ".join(f"ExecutionStatus = '{s}'" for s in wanted) + ")")
        if created_after is not None:
            clauses.append(f"StartTime >= '{_iso(created_after)}'")
        if created_before is not None:
            clauses.append(f"StartTime < '{_iso(created_before)}'")
        found: list[RunSummary] = []
        skipped = 0
        async for execution in self.client.list_workflows(" AND ".join(clauses)):
            memo = await execution.memo()
            if pipeline is not None and memo.get("pipeline") != pipeline:
                continue
            if owner is not None and memo.get("owner") != owner:
                continue
            if kind is not None and memo.get("kind", "pipeline") != kind:
                continue
            started_by = RunTrigger.model_validate(memo.get("trigger") or {})
            if trigger is not None and started_by.kind != trigger:
                continue
            if trigger_id is not None and started_by.id != trigger_id:
                continue
            if skipped < offset:
                skipped += 1
                continue
            found.append(
                RunSummary(
                    run_id=execution.id,
                    pipeline=memo.get("pipeline", ""),
                    kind=memo.get("kind", "pipeline"),
                    status=_STATUS.get(
                        execution.status or WorkflowExecutionStatus.RUNNING, RunStatus.RUNNING
                    ),
                    created_at=execution.start_time,
                    started_at=execution.start_time,
                    finished_at=execution.close_time,
                    owner=memo.get("owner"),
                    trigger=started_by,
                )
            )
            if len(found) >= limit:
                break
        return found

    # ------------------------------------------------------------ events

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Signal the event's mailbox (starting it if needed); Temporal stores it first.

        The receipt says `accepted`: routing happens in the mailbox, which forwards the event to
        every step waiting on its id now, or keeps it for the first that starts waiting.
        """
        if not isinstance(event, Event):
            event = event_from_body(event, paths=self.settings.correlation_paths)
        payload = {**event.model_dump(mode="json"), "received_at": time.time()}
        correlation = event.correlation_id
        prefix = self.settings.temporal_task_queue_prefix
        mailbox = (
            names.mailbox_id(prefix, correlation)
            if correlation
            else names.unroutable_mailbox(prefix)
        )
        await self.client.start_workflow(
            names.MAILBOX_WORKFLOW,
            {
                "correlation_id": correlation,
                "ttl_seconds": self.settings.event_ttl_seconds,
            },
            id=mailbox,
            task_queue=names.workflow_queue(self.settings.temporal_task_queue_prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=names.SIGNAL_EVENT,
            start_signal_args=[payload],
        )
        return EventReceipt(
            event_id=event.id,
            correlation_id=correlation,
            status=RouteStatus.ACCEPTED if correlation else RouteStatus.UNROUTABLE,
        )

    async def send_events(self, events: Sequence[Event | Mapping[str, Any]]) -> list[EventReceipt]:
        """Send each event (see `send_event`), concurrently; receipts in the given order.

        Every event is checked before any is sent, so a malformed one sends none.
        """
        checked = [
            e if isinstance(e, Event) else event_from_body(e, paths=self.settings.correlation_paths)
            for e in events
        ]
        return list(await asyncio.gather(*(self.send_event(e) for e in checked)))

    async def pending_events(self, correlation_id: str) -> list[dict[str, Any]]:
        """Events kept for a correlation id nobody waits on yet."""
        handle = self.client.get_workflow_handle(
            names.mailbox_id(self.settings.temporal_task_queue_prefix, correlation_id)
        )
        try:
            pending: list[dict[str, Any]] = await handle.query(names.QUERY_PENDING)
        except RPCError:
            return []
        return pending


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _timeline_event(run_id: str, entry: dict[str, Any]) -> RunEvent:
    data = dict(entry.get("data") or {})
    known = {k: data.pop(k, None) for k in ("status", "attempt", "progress", "message", "error")}
    return RunEvent(
        seq=entry["seq"],
        run_id=run_id,
        at=datetime.fromtimestamp(entry["at"], tz=UTC),
        kind=entry["kind"],
        step_id=entry.get("step_id"),
        index=entry.get("index"),
        data=data or None,
        **known,
    )


def _step_snapshot(step: Any) -> dict[str, Any]:
    """The stored form of a completed step, for a retried run's workflow."""
    state = {
        "step_id": step.step_id,
        "status": step.status.value,
        "attempt": step.attempt,
        "params": step.params,
        "outputs": step.outputs,
        "error": step.error,
        "progress": step.progress,
        "started_at": step.started_at.timestamp() if step.started_at else None,
        "finished_at": step.finished_at.timestamp() if step.finished_at else None,
        "item_count": len(step.items) if step.items is not None else None,
        "next_item": len(step.items) if step.items is not None else 0,
    }
    items = None
    if step.items is not None:
        items = [
            {
                "step_id": step.step_id,
                "index": item.index,
                "status": item.status.value,
                "attempt": item.attempt,
                "outputs": item.outputs,
                "item": item.item,
                "progress": item.progress,
            }
            for item in step.items
        ]
    return {"step": state, "items": items}
