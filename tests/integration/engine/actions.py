"""Small real actions for exercising the engine: they record what happened to them."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionRegistry,
    ActionResult,
    BaseActionExecutor,
    EventAction,
    EventContext,
    EventResult,
    ExecutionMode,
    ParamDefinition,
    ParamType,
    StepStatus,
    register_action,
)


class Journal:
    """What the test actions did, shared by every executor instance of a test."""

    def __init__(self) -> None:
        self.executions: dict[str, int] = defaultdict(int)
        self.cleanups: list[str] = []
        self.concurrent = 0
        self.max_concurrent = 0
        self.by_queue: dict[str, int] = defaultdict(int)
        self.max_by_queue: dict[str, int] = defaultdict(int)
        self.started_at: dict[str, list[float]] = defaultdict(list)
        self.events: list[dict[str, Any]] = []


JOURNAL = Journal()


def _meta(type_: str, **kwargs: Any) -> ActionMeta:
    params = kwargs.pop("params", [])
    return ActionMeta(
        type=type_,
        version="1.0.0",
        name=type_,
        description=f"test action {type_}",
        category="Test",
        dynamic_outputs=True,
        params=[ParamDefinition(name="value", type=ParamType.JSON), *params],
        **kwargs,
    )


def _key(context: ActionContext) -> str:
    suffix = f"[{context.item_index}]" if context.item_index is not None else ""
    return f"{context.step_id}{suffix}"


class EchoExecutor(BaseActionExecutor):
    """Returns its params (and item) as outputs; optionally sleeps, tracking concurrency."""

    async def execute(self, context: ActionContext) -> ActionResult:
        key = _key(context)
        JOURNAL.executions[key] += 1
        JOURNAL.started_at[key].append(time.monotonic())
        queue = context.params.get("queue_name") or "default"
        JOURNAL.concurrent += 1
        JOURNAL.by_queue[queue] += 1
        JOURNAL.max_concurrent = max(JOURNAL.max_concurrent, JOURNAL.concurrent)
        JOURNAL.max_by_queue[queue] = max(JOURNAL.max_by_queue[queue], JOURNAL.by_queue[queue])
        try:
            for percent in context.params.get("progress") or []:
                await context.report_progress(percent, f"at {percent}")
                await asyncio.sleep(0.01)
            await asyncio.sleep(float(context.params.get("sleep") or 0))
        finally:
            JOURNAL.concurrent -= 1
            JOURNAL.by_queue[queue] -= 1
        return ActionResult(
            success=True,
            outputs={
                "value": context.params.get("value"),
                "item": context.item,
                "index": context.item_index,
                "attempt": context.attempt,
            },
        )

    async def cleanup(self, context: ActionContext) -> None:
        JOURNAL.cleanups.append(_key(context))


ECHO = _meta(
    "echo",
    idempotent=True,
    params=[
        ParamDefinition(name="sleep", type=ParamType.NUMBER),
        ParamDefinition(name="queue_name", type=ParamType.STRING),
        ParamDefinition(name="progress", type=ParamType.JSON),
        ParamDefinition(name="count", type=ParamType.NUMBER, validation={"max": 10}),
    ],
)


@register_action(ECHO)
class EchoAction:
    meta = ECHO
    executor_class = EchoExecutor


GPU_ECHO = ECHO.model_copy(update={"type": "gpu_echo", "queue": "gpu"})


@register_action(GPU_ECHO)
class GpuEchoAction:
    meta = GPU_ECHO
    executor_class = EchoExecutor


class FlakyExecutor(BaseActionExecutor):
    """Fails (raises) until attempt `succeed_on`; never succeeds when it is 0."""

    async def execute(self, context: ActionContext) -> ActionResult:
        key = _key(context)
        JOURNAL.executions[key] += 1
        JOURNAL.started_at[key].append(time.monotonic())
        succeed_on = int(context.params.get("succeed_on") or 0)
        if succeed_on and context.attempt >= succeed_on:
            return ActionResult(success=True, outputs={"attempt": context.attempt})
        if context.params.get("mode") == "result":
            return ActionResult(success=False, error=f"refused on attempt {context.attempt}")
        raise ValueError(f"boom on attempt {context.attempt}")


FLAKY = _meta(
    "flaky",
    params=[
        ParamDefinition(name="succeed_on", type=ParamType.NUMBER),
        ParamDefinition(name="mode", type=ParamType.STRING),
    ],
)


@register_action(FLAKY)
class FlakyAction:
    meta = FLAKY
    executor_class = FlakyExecutor


class AwaitExecutor(BaseActionExecutor):
    """Waits for events on `correlation_id`; completes, fails or reports progress by event."""

    async def execute(self, context: ActionContext) -> ActionResult:
        JOURNAL.executions[_key(context)] += 1
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=str(context.params["correlation_id"]),
            timeout_seconds=context.params.get("wait_seconds"),
            outputs={"started": True},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        JOURNAL.events.append({"step": context.step_id, "data": context.event_data})
        data = context.event_data
        if data.get("explode"):
            raise RuntimeError("cannot read this event")
        if "progress" in data:
            return EventResult(
                action=EventAction.UPDATE_PROGRESS, progress=data["progress"], message="working"
            )
        status = data.get("status")
        if status == "FAILED":
            return EventResult(
                action=EventAction.COMPLETE, status=StepStatus.FAILED, error=data.get("message")
            )
        if status == "COMPLETED":
            return EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.COMPLETED,
                outputs={"result": data.get("result")},
            )
        return EventResult(action=EventAction.IGNORE)

    async def cleanup(self, context: ActionContext) -> None:
        JOURNAL.cleanups.append(_key(context))


AWAIT = _meta(
    "await_event",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    params=[
        ParamDefinition(name="correlation_id", required=True),
        ParamDefinition(name="wait_seconds", type=ParamType.NUMBER),
    ],
)


@register_action(AWAIT)
class AwaitAction:
    meta = AWAIT
    executor_class = AwaitExecutor


class NapExecutor(BaseActionExecutor):
    """A durable sleep of `value` seconds."""

    async def execute(self, context: ActionContext) -> ActionResult:
        JOURNAL.executions[_key(context)] += 1
        return ActionResult(
            success=True, sleep_seconds=float(context.params["value"]), outputs={"slept": True}
        )

    async def on_event(self, context: EventContext) -> EventResult:
        return EventResult(action=EventAction.IGNORE)


NAP = _meta("nap", execution_mode=ExecutionMode.EVENT_DRIVEN)


@register_action(NAP)
class NapAction:
    meta = NAP
    executor_class = NapExecutor


def registry() -> ActionRegistry:
    """A registry with the test actions."""
    reg = ActionRegistry()
    for action in (EchoAction, GpuEchoAction, FlakyAction, AwaitAction, NapAction):
        reg.add(action)
    return reg
