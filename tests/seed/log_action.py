"""BudPipeline's "Log Action" example, ported by changing its imports only.

The code below the imports is the example from the guide as written (it used SelectOption
without importing it; the import line now names it). Do not tidy it: it shows that an action
written for BudPipeline runs on Conveyor unchanged.
"""

import structlog

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    SelectOption,
    register_action,
)

logger = structlog.get_logger(__name__)


class LogExecutor(BaseActionExecutor):
    """Executor for log action."""

    async def execute(self, context: ActionContext) -> ActionResult:
        message = context.params.get("message", "")
        level = context.params.get("level", "info")

        # Log the message
        log_func = getattr(logger, level, logger.info)
        log_func("pipeline_log", message=message, step_id=context.step_id)

        return ActionResult(
            success=True,
            outputs={
                "logged": True,
                "message": message,
                "level": level,
            },
        )


META = ActionMeta(
    type="log",
    version="1.0.0",
    name="Log",
    description="Logs a message to the pipeline execution log",
    category="Control Flow",
    icon="📝",
    execution_mode=ExecutionMode.SYNC,  # Sync action
    idempotent=True,
    required_services=[],
    params=[
        ParamDefinition(
            name="message",
            label="Message",
            type=ParamType.STRING,
            required=True,
            description="The message to log",
        ),
        ParamDefinition(
            name="level",
            label="Log Level",
            type=ParamType.SELECT,
            default="info",
            options=[
                SelectOption(label="Debug", value="debug"),
                SelectOption(label="Info", value="info"),
                SelectOption(label="Warning", value="warning"),
                SelectOption(label="Error", value="error"),
            ],
        ),
    ],
    outputs=[
        OutputDefinition(name="logged", type="boolean", description="Whether logging succeeded"),
        OutputDefinition(name="message", type="string", description="The logged message"),
    ],
)


@register_action(META)
class LogAction:
    meta = META
    executor_class = LogExecutor
