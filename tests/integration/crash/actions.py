"""Actions for the crash tests; each execution (and each `on_event`) leaves a line in a log.

The log is how a test tells what ran, and how often, across engine processes that were
killed: one line a call, ``run_id step_id attempt time`` (``on_event`` in place of the attempt
for an event), appended with one `write()` to a file opened with O_APPEND so lines from a
process killed mid-way are whole or absent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
    OutputDefinition,
    ParamDefinition,
    ParamType,
    RetryPolicy,
    StepStatus,
    register_action,
)

ON_EVENT = "on_event"
RETRY_BACKOFF_SECONDS = 1.5
"""How long the `flaky` action's step waits between its failed first attempt and the second."""

_log_path: Path | None = None


def _record(run_id: str, step_id: str, attempt: int | str) -> None:
    if _log_path is None:
        raise RuntimeError("call build_registry(log_path) first")
    line = f"{run_id} {step_id} {attempt} {time.time():.6f}\n".encode()
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Call:
    """One line of the log."""

    run_id: str
    step_id: str
    attempt: int | None
    """None for an `on_event` call."""
    at: float


def read_log(path: Path) -> list[Call]:
    """Every call recorded in the log at `path` (none if it does not exist yet)."""
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        run_id, step_id, attempt, at = line.split()
        calls.append(
            Call(run_id, step_id, None if attempt == ON_EVENT else int(attempt), float(at))
        )
    return calls


def executions(calls: list[Call], run_id: str) -> Counter[str]:
    """How many times each step of the run was executed (`on_event` calls not counted)."""
    return Counter(c.step_id for c in calls if c.run_id == run_id and c.attempt is not None)


def events_handled(calls: list[Call], run_id: str) -> Counter[str]:
    """How many times `on_event` ran for each step of the run."""
    return Counter(c.step_id for c in calls if c.run_id == run_id and c.attempt is None)


_COUNT_PARAMS = [
    ParamDefinition(name="value", type=ParamType.NUMBER, default=0),
    ParamDefinition(name="sleep", type=ParamType.NUMBER, default=0),
    ParamDefinition(name="fail", type=ParamType.BOOLEAN, default=False),
]
_VALUE = [OutputDefinition(name="value", type="number")]


class _CountExecutor(BaseActionExecutor):
    async def execute(self, context: ActionContext) -> ActionResult:
        _record(context.run_id, context.step_id, context.attempt)
        if context.params["sleep"]:
            await asyncio.sleep(context.params["sleep"])
        if context.params["fail"]:
            return ActionResult(success=False, error="asked to fail")
        return ActionResult(success=True, outputs={"value": context.params["value"]})


def _count_meta(action_type: str, *, idempotent: bool) -> ActionMeta:
    return ActionMeta(
        type=action_type,
        version="1.0.0",
        name=action_type.replace("_", " ").capitalize(),
        description="Records its execution, sleeps `sleep` seconds and returns `value`.",
        category="test",
        idempotent=idempotent,
        params=_COUNT_PARAMS,
        outputs=_VALUE,
    )


@register_action(_count_meta("count", idempotent=True))
class Count(_CountExecutor):
    """Idempotent: a restarted engine runs it again if it was running at the crash."""


@register_action(_count_meta("count_once", idempotent=False))
class CountOnce(_CountExecutor):
    """Not idempotent: a restarted engine fails it as interrupted instead of re-running it."""


@register_action(
    ActionMeta(
        type="flaky",
        version="1.0.0",
        name="Flaky",
        description="Fails its first attempt and returns `value` on the next.",
        category="test",
        idempotent=True,
        params=[ParamDefinition(name="value", type=ParamType.NUMBER, default=0)],
        outputs=[*_VALUE, OutputDefinition(name="attempt", type="number")],
        retry_policy=RetryPolicy(max_attempts=3, initial_interval_seconds=RETRY_BACKOFF_SECONDS),
    )
)
class Flaky(BaseActionExecutor):
    """Fails on attempt 1, succeeds after."""

    async def execute(self, context: ActionContext) -> ActionResult:
        _record(context.run_id, context.step_id, context.attempt)
        if context.attempt == 1:
            return ActionResult(success=False, error="first attempts fail")
        return ActionResult(
            success=True, outputs={"value": context.params["value"], "attempt": context.attempt}
        )


@register_action(
    ActionMeta(
        type="await_event",
        version="1.0.0",
        name="Await event",
        description="Waits for an event with `correlation_id`; completes with its `value` "
        "(`on_event` takes `handle_sleep` seconds to decide).",
        category="test",
        execution_mode=ExecutionMode.EVENT_DRIVEN,
        idempotent=True,
        params=[
            ParamDefinition(name="correlation_id", required=True),
            ParamDefinition(name="handle_sleep", type=ParamType.NUMBER, default=0),
        ],
        outputs=[
            OutputDefinition(name="correlation_id", type="string"),
            OutputDefinition(name="value"),
        ],
    )
)
class AwaitEvent(BaseActionExecutor):
    """Event-driven: completes on the first event for its correlation id."""

    async def execute(self, context: ActionContext) -> ActionResult:
        _record(context.run_id, context.step_id, context.attempt)
        correlation_id = context.params["correlation_id"]
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=correlation_id,
            outputs={"correlation_id": correlation_id},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        _record(context.run_id, context.step_id, ON_EVENT)
        if context.params["handle_sleep"]:
            await asyncio.sleep(context.params["handle_sleep"])
        return EventResult(
            action=EventAction.COMPLETE,
            status=StepStatus.COMPLETED,
            outputs={"value": context.event_data.get("value")},
        )


@register_action(
    ActionMeta(
        type="nap",
        version="1.0.0",
        name="Nap",
        description="A durable sleep: the step completes when its timer fires.",
        category="test",
        execution_mode=ExecutionMode.EVENT_DRIVEN,
        idempotent=True,
        params=[ParamDefinition(name="seconds", type=ParamType.NUMBER, required=True)],
        outputs=[OutputDefinition(name="slept", type="number")],
    )
)
class Nap(BaseActionExecutor):
    """Asks the engine for a durable timer instead of sleeping in the executor."""

    async def execute(self, context: ActionContext) -> ActionResult:
        _record(context.run_id, context.step_id, context.attempt)
        seconds = context.params["seconds"]
        return ActionResult(success=True, sleep_seconds=seconds, outputs={"slept": seconds})

    async def on_event(self, context: EventContext) -> EventResult:
        return EventResult(action=EventAction.IGNORE)


def build_registry(log_path: str | Path) -> ActionRegistry:
    """The test actions, recording their calls in `log_path`."""
    global _log_path
    _log_path = Path(log_path)
    return ActionRegistry([Count, CountOnce, Flaky, AwaitEvent, Nap])
