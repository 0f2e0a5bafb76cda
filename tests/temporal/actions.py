"""Test actions whose side effects are files, so they can be observed across processes.

A worker may run in another process (the worker-kill test), where the in-memory journal of
`tests.integration.engine.actions` cannot be read; these actions append lines to files named in
their params instead.
"""

from __future__ import annotations

import asyncio
import os
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
    ParamDefinition,
    ParamType,
    StepStatus,
    register_action,
)
from tests.integration.engine import actions as engine_actions


def note(path: str | None, line: str) -> None:
    """Append `line` to the file at `path` (nothing when no path is given)."""
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(line + "\n")


def first_time(path: str) -> bool:
    """Whether the file at `path` did not exist yet (it does now)."""
    try:
        Path(path).touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def lines(path: Path) -> list[str]:
    """The lines noted in `path` so far."""
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _meta(type_: str, params: list[ParamDefinition], **kwargs: object) -> ActionMeta:
    return ActionMeta.model_validate(
        {
            "type": type_,
            "version": "1.0.0",
            "name": type_,
            "description": f"test action {type_}",
            "category": "Test",
            "dynamic_outputs": True,
            "params": params,
            **kwargs,
        }
    )


class HoldExecutor(BaseActionExecutor):
    """Waits for an event on `correlation_id`; its cleanup() notes the step in `marker`."""

    async def execute(self, context: ActionContext) -> ActionResult:
        note(context.params.get("marker"), f"execute {context.step_id}")
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=str(context.params["correlation_id"]),
            outputs={"held": True},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        if context.event_data.get("status") == "COMPLETED":
            return EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.COMPLETED,
                outputs={"result": context.event_data.get("result")},
            )
        return EventResult(action=EventAction.IGNORE)

    async def cleanup(self, context: ActionContext) -> None:
        note(context.params.get("marker"), f"cleanup {context.step_id}")


HOLD = _meta(
    "hold",
    [
        ParamDefinition(name="correlation_id", required=True),
        ParamDefinition(name="marker", type=ParamType.STRING),
    ],
    execution_mode=ExecutionMode.EVENT_DRIVEN,
)


@register_action(HOLD)
class HoldAction:
    meta = HOLD
    executor_class = HoldExecutor


class GrindExecutor(BaseActionExecutor):
    """Works for `seconds`, noting its process id in `marker` when it starts.

    `grind` is idempotent, so a run whose worker died re-runs it on another worker;
    `grind_once` is not, so such a run fails it as interrupted.
    """

    async def execute(self, context: ActionContext) -> ActionResult:
        note(context.params.get("marker"), f"start {os.getpid()}")
        await asyncio.sleep(float(context.params.get("seconds") or 0))
        note(context.params.get("marker"), f"done {os.getpid()}")
        return ActionResult(success=True, outputs={"pid": os.getpid()})

    async def cleanup(self, context: ActionContext) -> None:
        note(context.params.get("marker"), f"cleanup {os.getpid()}")


GRIND = _meta(
    "grind",
    [
        ParamDefinition(name="seconds", type=ParamType.NUMBER),
        ParamDefinition(name="marker", type=ParamType.STRING),
    ],
    idempotent=True,
)


@register_action(GRIND)
class GrindAction:
    meta = GRIND
    executor_class = GrindExecutor


GRIND_ONCE = GRIND.model_copy(
    update={"type": "grind_once", "name": "grind_once", "idempotent": False}
)


@register_action(GRIND_ONCE)
class GrindOnceAction:
    meta = GRIND_ONCE
    executor_class = GrindExecutor


class FailsFirstExecutor(BaseActionExecutor):
    """Fails the first time it runs for a `marker` file (creating it), succeeds after."""

    async def execute(self, context: ActionContext) -> ActionResult:
        if first_time(str(context.params["marker"])):
            return ActionResult(success=False, error="failing the first time")
        return ActionResult(success=True, outputs={"attempt": context.attempt})


FAILS_FIRST = _meta("fails_first", [ParamDefinition(name="marker", required=True)])


@register_action(FAILS_FIRST)
class FailsFirstAction:
    meta = FAILS_FIRST
    executor_class = FailsFirstExecutor


def registry() -> ActionRegistry:
    """The built-in actions, the engine suite's test actions and these."""
    reg = ActionRegistry.default()
    for action in (
        *engine_actions.registry(),
        HoldAction,
        GrindAction,
        GrindOnceAction,
        FailsFirstAction,
    ):
        reg.add(action)
    return reg
