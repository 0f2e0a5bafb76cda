"""The Temporal workflows: a run driven by the same state machine as the embedded engine, and a
mailbox per correlation id that makes event routing safe.

`RunWorkflow` feeds `conveyor.engine.transition` with what happens (activity results, signals,
timers, cancellation) and carries out its commands as Temporal commands: executions become
activities on their queue's task queue, timers become durable workflow timers, waits become
subscriptions to a mailbox. There is no second copy of the DAG rules here.

Why a mailbox: an event names a correlation id, not a run, and it may arrive before the step that
waits for it has even started. Each correlation id has its own long-lived mailbox workflow
(id derived from the id). Senders signal it with signal-with-start, so the event is stored by
Temporal before the send returns; a waiting step subscribes to it the same way. The mailbox
forwards each event to every subscriber and keeps events nobody waits for yet (until their TTL)
for the first step that subscribes. Event ids seen before are dropped, so an event is applied
once even if it is sent twice.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from conveyor.actions import ActionMeta, ActionResult, EventResult
    from conveyor.backends.local import timeline
    from conveyor.backends.temporal import names
    from conveyor.engine import (
        Abort,
        CancelRun,
        ClearTimer,
        Command,
        EventApplied,
        Execute,
        ExecutionFailed,
        ExecutionFinished,
        FailureKind,
        Input,
        Plan,
        ProgressReported,
        RunState,
        RunStatus,
        SetTimer,
        StartRun,
        StepState,
        TimerFired,
        UnitState,
        Unwatch,
        Watch,
        transition,
    )
    from conveyor.pipeline.spec import PipelineSpec
    from conveyor.pipeline.template_limits import untimed
    from conveyor.runs import RunTrigger, RunView

UnitKey = tuple[str, int | None]

MEMO_VIEW_LIMIT = 1_000_000
"""Bytes of a view kept in a memo; Temporal refuses a memo over 2 MB by default."""


@workflow.defn(name=names.RUN_WORKFLOW)
class RunWorkflow:
    """One Conveyor run."""

    def __init__(self) -> None:
        self._inbox: deque[Input] = deque()
        self._state: RunState | None = None
        self._plan: Plan | None = None
        self._data: dict[str, Any] = {}
        self._timers: dict[UnitKey | None, asyncio.Task[None]] = {}
        self._running: dict[UnitKey, asyncio.Task[None]] = {}
        self._side: list[asyncio.Task[None]] = []
        self._deliveries: dict[UnitKey, deque[dict[str, Any]]] = {}
        self._timeline: list[dict[str, Any]] = []
        self._cancel_reason = "cancelled"

    # ------------------------------------------------------------ run

    @workflow.run
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Drive the run to its end; the result is the final run view."""
        self._data = data
        spec = PipelineSpec.model_validate(data["pipeline"])
        metas = {name: ActionMeta.model_validate(meta) for name, meta in data["metas"].items()}
        self._plan = Plan.compile(spec, metas)
        state = self._state = RunState(
            run_id=data["run_id"],
            pipeline_name=spec.name,
            params=data["params"],
            created_at=data["created_at"],
        )
        for step_id, step in (data.get("completed") or {}).items():
            kept = StepState.from_dict(step["step"])
            if step.get("items") is not None:
                kept.items = [UnitState.from_dict(item) for item in step["items"]]
            state.steps[step_id] = kept
        self._apply(StartRun())
        try:
            while not state.status.is_terminal:
                await workflow.wait_condition(lambda: bool(self._inbox))
                while self._inbox and not state.status.is_terminal:
                    self._apply(self._inbox.popleft())
        except asyncio.CancelledError:
            self._apply(CancelRun(self._cancel_reason))
            await self._finish_side_work()
            self._keep_cancelled_view()
            raise
        await self._finish_side_work()
        view = self._view()
        if state.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            # The workflow fails too, so Temporal's own status tells a failed run apart.
            raise ApplicationError(
                state.error or state.status.value,
                view,
                type=f"Run{state.status.value.title().replace('_', '')}",
                non_retryable=True,
            )
        return view

    def _keep_cancelled_view(self) -> None:
        """Put a cancelled run's final view in the memo, so it reads with no worker running.

        A closed run is read from its result (or its failure's details) without a worker; a
        cancellation carries neither, and a query needs a workflow worker even for a closed
        workflow. The memo is answered by the cluster alone. One over the memo's size limit
        would fail this workflow task, so such a view is left to the query.
        """
        view = self._view()
        if len(json.dumps(view)) <= MEMO_VIEW_LIMIT:
            workflow.upsert_memo({"view": view})

    async def _finish_side_work(self) -> None:
        """Let cleanups and unsubscriptions started by the last commands finish."""
        for task in list(self._timers.values()):
            task.cancel()
        pending = [t for t in self._side if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=60)

    # ------------------------------------------------------------ signals and queries

    @workflow.signal(name=names.SIGNAL_DELIVER)
    def deliver(self, delivery: dict[str, Any]) -> None:
        """An event for a unit that subscribed to its correlation id."""
        key: UnitKey = (delivery["step_id"], delivery.get("index"))
        line = self._deliveries.get(key)
        if line is None:
            line = self._deliveries[key] = deque()
            line.append(delivery)
            self._side_task(self._decide(key, line))
        else:
            line.append(delivery)

    @workflow.signal(name=names.SIGNAL_CANCEL_REASON)
    def cancel_reason(self, reason: str) -> None:
        """Why the cancellation that follows was asked for (Temporal's own carries no reason)."""
        self._cancel_reason = reason

    @workflow.signal(name=names.SIGNAL_PROGRESS)
    def progress(self, report: dict[str, Any]) -> None:
        """A running activity reported progress."""
        self._inbox.append(
            ProgressReported(
                report["step_id"],
                report.get("index"),
                report["attempt"],
                float(report["percent"]),
                report.get("message"),
            )
        )

    @workflow.query(name=names.QUERY_VIEW)
    def view(self) -> dict[str, Any]:
        """The run as `RunView` data."""
        return self._view()

    @workflow.query(name=names.QUERY_TIMELINE)
    def get_timeline(self) -> list[dict[str, Any]]:
        """The run's timeline entries."""
        return self._timeline

    def _view(self) -> dict[str, Any]:
        assert self._state is not None and self._plan is not None
        return RunView.of(
            self._state,
            kind=self._data.get("kind", "pipeline"),
            idempotency_key=self._data.get("idempotency_key"),
            owner=self._data.get("owner"),
            retry_of=self._data.get("retry_of"),
            trigger=RunTrigger.model_validate(self._data.get("trigger") or {}),
            now=workflow.now().timestamp(),
            order=list(self._plan.steps),
        ).model_dump(mode="json")

    # ------------------------------------------------------------ transitions

    def _apply(self, message: Input) -> None:
        state, plan = self._state, self._plan
        assert state is not None and plan is not None
        now = workflow.now().timestamp()
        with untimed():  # A replay must decide as the first run did.
            commands = transition(plan, state, message, now)
        for kind, step_id, index, data in timeline.changes(state, plan.rank):
            self._timeline.append(
                {
                    "seq": len(self._timeline) + 1,
                    "at": now,
                    "kind": kind,
                    "step_id": step_id,
                    "index": index,
                    "data": data,
                }
            )
        state.dirty.clear()
        state.run_dirty = False
        for command in commands:
            self._carry_out(command)

    def _carry_out(self, command: Command) -> None:
        if isinstance(command, Execute):
            key = (command.step_id, command.index)
            self._running[key] = asyncio.create_task(self._execute(command))
        elif isinstance(command, Abort):
            task = self._running.pop((command.step_id, command.index), None)
            if task is not None:
                # The activity calls the executor's cleanup() when its cancellation arrives;
                # the run does not close before that is done.
                task.cancel()
                self._side.append(task)
            else:
                self._side_task(self._cleanup(command))
        elif isinstance(command, Watch):
            self._side_task(self._subscribe(command))
        elif isinstance(command, Unwatch):
            self._side_task(self._unsubscribe(command))
        elif isinstance(command, SetTimer):
            timer = self._cancel_timer(command.step_id, command.index)
            self._timers[timer] = asyncio.create_task(self._timer(command))
        elif isinstance(command, ClearTimer):
            self._cancel_timer(command.step_id, command.index)

    def _cancel_timer(self, step_id: str | None, index: int | None) -> UnitKey | None:
        """Cancel the timer of a unit (of the run when `step_id` is None); returns its key."""
        key: UnitKey | None = (step_id, index) if step_id is not None else None
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        return key

    def _side_task(self, work: Any) -> None:
        self._side.append(asyncio.create_task(work))
        self._side = [task for task in self._side if not task.done()]

    def _meta(self, step_id: str) -> ActionMeta:
        assert self._plan is not None
        return self._plan.steps[step_id].meta

    def _queue(self, step_id: str) -> str:
        assert self._plan is not None
        return names.activity_queue(self._data["prefix"], self._plan.steps[step_id].queue)

    def _step_outputs(self) -> dict[str, Any]:
        assert self._state is not None
        return {
            step_id: step.outputs
            for step_id, step in self._state.steps.items()
            if step.outputs is not None
        }

    async def _execute(self, command: Execute) -> None:
        # Taken while running: when a worker evicts the run, this coroutine is closed outside
        # any event loop, where asking for the current task raises.
        me = asyncio.current_task()
        meta = self._meta(command.step_id)
        timeout = command.timeout_seconds
        options = self._data.get("activity", {})
        heartbeat = float(options.get("heartbeat_seconds", 30))
        try:
            outcome = await workflow.execute_activity(
                names.EXECUTE_ACTIVITY,
                {
                    "run_id": self._data["run_id"],
                    "step_id": command.step_id,
                    "index": command.index,
                    "attempt": command.attempt,
                    "action": command.action,
                    "params": command.params,
                    "item": command.item,
                    "timeout_seconds": timeout,
                    "pipeline_params": self._data["params"],
                    "step_outputs": self._step_outputs(),
                    "heartbeat_seconds": heartbeat,
                },
                task_queue=self._queue(command.step_id),
                # The step's own timeout is enforced inside the activity (so cleanup runs);
                # Temporal's only has to catch an activity that stopped answering.
                start_to_close_timeout=timedelta(
                    seconds=(timeout + 60) if timeout else float(options.get("max_seconds", 86400))
                ),
                heartbeat_timeout=timedelta(seconds=heartbeat),
                # Temporal retries only when a worker died (the activity reports every executor
                # error as data), and only actions that are safe to run twice.
                retry_policy=RetryPolicy(
                    maximum_attempts=3 if meta.idempotent else 1,
                    initial_interval=timedelta(milliseconds=200),
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                return
            detail = str(exc.cause) if exc.cause is not None else str(exc)
            if meta.idempotent:
                # Temporal already ran it again on other workers, as often as allowed.
                kind, error = FailureKind.ERROR, f"the worker running it was lost: {detail}"
            else:
                # The same words as the embedded engine's recovery: the step may have had
                # effects, so it is not run a second time.
                kind, error = (
                    FailureKind.INTERRUPTED,
                    f"interrupted: the worker running this step was lost ({detail}), and its "
                    f"action {meta.type!r} is not idempotent, so it was not run again",
                )
            self._inbox.append(
                ExecutionFailed(command.step_id, command.index, command.attempt, error, kind)
            )
            return
        except asyncio.CancelledError:
            return
        finally:
            if self._running.get((command.step_id, command.index)) is me:
                del self._running[(command.step_id, command.index)]
        if outcome.get("ok"):
            result = ActionResult.model_validate(outcome["result"])
            self._inbox.append(
                ExecutionFinished(command.step_id, command.index, command.attempt, result)
            )
        else:
            self._inbox.append(
                ExecutionFailed(
                    command.step_id,
                    command.index,
                    command.attempt,
                    outcome.get("error") or "the action failed",
                    FailureKind(outcome.get("kind") or "error"),
                )
            )

    async def _cleanup(self, command: Abort) -> None:
        try:
            await workflow.execute_activity(
                names.CLEANUP_ACTIVITY,
                {
                    "run_id": self._data["run_id"],
                    "step_id": command.step_id,
                    "index": command.index,
                    "attempt": command.attempt,
                    "action": command.action,
                    "params": command.params,
                    "pipeline_params": self._data["params"],
                },
                task_queue=self._queue(command.step_id),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError:
            workflow.logger.warning("cleanup of %s failed", command.step_id)

    async def _subscribe(self, command: Watch) -> None:
        await workflow.execute_local_activity(
            names.SUBSCRIBE_ACTIVITY,
            {
                "correlation_id": command.correlation_id,
                "run_id": self._data["run_id"],
                "step_id": command.step_id,
                "index": command.index,
                "attempt": command.attempt,
                "ttl_seconds": self._data.get("event_ttl_seconds", 86400),
                "prefix": self._data["prefix"],
                "task_queue": workflow.info().task_queue,
            },
            start_to_close_timeout=timedelta(seconds=30),
        )

    async def _unsubscribe(self, command: Unwatch) -> None:
        handle = workflow.get_external_workflow_handle(
            names.mailbox_id(self._data["prefix"], command.correlation_id)
        )
        try:
            await handle.signal(
                names.SIGNAL_UNSUBSCRIBE,
                {
                    "run_id": self._data["run_id"],
                    "step_id": command.step_id,
                    "index": command.index,
                },
            )
        except ApplicationError:
            pass  # The mailbox is gone already; nothing to unsubscribe from.

    async def _timer(self, command: SetTimer) -> None:
        delay = max(0.0, command.at - workflow.now().timestamp())
        await workflow.sleep(delay)
        self._inbox.append(TimerFired(command.step_id, command.index, command.at))

    async def _decide(self, key: UnitKey, line: deque[dict[str, Any]]) -> None:
        """Run on_event for a unit's deliveries one at a time, in arrival order."""
        state = self._state
        assert state is not None
        try:
            while line:
                delivery = line.popleft()
                step_id, index, attempt = key[0], key[1], delivery["attempt"]
                unit = state.unit(step_id, index)
                if unit.status.value != "waiting" or unit.attempt != attempt:
                    continue
                event = delivery["event"]
                try:
                    raw = await workflow.execute_activity(
                        names.ON_EVENT_ACTIVITY,
                        {
                            "run_id": self._data["run_id"],
                            "step_id": step_id,
                            "index": index,
                            "action": self._meta(step_id).type,
                            "external_id": unit.external_id,
                            "outputs": unit.outputs if isinstance(unit.outputs, dict) else {},
                            "params": unit.params or {},
                            "event": event,
                        },
                        task_queue=self._queue(step_id),
                        start_to_close_timeout=timedelta(minutes=5),
                        retry_policy=RetryPolicy(maximum_attempts=3),
                    )
                    result = EventResult.model_validate(raw)
                except ActivityError as exc:
                    result = EventResult.model_validate(
                        {
                            "action": "complete",
                            "status": "failed",
                            "error": f"on_event could not run: {exc.cause or exc}",
                        }
                    )
                self._inbox.append(EventApplied(step_id, index, attempt, result))
        finally:
            self._deliveries.pop(key, None)


@workflow.defn(name=names.MAILBOX_WORKFLOW)
class MailboxWorkflow:
    """The events of one correlation id, and the units waiting on it."""

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] = []
        self._seen: deque[str] = deque(maxlen=2000)
        self._subscribers: list[dict[str, Any]] = []
        self._outbox: deque[tuple[dict[str, Any], dict[str, Any]]] = deque()
        self._touched = False
        self._ttl: float | None = None

    @workflow.run
    async def run(self, data: dict[str, Any]) -> None:
        """Forward events until nobody has needed this mailbox for its TTL."""
        ttl = self._ttl = float(data.get("ttl_seconds", 86400))
        keep = int(data.get("keep", 1000))
        # Signals sent with the start are handled before this runs: merge, don't overwrite.
        carried = data.get("carried") or {}
        self._pending = carried.get("pending", []) + self._pending
        self._seen.extendleft(reversed(carried.get("seen", [])))
        self._subscribers = carried.get("subscribers", []) + self._subscribers
        while True:
            self._touched = False
            try:
                await workflow.wait_condition(
                    lambda: bool(self._outbox) or self._touched, timeout=timedelta(seconds=ttl)
                )
            except TimeoutError:
                pass
            while self._outbox:
                event, subscriber = self._outbox.popleft()
                await self._forward(event, subscriber)
            now = workflow.now().timestamp()
            self._pending = [e for e in self._pending if now - e["received_at"] < ttl][-keep:]
            if (
                not self._touched
                and not self._outbox
                and not self._pending
                and not self._subscribers
            ):
                return
            if workflow.info().get_current_history_length() > 4000:
                workflow.continue_as_new(
                    {
                        **data,
                        "carried": {
                            "pending": self._pending,
                            "seen": list(self._seen),
                            "subscribers": self._subscribers,
                        },
                    }
                )

    @workflow.signal(name=names.SIGNAL_EVENT)
    def event(self, event: dict[str, Any]) -> None:
        """An event for this correlation id."""
        self._touched = True
        if event["id"] in self._seen:
            return
        self._seen.append(event["id"])
        if not self._subscribers:
            # Kept from when the sender stored it, as the embedded engine counts the TTL.
            received = event.get("received_at") or workflow.now().timestamp()
            self._pending.append({**event, "received_at": received})
            return
        for subscriber in self._subscribers:
            self._outbox.append((event, subscriber))

    @workflow.signal(name=names.SIGNAL_SUBSCRIBE)
    def subscribe(self, subscriber: dict[str, Any]) -> None:
        """A unit started waiting on this correlation id: give it what came first."""
        self._touched = True
        self._subscribers = [s for s in self._subscribers if not _same_unit(s, subscriber)]
        self._subscribers.append(subscriber)
        now = workflow.now().timestamp()
        for event in self._pending:
            # The loop drops expired events only when it wakes; one may be older by now.
            if self._ttl is None or now - event["received_at"] < self._ttl:
                self._outbox.append((event, subscriber))
        self._pending = []

    @workflow.signal(name=names.SIGNAL_UNSUBSCRIBE)
    def unsubscribe(self, subscriber: dict[str, Any]) -> None:
        """A unit stopped waiting."""
        self._touched = True
        self._subscribers = [s for s in self._subscribers if not _same_unit(s, subscriber)]

    @workflow.query(name=names.QUERY_PENDING)
    def pending(self) -> list[dict[str, Any]]:
        """Events kept for a unit that has not subscribed yet."""
        return self._pending

    async def _forward(self, event: dict[str, Any], subscriber: dict[str, Any]) -> None:
        handle = workflow.get_external_workflow_handle(subscriber["run_id"])
        try:
            await handle.signal(
                names.SIGNAL_DELIVER,
                {
                    "event": {k: v for k, v in event.items() if k != "received_at"},
                    "step_id": subscriber["step_id"],
                    "index": subscriber.get("index"),
                    "attempt": subscriber["attempt"],
                },
            )
        except ApplicationError:
            # The run has ended: it will never wait again.
            self._subscribers = [
                s for s in self._subscribers if s["run_id"] != subscriber["run_id"]
            ]


def _same_unit(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["run_id"], a["step_id"], a.get("index")) == (
        b["run_id"],
        b["step_id"],
        b.get("index"),
    )
