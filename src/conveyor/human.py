"""Human input: the requests a run's waiting steps open for a person, and the events answering them.

A step asks a person for input while it waits and either is an ``approval`` step, or is a
``wait_for_event`` step whose params carry a ``form`` (the JSON schema of what the person
submits). Its request is found from the run's view alone; a person's answer is an ordinary
event on the step's correlation id, so it is stored before it is applied and applied once.

    requests = open_requests(view, step_actions(document))
    problems = submission_problems(request, submission)   # [] or (path, message) pairs
    event = decision_event(request.correlation_id, submission, decided_by="alice")

Only the human-input routes may speak for a person. An event from outside (``POST /events``,
CloudEvents, Dapr deliveries) could otherwise name an approval's correlation id and a
``decided_by`` of its choosing, so the ingress refuses everything in the decisions' namespace
(`reserved_problems`): a correlation id starting with ``human:``, a decision's event id or type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.actions import StepStatus
from conveyor.actions.builtin.approval import (
    CORRELATION_PREFIX,
    DECISION_EVENT_TYPE,
    form_problems,
)
from conveyor.events import Event
from conveyor.runs import ItemView, RunView, StepView

__all__ = [
    "APPROVAL",
    "WAIT_FOR_EVENT",
    "Decision",
    "InputRequest",
    "Submission",
    "asks_for_input",
    "decision_event",
    "is_same_decision",
    "named_approvers",
    "open_requests",
    "recorded_decision",
    "request_of",
    "reserved_problems",
    "step_actions",
    "step_params",
    "submission_problems",
]

APPROVAL = "approval"
WAIT_FOR_EVENT = "wait_for_event"


class Decision(StrEnum):
    """What a person decided."""

    APPROVE = "approve"
    REJECT = "reject"


class InputRequest(BaseModel):
    """A step (or one item of a `for_each` step) waiting for a person's decision."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    index: int | None = Field(default=None, description="The item, for a `for_each` step.")
    action: str
    title: str
    description: str | None = None
    form: dict[str, Any] | None = Field(
        default=None, description="The JSON schema the data of an approval must fit."
    )
    approvers: list[str] = Field(
        default_factory=list, description="The owners who may decide; anyone when empty."
    )
    attempt: int
    correlation_id: str
    opened_at: datetime | None = None
    expires_at: datetime | None = Field(
        default=None, description="When the step times out if nobody decides."
    )

    @property
    def key(self) -> str:
        """The unit it belongs to: `step` or `step[3]`."""
        return self.step_id if self.index is None else f"{self.step_id}[{self.index}]"


class Submission(BaseModel):
    """A person's answer to an input request."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    data: dict[str, Any] = Field(
        default_factory=dict, description="The data the form asks for (checked on approve)."
    )
    comment: str | None = Field(default=None, max_length=10_000)


def step_actions(document: Mapping[str, Any]) -> dict[str, str]:
    """Each step's action type, by step id, from a stored pipeline document."""
    steps = document.get("steps")
    found: dict[str, str] = {}
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, Mapping) and isinstance(step.get("id"), str):
            found[step["id"]] = str(step.get("action", ""))
    return found


def asks_for_input(action: str | None, step: StepView, document_params: Any = None) -> bool:
    """Whether a step of `action` is one that opens input requests."""
    if action == APPROVAL:
        return True
    return action == WAIT_FOR_EVENT and _wait_form(step, document_params) is not None


def request_of(
    step: StepView, unit: StepView | ItemView, action: str, document_params: Any = None
) -> InputRequest | None:
    """The request `unit` (the step itself or one of its items) has open, if it waits on one.

    Args:
        step: The step.
        unit: The step, or the item of it that is asked about.
        action: The step's action type.
        document_params: The step's params as the pipeline wrote them (where a `for_each`
            wait's form is read, since items' rendered params are not in a view).
    """
    if unit.status is not StepStatus.WAITING or not unit.external_id:
        return None
    index = unit.index if isinstance(unit, ItemView) else None
    opened = step.started_at if index is None else None
    expires = step.next_timer_at if index is None else None
    if action == APPROVAL:
        outputs = unit.outputs if isinstance(unit.outputs, dict) else {}
        request = outputs.get("request")
        if not isinstance(request, dict):
            return None  # Waiting, but not (yet) on a request it opened.
        return InputRequest(
            step_id=step.step_id,
            index=index,
            action=action,
            title=str(request.get("title") or step.step_id),
            description=request.get("description"),
            form=request.get("form"),
            approvers=list(request.get("approvers") or []),
            attempt=unit.attempt,
            correlation_id=unit.external_id,
            opened_at=request.get("opened_at") or opened,
            expires_at=expires or request.get("expires_at"),
        )
    form = _wait_form(step, document_params)
    if action != WAIT_FOR_EVENT or form is None:
        return None
    return InputRequest(
        step_id=step.step_id,
        index=index,
        action=action,
        title=f"Input for step {step.step_id}",
        form=form,
        attempt=unit.attempt,
        correlation_id=unit.external_id,
        opened_at=opened,
        expires_at=expires,
    )


def _wait_form(step: StepView, document_params: Any) -> dict[str, Any] | None:
    for params in (step.params, document_params):
        if isinstance(params, Mapping) and isinstance(params.get("form"), dict):
            form: dict[str, Any] = params["form"]
            return form
    return None


