"""The activities: where executors run on a Temporal worker.

Every executor outcome, failure included, is returned as data: Temporal's own retries are kept
for a worker that died (a heartbeat that stopped), while the state machine decides about the
step's retries exactly as it does on the embedded engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from conveyor.actions import (
    ActionContext,
    ActionRegistry,
    ActionResult,
    EventAction,
    EventContext,
    EventResult,
    Publisher,
    ServiceInvoker,
    StepStatus,
)
from conveyor.backends.temporal import names
from conveyor.config import Settings
from conveyor.engine.values import checked_event_result, stored
from conveyor.errors import ConveyorError, UnstorableValueError


class ConveyorActivities:
    """The activities of one worker, bound to its registry, settings and client."""

    def __init__(
        self,
        registry: ActionRegistry,
        settings: Settings,
        client: Client,
        *,
        services: ServiceInvoker | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.client = client
        self.services = services
        self.publisher = publisher

    def for_queue(self) -> list[Any]:
        """The activities an action queue's worker serves."""
        return [self.execute, self.on_event, self.cleanup]

    def _context(
        self, data: dict[str, Any], handle: WorkflowHandle[Any, Any] | None
    ) -> ActionContext:
        step_id, index, attempt = data["step_id"], data.get("index"), data.get("attempt", 1)

        async def report(percent: float, message: str | None) -> None:
            if handle is not None:
                await handle.signal(
                    names.SIGNAL_PROGRESS,
                    {
                        "step_id": step_id,
                        "index": index,
                        "attempt": attempt,
                        "percent": percent,
                        "message": message,
                    },
                )

        return ActionContext(
            step_id=step_id,
            execution_id=data["run_id"],
            params=dict(data.get("params") or {}),
            workflow_params=dict(data.get("pipeline_params") or {}),
            step_outputs=dict(data.get("step_outputs") or {}),
            attempt=attempt,
            item=data.get("item"),
            item_index=index,
            action_type=data["action"],
            services=self.services,
            publisher=self.publisher,
            settings=self.settings,
            progress_sink=report,
        )

    @activity.defn(name=names.EXECUTE_ACTIVITY)
    async def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run `execute()` of one unit, heartbeating so a lost worker is noticed."""
        info = activity.info()
        handle = self.client.get_workflow_handle(info.workflow_id) if info.workflow_id else None
        context = self._context(data, handle)
        try:
            executor = self.registry.get(data["action"]).new_executor()
        except ConveyorError as exc:
            return {"ok": False, "error": str(exc), "kind": "invalid"}
        beat = asyncio.create_task(_heartbeat(float(data.get("heartbeat_seconds") or 30)))
        timeout = data.get("timeout_seconds")
        try:
            if timeout:
                limit = asyncio.timeout(float(timeout))
                try:
                    async with limit:
                        result = await executor.execute(context)
                except TimeoutError:
                    if not limit.expired():
                        raise
                    await _quietly(executor.cleanup(context))
                    return {
                        "ok": False,
                        "error": f"timed out after {timeout:g}s",
                        "kind": "timeout",
                    }
            else:
                result = await executor.execute(context)
        except asyncio.CancelledError:
            # Cancellation arrives through the heartbeat: the step was aborted.
            await _quietly(executor.cleanup(context))
            raise
        except ConveyorError as exc:
            return {"ok": False, "error": str(exc), "kind": "error"}
        except Exception as exc:  # noqa: BLE001 - any executor error is the step's failure
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "kind": "error"}
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if not isinstance(result, ActionResult):
            kind = type(result).__name__
            return {
                "ok": False,
                "error": f"execute() returned {kind}, not an ActionResult",
                "kind": "invalid",
            }
        try:
            # Checked here, as the embedded engine's state machine checks it: the JSON the
            # result crosses to the workflow in would turn `inf` into null on the way.
            outputs = stored(result.outputs, "outputs")
        except UnstorableValueError as exc:
            return {"ok": False, "error": str(exc), "kind": "invalid"}
        result = result.model_copy(update={"outputs": outputs})
        return {"ok": True, "result": result.model_dump(mode="json")}

    @activity.defn(name=names.ON_EVENT_ACTIVITY)
    async def on_event(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run `on_event()` for one event; an exception in it fails the step."""
        event = data["event"]
        context = EventContext(
            step_execution_id=f"{data['run_id']}:{data['step_id']}",
            execution_id=data["run_id"],
            external_workflow_id=data.get("external_id") or "",
            event_type=event.get("type", "event"),
            event_data=event.get("data") or {},
            step_outputs=data.get("outputs") or {},
            step_id=data["step_id"],
            params=data.get("params") or {},
            event_id=event.get("id"),
        )
        try:
            executor = self.registry.get(data["action"]).new_executor()
            result = await executor.on_event(context)
            if not isinstance(result, EventResult):
                raise TypeError(f"on_event() returned {type(result).__name__}, not an EventResult")
        except Exception as exc:  # noqa: BLE001 - an on_event error fails the step
            result = EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.FAILED,
                error=f"on_event failed: {type(exc).__name__}: {exc}",
            )
        return checked_event_result(result).model_dump(mode="json")

    @activity.defn(name=names.CLEANUP_ACTIVITY)
    async def cleanup(self, data: dict[str, Any]) -> None:
        """Call `cleanup()` for a unit that was stopped while it waited."""
        executor = self.registry.get(data["action"]).new_executor()
        await executor.cleanup(self._context(data, None))

    @activity.defn(name=names.SUBSCRIBE_ACTIVITY)
    async def subscribe(self, data: dict[str, Any]) -> None:
        """Subscribe a waiting unit to its correlation id's mailbox (starting the mailbox)."""
        await self.client.start_workflow(
            names.MAILBOX_WORKFLOW,
            {"correlation_id": data["correlation_id"], "ttl_seconds": data["ttl_seconds"]},
            id=names.mailbox_id(data["prefix"], data["correlation_id"]),
            task_queue=data["task_queue"],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=names.SIGNAL_SUBSCRIBE,
            start_signal_args=[
                {
                    "run_id": data["run_id"],
                    "step_id": data["step_id"],
                    "index": data.get("index"),
                    "attempt": data["attempt"],
                }
            ],
        )


HEARTBEAT_EVERY_SECONDS = 1.0
"""How often a running activity heartbeats, at most.

Temporal tells an activity it was cancelled only in the answer to a heartbeat, so this bounds
how long a cancel or a fail-fast takes to reach a running step (the embedded engine cancels at
once); the heartbeat timeout only bounds how soon a lost worker is noticed.
"""


async def _heartbeat(timeout: float) -> None:
    interval = max(0.2, min(HEARTBEAT_EVERY_SECONDS, timeout / 3))
    while True:
        activity.heartbeat()
        await asyncio.sleep(interval)


async def _quietly(work: Any) -> None:
    with contextlib.suppress(Exception):
        await work
