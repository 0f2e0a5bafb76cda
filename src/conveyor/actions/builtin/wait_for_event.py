"""``wait_for_event``: wait for an external event that carries a correlation id.

The building block for webhooks and human approval: the step waits (durably, up to
`timeout_seconds`) for events whose correlation id is `correlation_id`, and decides about each:

1. a failure status (``FAILED``, ``FAILURE``, ``ERROR``) fails the step, with the event's message;
2. a numeric ``progress`` (at the top level or in ``payload``/``data``) records progress;
3. an event that satisfies `match` (every dotted path equal to its value) completes the step
   with the event as output; without `match`, an event completes it unless its status says
   the work is still going (any status other than a success one, such as ``RUNNING``);
4. anything else is ignored and the step keeps waiting.

The status is read at `status_path`, or by default at the first of ``status``,
``payload.status``, ``payload.content.status`` and ``data.status`` that is present.
"""

from __future__ import annotations

from typing import Any

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
    StepStatus,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import MISSING, describe_type, first_path, get_path

DEFAULT_TIMEOUT_SECONDS = 3600
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
STATUS_PATHS = ("status", "payload.status", "payload.content.status", "data.status")
PROGRESS_PATHS = ("progress", "payload.progress", "payload.content.progress", "data.progress")
MESSAGE_PATHS = (
    "message",
    "error",
    "payload.message",
    "payload.content.message",
    "payload.error",
    "data.message",
    "data.error",
)
FAILURE_STATUSES = frozenset({"FAILED", "FAILURE", "ERROR"})
SUCCESS_STATUSES = frozenset({"COMPLETED", "COMPLETE", "SUCCEEDED", "SUCCESS", "DONE", "OK"})


def _status(data: dict[str, Any], status_path: str | None) -> str | None:
    if status_path:
        value = get_path(data, status_path)
        found = None if value is MISSING else value
    else:
        hit = first_path(data, STATUS_PATHS)
        found = hit[1] if hit is not None else None
    return found.strip().upper() if isinstance(found, str) else None


def _progress(data: dict[str, Any]) -> float | None:
    hit = first_path(data, PROGRESS_PATHS)
    if hit is None:
        return None
    value = hit[1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(min(100.0, max(0.0, value)))


def _message(data: dict[str, Any]) -> str | None:
    hit = first_path(data, MESSAGE_PATHS)
    if hit is None or hit[1] in (None, ""):
        return None
    return hit[1] if isinstance(hit[1], str) else str(hit[1])


def _matches(data: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(get_path(data, path) == expected for path, expected in match.items())


class WaitForEventExecutor(BaseActionExecutor):
    """Waits on `correlation_id`; `on_event` decides what each event means."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Start waiting for events that carry the correlation id."""
        params = context.params
        correlation_id = params.get("correlation_id")
        if correlation_id is None or not str(correlation_id).strip():
            return ActionResult(success=False, error="correlation_id is required and empty")
        match = params.get("match")
        if match is not None and not isinstance(match, dict):
            return ActionResult(
                success=False,
                error=f"match must be a JSON object of dotted path to value, "
                f"got {describe_type(match)}",
            )
        timeout = params.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            return ActionResult(
                success=False, error=f"timeout_seconds must be a positive number, got {timeout!r}"
            )
        correlation = str(correlation_id)
        context.logger.info("waiting_for_event", correlation_id=correlation, timeout=timeout)
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=correlation,
            timeout_seconds=timeout,
            outputs={"correlation_id": correlation},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        """Fail, record progress, complete or ignore, in that order of precedence."""
        data = context.event_data if isinstance(context.event_data, dict) else {}
        params = context.params
        status_path = params.get("status_path") or None
        status = _status(data, str(status_path) if status_path else None)
        event_type = context.event_type or str(data.get("type") or "")
        outputs = {
            "correlation_id": context.external_workflow_id,
            "event": data,
            "event_type": event_type,
            "status": status,
        }
        if status in FAILURE_STATUSES:
            return EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.FAILED,
                outputs=outputs,
                error=_message(data) or f"the event reported status {status}",
            )
        progress = _progress(data)
        if progress is not None and status not in SUCCESS_STATUSES:
            return EventResult(
                action=EventAction.UPDATE_PROGRESS, progress=progress, message=_message(data)
            )
        match = params.get("match")
        if isinstance(match, dict) and match:
            done = _matches(data, match)
        else:
            done = status is None or status in SUCCESS_STATUSES
        if done:
            return EventResult(
                action=EventAction.COMPLETE, status=StepStatus.COMPLETED, outputs=outputs
            )
        return EventResult(action=EventAction.IGNORE)


META = ActionMeta(
    type="wait_for_event",
    version="1.0.0",
    name="Wait for event",
    description="Waits for an external event with the given correlation id (a webhook, a "
    "service's completion, a person's approval) and completes with it.",
    category="Control Flow",
    icon="⏳",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=True,
    params=[
        ParamDefinition(
            name="correlation_id",
            label="Correlation id",
            type=ParamType.STRING,
            required=True,
            description="The id the awaited events carry (e.g. in workflow_id).",
            placeholder="{{ steps.start.outputs.workflow_id }}",
            validation=ValidationRules(min_length=1),
        ),
        ParamDefinition(
            name="timeout_seconds",
            label="Timeout (seconds)",
            type=ParamType.NUMBER,
            default=DEFAULT_TIMEOUT_SECONDS,
            description="How long to wait before the step times out.",
            validation=ValidationRules(min=1, max=MAX_TIMEOUT_SECONDS),
        ),
        ParamDefinition(
            name="match",
            label="Match",
            type=ParamType.JSON,
            description="Complete only on an event where each dotted path has the given value, "
            'e.g. {"payload.event": "results"}; other events are ignored.',
            placeholder='{"type": "approval", "payload.approved": true}',
        ),
        ParamDefinition(
            name="status_path",
            label="Status path",
            type=ParamType.STRING,
            description="Where the event's status is (a dotted path); by default status, "
            "payload.status, payload.content.status or data.status.",
            placeholder="payload.content.status",
        ),
        ParamDefinition(
            name="form",
            label="Form",
            type=ParamType.JSON,
            description="A JSON schema of data a person submits: the wait is then also an "
            "input request of the HTTP API (see conveyor.human).",
            placeholder='{"type": "object", "properties": {"note": {"type": "string"}}}',
        ),
    ],
    outputs=[
        OutputDefinition(
            name="correlation_id", type="string", description="The correlation id waited on."
        ),
        OutputDefinition(name="event", type="object", description="The completing event's data."),
        OutputDefinition(name="event_type", type="string", description="Its type."),
        OutputDefinition(
            name="status", type="string", description="Its status, upper case, if it had one."
        ),
    ],
)


@register_action(META)
class WaitForEventAction:
    """The ``wait_for_event`` action."""

    meta = META
    executor_class = WaitForEventExecutor
