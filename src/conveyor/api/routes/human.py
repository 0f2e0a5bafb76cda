"""Human input over HTTP: list a run's open input requests, and answer one.

A request is open while an ``approval`` step (or a ``wait_for_event`` step with a ``form``)
waits. An answer is checked here first (the decision, and an approval's data against the form,
each problem named by its path), then delivered as an event through the engine, so it is
stored before it is applied. The same answer sent again (a double click) is answered as the
first was, with ``Idempotent-Replayed: true``; a different one after a decision is 409.

Who may answer: an owner named in the request's ``approvers`` (whoever's run it is, and only
they), or, when it names none, anyone whose key sees the run. The person is always the key's
owner (``decided_by``); a body cannot name another. Otherwise runs are isolated by owner as in
`conveyor.api.routes.runs`: another owner's run answers 404, unless a request in it is
addressed to the caller. `GET /requests` lists what the caller may answer, across runs.

On Temporal an answer is `accepted` by the run's event mailbox rather than routed at once;
the step acts on it as soon as the mailbox forwards it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from conveyor.actions import StepStatus
from conveyor.actions.builtin.approval import schema_problem
from conveyor.api.deps import Principal, Reader, ServiceDep, Writer
from conveyor.api.errors import AUTHED, ApiError, FieldError, not_found, responses
from conveyor.api.models import Limit, Offset, Page
from conveyor.api.service import Service
from conveyor.errors import RunNotFoundError
from conveyor.events import RouteStatus
from conveyor.human import (
    InputRequest,
    Submission,
    asks_for_input,
    decision_event,
    is_same_decision,
    named_approvers,
    open_requests,
    recorded_decision,
    request_of,
    step_actions,
    step_params,
    submission_problems,
)
from conveyor.runs import ItemView, RunView, StepView

router = APIRouter(tags=["human input"])

SCAN_LIMIT = 10_000
"""The most waiting runs `GET /requests` looks through for open requests."""
REPLAYED_HEADER = "Idempotent-Replayed"
"""Set (``true``) on the answer to a decision that repeats one already taken."""

OUTCOME_WAIT_SECONDS = 5.0
"""How long an answer waits for the step to act on the decision before saying it is queued."""

Index = Annotated[int, Path(ge=0, le=2**31, description="The item of a `for_each` step.")]


class SubmissionReceipt(BaseModel):
    """What happened to an answer."""

    run_id: str
    step_id: str
    index: int | None = None
    event_id: str = Field(description="The id of the event that carried the decision.")
    delivery: RouteStatus = Field(
        description="`routed` (delivered to the step) or, on Temporal, `accepted` (handed to "
        "the step's mailbox). The same answer sent again is answered as the first was, with "
        "the header `Idempotent-Replayed: true`."
    )
    decision: str
    decided_by: str
    step_status: StepStatus = Field(
        description="The step's (or item's) status after the decision: `completed`, `failed`, "
        "or still `waiting` when it has not acted on it yet (the answer is then 202)."
    )
    outputs: Any = None
    error: str | None = None


@router.get(
    "/runs/{run_id}/requests",
    response_model=Page[InputRequest],
    summary="List a run's open input requests",
    responses=responses(*AUTHED, 404),
)
async def list_requests(
    run_id: str, service: ServiceDep, principal: Reader, limit: Limit = 50, offset: Offset = 0
) -> Page[InputRequest]:
    """The run's steps (and items) waiting for a person's decision, in the pipeline's order.

    The run's owner sees them all; an owner named in `approvers` who cannot see the run sees
    the requests addressed to them (404 when there are none).
    """
    view = await service.engine.get(run_id)
    found = await _open_in(service, view)
    if not principal.can_see(view.owner):
        found = [r for r in found if principal.owner in r.approvers]
        if not found:
            raise not_found("run", run_id)
    return Page(items=found[offset : offset + limit], total=len(found), limit=limit, offset=offset)


class PendingRequest(InputRequest):
    """An open input request, with the run it belongs to."""

    run_id: str
    pipeline: str
    owner: str | None = Field(default=None, description="The run's owner.")


@router.get(
    "/requests",
    response_model=Page[PendingRequest],
    summary="List the open input requests you may answer",
    responses=responses(*AUTHED),
)
async def pending_requests(
    service: ServiceDep, principal: Reader, limit: Limit = 50, offset: Offset = 0
) -> Page[PendingRequest]:
    """Every open request the key's owner may decide ("my pending approvals").

    The runs waiting longest come first.

    That is each request naming the owner in `approvers`, whoever's run it is, and each
    request naming no approvers in a run the key can see (its owner's; every run for an
    admin key). Answer one at `POST /runs/{run_id}/requests/{step_id}`.
    """
    found: list[PendingRequest] = []
    for run_id in await service.engine.waiting_runs(SCAN_LIMIT):
        try:
            view = await service.engine.get(run_id)
        except RunNotFoundError:
            continue  # Gone since it was listed.
        for request in await _open_in(service, view):
            if may_decide(principal, view.owner, request):
                found.append(
                    PendingRequest(
                        **request.model_dump(),
                        run_id=view.run_id,
                        pipeline=view.pipeline,
                        owner=view.owner,
                    )
                )
    return Page(items=found[offset : offset + limit], total=len(found), limit=limit, offset=offset)


async def _open_in(service: Service, view: RunView) -> list[InputRequest]:
    units = [unit for step in view.steps for unit in (step, *(step.items or ()))]
    if not any(unit.status is StepStatus.WAITING for unit in units):
        return []  # Nothing can be open: the pipeline need not be read.
    document = await service.engine.pipeline_document(view.run_id)
    return open_requests(view, step_actions(document), step_params(document))


_ANSWER_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": SubmissionReceipt,
        "description": "Delivered; the step has not acted on it yet.",
    },
    **responses(*AUTHED, 400, 404, 409),
}


@router.post(
    "/runs/{run_id}/requests/{step_id}",
    response_model=SubmissionReceipt,
    summary="Answer a step's input request",
    responses=_ANSWER_RESPONSES,
)
async def answer_request(
    run_id: str,
    step_id: str,
    body: Submission,
    response: Response,
    service: ServiceDep,
    principal: Writer,
) -> SubmissionReceipt:
    """Approve or reject what the step asks; an approval's `data` must fit the request's form.

    Answers 200 once the step has acted on the decision, 202 if it has not within a few
    seconds. 404 when nothing is open for the step (yet), 409 when it no longer waits, 422
    naming each field of `data` that does not fit the form (nothing is delivered then).
    """
    return await _answer(service, principal, response, run_id, step_id, None, body)


@router.post(
    "/runs/{run_id}/requests/{step_id}/{index}",
    response_model=SubmissionReceipt,
    summary="Answer the input request of one item of a for_each step",
    responses=_ANSWER_RESPONSES,
)
async def answer_item_request(
    run_id: str,
    step_id: str,
    index: Index,
    body: Submission,
    response: Response,
    service: ServiceDep,
    principal: Writer,
) -> SubmissionReceipt:
    """As for a step, for item `index` of a `for_each` step."""
    return await _answer(service, principal, response, run_id, step_id, index, body)


async def _answer(
    service: Service,
    principal: Principal,
    response: Response,
    run_id: str,
    step_id: str,
    index: int | None,
    body: Submission,
) -> SubmissionReceipt:
    view = await service.engine.get(run_id)
    visible = principal.can_see(view.owner)
    try:
        unit, request = await _target(service, view, step_id, index)
    except ApiError:
        if not visible:
            raise not_found("run", run_id) from None
        raise
    named = request.approvers if request is not None else named_approvers(unit)
    if not visible and principal.owner not in named:
        # Not the owner's, nor addressed to this key's owner: as if there were no such run.
        raise not_found("run", run_id)
    if request is None:
        return _repeat_or_conflict(service, response, view, (step_id, index), unit, body, principal)
    if not may_decide(principal, view.owner, request):
        raise ApiError(
            403,
            "forbidden",
            f"only {', '.join(request.approvers)} may decide step {request.key}",
        )
    broken = schema_problem(request.form) if request.form is not None else None
    if broken is not None:
        # Only a wait_for_event's form gets here unchecked (an approval checks its own).
        raise ApiError(409, "conflict", f"the form of step {request.key} {broken}")
    problems = submission_problems(request, body)
    if problems:
        raise ApiError(
            422,
            "invalid_input",
            f"the data does not fit the form of step {request.key}",
            fields=[FieldError(path=path, message=message) for path, message in problems],
        )
    event = decision_event(request.correlation_id, body, decided_by=principal.owner)
    receipt = await service.engine.send_event(event)
    if receipt.status not in _DELIVERED:
        # Only when the step stopped waiting between the check above and the send (an engine
        # driven by another process); the event is kept, but no step will take it.
        raise ApiError(
            409, "conflict", f"step {request.key} stopped waiting before the decision arrived"
        )
    unit = await _after_decision(service, run_id, step_id, index, request.attempt)
    if unit.status is StepStatus.WAITING:
        response.status_code = 202
    delivery = receipt.status
    if delivery is RouteStatus.DUPLICATE:
        # This very answer was delivered before (a double click): answer as the first did.
        response.headers[REPLAYED_HEADER] = "true"
        delivery = _first_delivery(service)
    return SubmissionReceipt(
        run_id=run_id,
        step_id=step_id,
        index=index,
        event_id=event.id,
        delivery=delivery,
        decision=body.decision.value,
        decided_by=principal.owner,
        step_status=unit.status,
        outputs=unit.outputs if unit.status is not StepStatus.WAITING else None,
        error=unit.error,
    )


def may_decide(principal: Principal, run_owner: str | None, request: InputRequest) -> bool:
    """Whether `principal` may answer `request`: a named approver, or anyone who sees the run
    when the request names none."""
    if request.approvers:
        return principal.owner in request.approvers
    return principal.can_see(run_owner)


def _repeat_or_conflict(
    service: Service,
    response: Response,
    view: RunView,
    where: tuple[str, int | None],
    unit: StepView | ItemView,
    body: Submission,
    principal: Principal,
) -> SubmissionReceipt:
    """The answer to a decision for a unit that no longer waits: the first answer again when
    it repeats the decision the unit took, 409 otherwise."""
    step_id, index = where
    key = step_id if index is None else f"{step_id}[{index}]"
    recorded = recorded_decision(unit)
    if recorded is not None and unit.external_id is not None:
        if is_same_decision(recorded, body, principal.owner):
            response.headers[REPLAYED_HEADER] = "true"
            event = decision_event(unit.external_id, body, decided_by=principal.owner)
            return SubmissionReceipt(
                run_id=view.run_id,
                step_id=step_id,
                index=index,
                event_id=event.id,
                delivery=_first_delivery(service),
                decision=body.decision.value,
                decided_by=principal.owner,
                step_status=unit.status,
                outputs=unit.outputs,
                error=unit.error,
            )
        who = recorded.get("decided_by") or "someone"
        raise ApiError(
            409,
            "conflict",
            f"step {key} was already decided: {who} chose {recorded.get('decision')!r}"
            f"{_differs(recorded, body, principal.owner)}; a decision cannot be changed",
        )
    if unit.status.is_terminal:
        raise ApiError(
            409,
            "conflict",
            f"step {key} is {unit.status.value}; it no longer waits for input",
        )
    raise ApiError(404, "not_found", f"nothing is open for step {key} (it is {unit.status.value})")


def _differs(recorded: dict[str, Any], body: Submission, owner: str) -> str:
    """What of this answer differs from the decision taken, for the 409's message."""
    if recorded.get("decision") != body.decision.value:
        return ""
    if recorded.get("decided_by") != owner:
        return f" (this answer is {owner}'s)"
    return " with other data or comment"