def open_requests(
    view: RunView,
    actions: Mapping[str, str],
    document_params: Mapping[str, Any] | None = None,
) -> list[InputRequest]:
    """Every open request of the run, in the steps' order (a step's items by index).

    Args:
        view: The run.
        actions: Each step's action type (`step_actions`).
        document_params: Each step's params as written in the pipeline, by step id.
    """
    found = []
    written = document_params or {}
    for step in view.steps:
        action = actions.get(step.step_id)
        if not asks_for_input(action, step, written.get(step.step_id)):
            continue
        assert action is not None
        units: list[StepView | ItemView] = list(step.items) if step.items is not None else [step]
        for unit in units:
            request = request_of(step, unit, action, written.get(step.step_id))
            if request is not None:
                found.append(request)
    return found


def step_params(document: Mapping[str, Any]) -> dict[str, Any]:
    """Each step's params as the pipeline wrote them, by step id."""
    steps = document.get("steps")
    return {
        step["id"]: step.get("params")
        for step in (steps if isinstance(steps, list) else [])
        if isinstance(step, Mapping) and isinstance(step.get("id"), str)
    }


def submission_problems(request: InputRequest, submission: Submission) -> list[tuple[str, str]]:
    """Every way an approval's data breaks the request's form, as (path, message).

    A rejection's data is kept as given: it need not fill in a form the person turned down.
    """
    if submission.decision is Decision.REJECT:
        return []
    return form_problems(request.form, submission.data)


def recorded_decision(unit: StepView | ItemView) -> dict[str, Any] | None:
    """The decision a step (or item) took, as its outputs keep it; None when it took none.

    An approval keeps it in its outputs; a ``wait_for_event`` keeps the event's data, whose
    keys are the same, under ``event``.
    """
    outputs = unit.outputs if isinstance(unit.outputs, dict) else {}
    for found in (outputs, outputs.get("event")):
        if isinstance(found, dict) and found.get("decision") in tuple(Decision):
            return found
    return None


def named_approvers(unit: StepView | ItemView) -> list[str]:
    """The approvers the unit's request named, open or already decided."""
    outputs = unit.outputs if isinstance(unit.outputs, dict) else {}
    request = outputs.get("request")
    approvers = request.get("approvers") if isinstance(request, dict) else None
    return [a for a in approvers if isinstance(a, str)] if isinstance(approvers, list) else []


def is_same_decision(recorded: Mapping[str, Any], submission: Submission, decided_by: str) -> bool:
    """Whether `submission` by `decided_by` is the decision already `recorded` (a repeat)."""
    return (
        recorded.get("decision") == submission.decision.value
        and (recorded.get("data") or {}) == submission.data
        and recorded.get("comment") == submission.comment
        and recorded.get("decided_by") == decided_by
    )


def decision_event(correlation_id: str, submission: Submission, decided_by: str) -> Event:
    """The event that carries a person's decision to the waiting step.

    Its id is derived from the correlation id and the submission, so sending the same answer twice
    (a retried request, a double click) applies it once. Besides the decision it carries a
    ``status`` (``COMPLETED`` or ``FAILED``) and ``message``, which is what a plain
    ``wait_for_event`` step reads.
    """
    rejected = submission.decision is Decision.REJECT
    data: dict[str, Any] = {
        "decision": submission.decision.value,
        "data": submission.data,
        "comment": submission.comment,
        "decided_by": decided_by,
        "status": "FAILED" if rejected else "COMPLETED",
    }
    if rejected:
        reason = f": {submission.comment}" if submission.comment else ""
        data["message"] = f"rejected by {decided_by}{reason}"
    return Event(
        id=_event_id(correlation_id, data),
        type=DECISION_EVENT_TYPE,
        source=f"conveyor.api:{decided_by}",
        data=data,
        correlation_id=correlation_id,
    )


def _event_id(correlation_id: str, data: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(
        json.dumps([correlation_id, data], sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    return f"{DECISION_EVENT_TYPE}:{digest}"


ANSWER_ROUTE = "/runs/{run_id}/requests/{step_id}"
"""Where a person's decision is sent (with the key that says who decides)."""


def reserved_problems(event: Event, correlation_path: str | None) -> list[tuple[str, str]]:
    """Why an event from outside may not be accepted, as (path, message); [] when it may.

    Args:
        event: The event as read from a request.
        correlation_path: Where in the request its correlation id was read from.
    """
    found = []
    where = f"decisions are sent to {ANSWER_ROUTE}, not as events"
    if event.correlation_id is not None and event.correlation_id.startswith(CORRELATION_PREFIX):
        found.append(
            (
                correlation_path or "correlation_id",
                f"correlation ids starting with {CORRELATION_PREFIX!r} belong to approval "
                f"steps; {where}",
            )
        )
    if event.id.startswith(f"{DECISION_EVENT_TYPE}:"):
        found.append(("id", f"ids starting with '{DECISION_EVENT_TYPE}:' are reserved; {where}"))
    if event.type == DECISION_EVENT_TYPE:
        found.append(("type", f"the type {DECISION_EVENT_TYPE!r} is reserved; {where}"))
    return found
