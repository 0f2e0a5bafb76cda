"""``approval``: wait, durably, for a person to approve or reject, with the data a form asks for.

The step opens a request (a title, a description and, optionally, a JSON schema of the data
the person must provide) and waits on a correlation id made from the run, the step (and item)
and the attempt, so the HTTP service finds it from the run alone and an answer meant for one
attempt never reaches a later one. A person's decision arrives as an event:

    {"decision": "approve" | "reject", "data": {...}, "comment": "...", "decided_by": "..."}

An approval whose data fits the form completes the step with ``decision``, ``data``,
``decided_by`` and ``comment``. A rejection fails the step (``on_reject: fail``, the default)
or completes it the same way (``on_reject: complete``), so a later condition can branch on
``decision``. An event that is not a valid decision is ignored: the request stays open. No
decision before ``timeout_seconds`` times the step out, like any other wait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import validator_for

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
    SelectOption,
    StepStatus,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type
from conveyor.errors import field_path

DECISIONS = ("approve", "reject")
DECISION_EVENT_TYPE = "conveyor.human.decision"
"""The type of the events that carry a person's decision."""
DEFAULT_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_TIMEOUT_SECONDS = 90 * 24 * 3600
CORRELATION_PREFIX = "human:"


def correlation_id(run_id: str, step_id: str, index: int | None, attempt: int) -> str:
    """The id an approval waits on: ``human:{run}:{step}:{attempt}`` (``step[i]`` for items)."""
    unit = step_id if index is None else f"{step_id}[{index}]"
    return f"{CORRELATION_PREFIX}{run_id}:{unit}:{attempt}"


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable JSON schema of a form, or None when it is."""
    if not isinstance(schema, dict):
        return f"must be a JSON schema object, got {describe_type(schema)}"
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = field_path(exc.absolute_path)
        return f"is not a valid JSON schema: {exc.message}" + (f" (at {where})" if where else "")
    return None


def form_problems(
    schema: Mapping[str, Any] | None, data: Any, prefix: str = "data"
) -> list[tuple[str, str]]:
    """Every way `data` breaks the form's `schema`, as (path, message), in document order.

    Paths start at `prefix` and read like the rest of the API's (``data.items[0].qty``); a
    missing required property is named by its own path, not its parent's.
    """
    if schema is None:
        return []
    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    found = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        path = field_path(error.absolute_path, prefix)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = _missing_name(error)
            if missing is not None:
                path = field_path([missing], path)
        found.append((path, error.message))
    return found


def _missing_name(error: ValidationError) -> str | None:
    names = error.validator_value if isinstance(error.validator_value, list) else []
    instance = error.instance if isinstance(error.instance, dict) else {}
    for name in names:
        if isinstance(name, str) and name not in instance and repr(name) in error.message:
            return name
    return None


def _approvers(value: Any) -> list[str] | str:
    """The approvers as a list of strings, or why they are not one."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return f"approvers must be a list of non-empty strings, got {describe_type(value)}"
    return list(value)


