"""``fail``: fail the step with a message, e.g. in a branch that must not be taken."""

from __future__ import annotations

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    ValidationRules,
    register_action,
)

DEFAULT_MESSAGE = "Intentional failure"
DEFAULT_ERROR_CODE = "INTENTIONAL_FAILURE"


class FailExecutor(BaseActionExecutor):
    """Always returns a failed result carrying `message`."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Fail with the message."""
        message = str(context.params.get("message") or DEFAULT_MESSAGE)
        error_code = str(context.params.get("error_code") or DEFAULT_ERROR_CODE)
        return ActionResult(
            success=False, error=message, outputs={"message": message, "error_code": error_code}
        )


META = ActionMeta(
    type="fail",
    version="1.0.0",
    name="Fail",
    description="Fails the step with the given message.",
    category="Control Flow",
    icon="⛔",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=30,
    params=[
        ParamDefinition(
            name="message",
            label="Error message",
            type=ParamType.STRING,
            default=DEFAULT_MESSAGE,
            description="The error the step fails with; templates are rendered.",
            validation=ValidationRules(min_length=1),
        ),
        ParamDefinition(
            name="error_code",
            label="Error code",
            type=ParamType.STRING,
            default=DEFAULT_ERROR_CODE,
            description="A code for programs that handle the failure.",
            validation=ValidationRules(min_length=1),
        ),
    ],
    outputs=[
        OutputDefinition(name="message", type="string", description="The error message."),
        OutputDefinition(name="error_code", type="string", description="The error code."),
    ],
)


@register_action(META)
class FailAction:
    """The ``fail`` action."""

    meta = META
    executor_class = FailExecutor
