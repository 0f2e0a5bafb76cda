"""``log``: write a message to the run's log, bound to the run and step ids."""

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
    SelectOption,
    register_action,
)

LEVELS = ("debug", "info", "warning", "error")


class LogExecutor(BaseActionExecutor):
    """Logs `message` at `level` through the step's logger."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Log the message and echo it as outputs."""
        message = str(context.params.get("message", ""))
        level = str(context.params.get("level") or "info").lower()
        if level not in LEVELS:
            return ActionResult(
                success=False,
                error=f"level {level!r} is not one of {', '.join(LEVELS)}",
                outputs={"logged": False, "message": message, "level": level},
            )
        getattr(context.logger, level)("pipeline_log", message=message)
        return ActionResult(
            success=True, outputs={"logged": True, "message": message, "level": level}
        )


META = ActionMeta(
    type="log",
    version="1.0.0",
    name="Log",
    description="Writes a message to the run's log, tagged with the run and step ids.",
    category="Utility",
    icon="📝",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=30,
    params=[
        ParamDefinition(
            name="message",
            label="Message",
            type=ParamType.STRING,
            default="",
            description="The message to log; templates such as {{ params.name }} are rendered.",
        ),
        ParamDefinition(
            name="level",
            label="Log level",
            type=ParamType.SELECT,
            default="info",
            description="How severe the message is.",
            options=[SelectOption(label=level.capitalize(), value=level) for level in LEVELS],
        ),
    ],
    outputs=[
        OutputDefinition(name="logged", type="boolean", description="Whether it was logged."),
        OutputDefinition(name="message", type="string", description="The logged message."),
        OutputDefinition(name="level", type="string", description="The level it was logged at."),
    ],
)


@register_action(META)
class LogAction:
    """The ``log`` action."""

    meta = META
    executor_class = LogExecutor
