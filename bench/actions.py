"""The actions the workloads run: a no-op, a marker that records when it starts, and a wait."""

from __future__ import annotations

import asyncio
import time

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

NOOP_META = ActionMeta(
    type="bench_noop",
    version="1.0.0",
    name="No-op",
    description="Does nothing and succeeds.",
    category="Bench",
    idempotent=True,
)


class NoopExecutor(BaseActionExecutor):
    """Succeeds at once."""

    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(success=True)


@register_action(NOOP_META)
class NoopAction:
    meta = NOOP_META
    executor_class = NoopExecutor


STARTED_AT: dict[str, float] = {}
"""`time.perf_counter()` at the start of `bench_mark`'s `execute()`, by run id."""

STARTED: dict[str, asyncio.Future[float]] = {}
"""Futures a workload awaits, by run id: resolved with that time when `bench_mark` starts."""

MARK_META = NOOP_META.model_copy(
    update={
        "type": "bench_mark",
        "name": "Mark",
        "description": "Records when its execute() starts, then succeeds.",
    }
)


class MarkExecutor(BaseActionExecutor):
    """Records `time.perf_counter()` first thing, then succeeds."""

    async def execute(self, context: ActionContext) -> ActionResult:
        now = time.perf_counter()
        STARTED_AT[context.run_id] = now
        future = STARTED.pop(context.run_id, None)
        if future is not None and not future.done():
            future.set_result(now)
        return ActionResult(success=True)


@register_action(MARK_META)
class MarkAction:
    meta = MARK_META
    executor_class = MarkExecutor


WAIT_META = ActionMeta(
    type="bench_wait",
    version="1.0.0",
    name="Wait for an event",
    description="Waits for one event on its correlation id; the event completes it.",
    category="Bench",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=True,
    params=[ParamDefinition(name="correlation_id", type=ParamType.STRING, required=True)],
)


class WaitExecutor(BaseActionExecutor):
    """Starts waiting on `correlation_id`; the first event completes the step."""

    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=str(context.params["correlation_id"]),
        )

    async def on_event(self, context: EventContext) -> EventResult:
        return EventResult(action=EventAction.COMPLETE, status=StepStatus.COMPLETED)


@register_action(WAIT_META)
class WaitAction:
    meta = WAIT_META
    executor_class = WaitExecutor


def registry() -> ActionRegistry:
    """A registry with exactly the bench actions."""
    actions = ActionRegistry()
    for action in (NoopAction, MarkAction, WaitAction):
        actions.add(action)
    return actions
