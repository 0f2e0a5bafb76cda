"""``set_output``: make the given values the step's outputs, to name or compute data once.

The values are the `values` param, or `outputs` (BudPipeline's name for it).
"""

from __future__ import annotations

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    ParamDefinition,
    ParamType,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type


class SetOutputExecutor(BaseActionExecutor):
    """Returns the `values` object as the step's outputs."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Check that `values` is an object and return it as outputs."""
        values = context.params.get("values", context.params.get("outputs"))
        if not isinstance(values, dict):
            return ActionResult(
                success=False,
                error=f"values (or outputs) must be a JSON object of output names to values, "
                f"got {describe_type(values)}",
            )
        bad = [name for name in values if not isinstance(name, str) or not name]
        if bad:
            return ActionResult(success=False, error=f"output names must be non-empty: {bad!r}")
        return ActionResult(success=True, outputs=dict(values))


META = ActionMeta(
    type="set_output",
    version="1.0.0",
    name="Set outputs",
    description=(
        "Makes the given values the step's outputs, so later steps can refer to them as "
        "steps.<id>.outputs.<name>."
    ),
    category="Data",
    icon="📤",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=30,
    dynamic_outputs=True,
    params=[
        ParamDefinition(
            name="values",
            label="Values",
            type=ParamType.JSON,
            description=(
                "A JSON object: each key becomes an output with its value. Values may be "
                'templates, e.g. {"total": "{{ steps.sum.outputs.result }}"}.'
            ),
            placeholder='{"name": "value"}',
        ),
        ParamDefinition(
            name="outputs",
            label="Outputs",
            type=ParamType.JSON,
            description="Another name for values (BudPipeline's); values wins when both are set.",
        ),
    ],
    outputs=[],
    documentation=(
        "The outputs are whatever keys `values` has, so the action declares none and sets "
        "dynamic_outputs: references to any output name of it pass validation."
    ),
)


@register_action(META)
class SetOutputAction:
    """The ``set_output`` action."""

    meta = META
    executor_class = SetOutputExecutor
