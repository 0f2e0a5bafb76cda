"""Run a built-in action's executor the way the engine does: params validated, real context."""

from __future__ import annotations

from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
    ActionResult,
    EventContext,
    EventResult,
    definition_of,
    validated_params,
)
from conveyor.config import Settings


def make_context(
    action: object, *, settings: Settings | None = None, **params: Any
) -> ActionContext:
    """A context whose params went through the action's validation and defaults."""
    definition = definition_of(action)
    return ActionContext(
        step_id="step",
        execution_id="run-1",
        params=validated_params(definition.meta, params),
        action_type=definition.type,
        settings=settings,
    )


async def execute(
    action: object, *, settings: Settings | None = None, **params: Any
) -> ActionResult:
    """Validate `params`, then run a fresh executor of `action` on them."""
    definition: ActionDefinition = definition_of(action)
    context = make_context(action, settings=settings, **params)
    return await definition.new_executor().execute(context)


async def execute_raw(action: object, params: dict[str, Any]) -> ActionResult:
    """Run the executor on `params` as given, skipping validation (what a buggy caller sends)."""
    definition = definition_of(action)
    context = ActionContext(step_id="step", execution_id="run-1", params=params)
    return await definition.new_executor().execute(context)


async def deliver(
    action: object,
    event: dict[str, Any],
    *,
    event_type: str = "",
    params: dict[str, Any] | None = None,
    step_outputs: dict[str, Any] | None = None,
) -> EventResult:
    """Hand `event` to a fresh executor's `on_event`, as the engine does for a waiting step."""
    definition = definition_of(action)
    context = EventContext(
        step_execution_id="step-run-1",
        execution_id="run-1",
        external_workflow_id="wf-1",
        event_type=event_type,
        event_data=event,
        step_outputs=step_outputs or {},
        step_id="step",
        params=validated_params(definition.meta, params or {}) if params is not None else {},
    )
    return await definition.new_executor().on_event(context)
