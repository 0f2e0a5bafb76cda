"""``delay``: pause the step durably for a number of seconds.

The action does not sleep: it returns ``sleep_seconds`` and the engine arms a durable timer
that completes the step when it fires, so a delay of days survives restarts and holds no
worker. It is EVENT_DRIVEN because the step waits; it takes no events.
"""

from __future__ import annotations

import math

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    EventAction,
    EventContext,
    EventResult,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type

MAX_SECONDS = 30 * 24 * 3600


class DelayExecutor(BaseActionExecutor):
    """Asks the engine for a durable timer of `seconds`."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Return the sleep; the engine completes the step when it is over."""
        seconds = context.params.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return ActionResult(
                success=False, error=f"seconds must be a number, got {describe_type(seconds)}"
            )
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
            return ActionResult(
                success=False,
                error=f"seconds must be between 0 and {MAX_SECONDS} (30 days), got {seconds}",
            )
        return ActionResult(
            success=True, sleep_seconds=seconds, outputs={"delayed_seconds": seconds}
        )

    async def on_event(self, context: EventContext) -> EventResult:
        """Events do not end a delay: only its timer does."""
        return EventResult(action=EventAction.IGNORE)


META = ActionMeta(
    type="delay",
    version="1.0.0",
    name="Delay",
    description="Pauses for a number of seconds on a durable timer (up to 30 days), across "
    "restarts.",
    category="Control Flow",
    icon="⏱️",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=True,
    # A delay bounds its own wait (`seconds`, at most 30 days): it never waits forever.
    timeout_seconds=MAX_SECONDS + 3600,
    params=[
        ParamDefinition(
            name="seconds",
            label="Seconds",
            type=ParamType.NUMBER,
            required=True,
            description="How long to wait, in seconds (fractions allowed).",
            placeholder="60",
            validation=ValidationRules(min=0, max=MAX_SECONDS),
        ),
    ],
    outputs=[
        OutputDefinition(
            name="delayed_seconds", type="number", description="How long the step waited."
        ),
    ],
)


@register_action(META)
class DelayAction:
    """The ``delay`` action."""

    meta = META
    executor_class = DelayExecutor