def _first_delivery(service: Service) -> RouteStatus:
    """How a first answer's event is delivered on this service's backend."""
    return RouteStatus.ROUTED if service.engine.name == "local" else RouteStatus.ACCEPTED


_DELIVERED = (RouteStatus.ROUTED, RouteStatus.DUPLICATE, RouteStatus.ACCEPTED)
"""How a delivered answer's event is routed (Temporal's mailbox `accepted` it)."""


async def _target(
    service: Service, view: RunView, step_id: str, index: int | None
) -> tuple[StepView | ItemView, InputRequest | None]:
    """The unit asked about and the request it has open (None when none is open).

    Raises:
        ApiError: 404 when the step does not exist or never asks for input.
    """
    try:
        step = view.step(step_id)
    except KeyError:
        raise ApiError(404, "not_found", f"run {view.run_id} has no step {step_id!r}") from None
    document = await service.engine.pipeline_document(view.run_id)
    action = step_actions(document).get(step_id)
    written = step_params(document).get(step_id)
    if not asks_for_input(action, step, written):
        raise ApiError(404, "not_found", f"step {step_id!r} does not ask for input")
    assert action is not None
    unit = _unit(step, index)
    return unit, request_of(step, unit, action, written)


def _unit(step: StepView, index: int | None) -> StepView | ItemView:
    if step.items is None:
        if index is not None:
            raise ApiError(404, "not_found", f"step {step.step_id!r} has no items")
        return step
    if index is None:
        raise ApiError(
            404,
            "not_found",
            f"step {step.step_id!r} asks once per item: answer "
            f"/runs/{{run_id}}/requests/{step.step_id}/{{index}}",
        )
    if index >= len(step.items):
        raise ApiError(
            404,
            "not_found",
            f"step {step.step_id!r} has no item {index} (it has {len(step.items)})",
        )
    return step.items[index]


async def _after_decision(
    service: Service, run_id: str, step_id: str, index: int | None, attempt: int
) -> StepView | ItemView:
    """The unit once it has acted on the decision, or as it is after a short wait."""
    engine = service.engine
    with engine.watch(run_id) as changed:
        try:
            async with asyncio.timeout(OUTCOME_WAIT_SECONDS):
                while True:
                    changed.clear()
                    unit = _unit((await engine.get(run_id)).step(step_id), index)
                    if unit.status is not StepStatus.WAITING or unit.attempt != attempt:
                        return unit
                    await changed.wait()
        except TimeoutError:
            return _unit((await engine.get(run_id)).step(step_id), index)