class ApprovalExecutor(BaseActionExecutor):
    """Opens the request and waits; `on_event` turns a valid decision into the step's end."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Check the form and approvers, then wait on the step's own correlation id."""
        params = context.params
        form = params.get("form")
        if form is not None and (problem := schema_problem(form)) is not None:
            return ActionResult(success=False, error=f"form {problem}")
        approvers = _approvers(params.get("approvers"))
        if isinstance(approvers, str):
            return ActionResult(success=False, error=approvers)
        timeout = params.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            return ActionResult(
                success=False, error=f"timeout_seconds must be a positive number, got {timeout!r}"
            )
        waits_on = correlation_id(
            context.run_id, context.step_id, context.item_index, context.attempt
        )
        opened = datetime.now(UTC)
        request = {
            "title": params.get("title") or context.step_id,
            "description": params.get("description"),
            "form": form,
            "approvers": approvers,
            "opened_at": opened.isoformat(),
            "expires_at": (opened + timedelta(seconds=timeout)).isoformat(),
        }
        context.logger.info("awaiting_approval", correlation_id=waits_on, timeout=timeout)
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=waits_on,
            timeout_seconds=timeout,
            outputs={"request": request},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        """Complete or fail on a valid decision; ignore anything else (the request stays open)."""
        data = context.event_data if isinstance(context.event_data, dict) else {}
        decision = data.get("decision")
        if decision not in DECISIONS:
            context.logger.warning("approval_event_ignored", reason="no decision")
            return EventResult(action=EventAction.IGNORE)
        submitted = data.get("data")
        submitted = {} if submitted is None else submitted
        decided_by = data.get("decided_by")
        comment = data.get("comment")
        params = context.params
        approvers = _approvers(params.get("approvers"))
        if isinstance(approvers, list) and approvers and decided_by not in approvers:
            context.logger.warning("approval_event_ignored", reason="not an approver")
            return EventResult(action=EventAction.IGNORE)
        if decision == "approve":
            form = params.get("form")
            if form is not None and form_problems(form, submitted):
                # The API checks the form before it sends; an event from elsewhere that does
                # not fit it must not decide the step.
                context.logger.warning("approval_event_ignored", reason="data does not fit")
                return EventResult(action=EventAction.IGNORE)
        outputs = {
            "decision": decision,
            "data": submitted,
            "decided_by": decided_by if isinstance(decided_by, str) else None,
            "comment": comment if isinstance(comment, str) else None,
        }
        if decision == "reject" and params.get("on_reject", "fail") == "fail":
            who = outputs["decided_by"] or "someone"
            reason = f": {outputs['comment']}" if outputs["comment"] else ""
            return EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.FAILED,
                outputs=outputs,
                error=f"rejected by {who}{reason}",
            )
        return EventResult(
            action=EventAction.COMPLETE, status=StepStatus.COMPLETED, outputs=outputs
        )


META = ActionMeta(
    type="approval",
    version="1.0.0",
    name="Approval",
    description="Waits for a person to approve or reject (through the HTTP API), optionally "
    "with data that a JSON schema form describes; completes with the decision.",
    category="Control Flow",
    icon="✋",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=True,
    params=[
        ParamDefinition(
            name="title",
            label="Title",
            type=ParamType.STRING,
            required=True,
            description="What the person is asked, in a few words.",
            placeholder="Deploy {{ params.version }} to production?",
            validation=ValidationRules(min_length=1, max_length=500),
        ),
        ParamDefinition(
            name="description",
            label="Description",
            type=ParamType.STRING,
            description="Details the person needs to decide.",
            validation=ValidationRules(max_length=20000),
        ),
        ParamDefinition(
            name="form",
            label="Form",
            type=ParamType.JSON,
            description="A JSON schema of the data an approval must carry; without one an "
            "approval carries any JSON object.",
            placeholder='{"type": "object", "required": ["ticket"], '
            '"properties": {"ticket": {"type": "string"}}}',
        ),
        ParamDefinition(
            name="approvers",
            label="Approvers",
            type=ParamType.JSON,
            description="The owners whose decision counts, as a list; anyone who can see the "
            "run when empty.",
            placeholder='["alice", "bob"]',
        ),
        ParamDefinition(
            name="on_reject",
            label="On reject",
            type=ParamType.SELECT,
            default="fail",
            description="What a rejection does: fail the step, or complete it with "
            "decision 'reject' so a later condition can branch on it.",
            options=[
                SelectOption(label="Fail the step", value="fail"),
                SelectOption(label="Complete the step", value="complete"),
            ],
        ),
        ParamDefinition(
            name="timeout_seconds",
            label="Timeout (seconds)",
            type=ParamType.NUMBER,
            default=DEFAULT_TIMEOUT_SECONDS,
            description="How long the request stays open before the step times out.",
            validation=ValidationRules(min=1, max=MAX_TIMEOUT_SECONDS),
        ),
    ],
    outputs=[
        OutputDefinition(name="decision", type="string", description="'approve' or 'reject'."),
        OutputDefinition(
            name="data", type="object", description="The data the person gave with the decision."
        ),
        OutputDefinition(
            name="decided_by", type="string", description="The owner of the key that decided."
        ),
        OutputDefinition(name="comment", type="string", description="The person's comment."),
        OutputDefinition(
            name="request",
            type="object",
            description="The request as it was open: title, description, form, approvers, "
            "opened_at, expires_at.",
        ),
    ],
)


@register_action(META)
class ApprovalAction:
    """The ``approval`` action."""

    meta = META
    executor_class = ApprovalExecutor
