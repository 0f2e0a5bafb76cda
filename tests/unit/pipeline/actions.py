"""Small test actions, for checking pipelines without the built-ins."""

from __future__ import annotations

from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
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
    RetryPolicy,
    SelectOption,
    ValidationRules,
)


class _Executor(BaseActionExecutor):
    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(success=True, outputs={})


class _EventExecutor(_Executor):
    async def on_event(self, context: EventContext) -> EventResult:
        return EventResult(action=EventAction.IGNORE)


def _meta(action_type: str, **fields: Any) -> ActionMeta:
    return ActionMeta(
        type=action_type,
        version="1.0.0",
        name=action_type.capitalize(),
        description=f"The {action_type} test action.",
        category="Test",
        **fields,
    )


EMIT = _meta(
    "emit",
    params=[
        ParamDefinition(
            name="count",
            type=ParamType.NUMBER,
            required=True,
            validation=ValidationRules(min=1, max=10),
        ),
        ParamDefinition(name="label", type=ParamType.STRING),
        ParamDefinition(
            name="mode",
            type=ParamType.SELECT,
            default="fast",
            options=[
                SelectOption(label="Fast", value="fast"),
                SelectOption(label="Slow", value="slow"),
            ],
        ),
    ],
    outputs=[OutputDefinition(name="value"), OutputDefinition(name="items")],
)
ECHO = _meta(
    "echo",
    params=[ParamDefinition(name="message", type=ParamType.STRING, required=True)],
    outputs=[OutputDefinition(name="message")],
)
DYNAMIC = _meta(
    "dynamic",
    dynamic_outputs=True,
    params=[ParamDefinition(name="values", type=ParamType.JSON, required=True)],
)
RENDER = _meta(
    "render",
    params=[
        ParamDefinition(name="input", type=ParamType.JSON),
        ParamDefinition(name="template", type=ParamType.TEMPLATE, required=True),
    ],
    outputs=[OutputDefinition(name="result")],
)
WAIT = _meta(
    "wait",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    params=[ParamDefinition(name="key", type=ParamType.STRING, required=True)],
    outputs=[OutputDefinition(name="event")],
)
BOUNDED_WAIT = _meta(
    "bounded_wait",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    timeout_seconds=60,
    params=[ParamDefinition(name="key", type=ParamType.STRING, required=True)],
)
SELF_TIMED_WAIT = _meta(
    "self_timed_wait",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    params=[ParamDefinition(name="timeout_seconds", type=ParamType.NUMBER, default=30)],
)
PATIENT = _meta("patient", retry_policy=RetryPolicy(max_attempts=5))

SYNC_METAS = (EMIT, ECHO, DYNAMIC, RENDER, PATIENT)
EVENT_METAS = (WAIT, BOUNDED_WAIT, SELF_TIMED_WAIT)


def definitions() -> list[ActionDefinition]:
    """Every test action."""
    return [ActionDefinition(meta, _Executor) for meta in SYNC_METAS] + [
        ActionDefinition(meta, _EventExecutor) for meta in EVENT_METAS
    ]


def document(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A pipeline document named ``test`` with `steps`."""
    return {"name": "test", "steps": list(steps), **fields}
