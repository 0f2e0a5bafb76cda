"""Runs over HTTP: start, list, read (with steps and timeline), cancel, retry.

A run belongs to the owner of the key that started it; another owner's run answers 404, as one
that does not exist. Runs started by other means (the CLI, the Python API) have no owner and
are visible to admins only.

On Temporal, listing filters by status and creation time in Temporal's visibility store; by
pipeline, owner and kind here, from each workflow's memo; and the `total` is counted by
listing (up to `conveyor.api.engine.COUNT_CAP`).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel, BeforeValidator, Field

from conveyor.api import publishing
from conveyor.api.deps import Reader, ServiceDep, Writer, owner_filter, visible_run
from conveyor.api.errors import AUTHED, ApiError, FieldError, responses
from conveyor.api.models import MAX_LIMIT, Limit, Offset, Page
from conveyor.api.starting import IdempotencyKey, RunStart, public_view, resolve_start, scoped_key
from conveyor.engine.state import RunStatus
from conveyor.runs import ItemView, RunEvent, RunSummary, RunView, StepView, TriggerKind

router = APIRouter(prefix="/runs", tags=["runs"])

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


SHOWN_ITEMS = 100
"""How many items of a for_each step a run's view holds; the rest are paged."""


def _shown(view: RunView) -> RunView:
    """`view` as answered: the idempotency key as given, each step's first items only."""
    view = public_view(view)
    if not any(s.items is not None and len(s.items) > SHOWN_ITEMS for s in view.steps):
        return view
    steps = [
        s.model_copy(update={"items": s.items[:SHOWN_ITEMS]})
        if s.items is not None and len(s.items) > SHOWN_ITEMS
        else s
        for s in view.steps
    ]
    return view.model_copy(update={"steps": steps})


def _iso_only(value: object) -> object:
    # Pydantic also reads a bare number as Unix seconds; the API documents ISO 8601 only,
    # and `created_after=9` is far likelier a mistake than a date in 1970.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time, such as 2026-01-31T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


class CancelRequest(BaseModel):
    """Why the run is cancelled."""

    reason: str = Field(default="cancelled", max_length=1000)


class Timeline(BaseModel):
    """Entries of a run's timeline after a cursor, oldest first.

    A timeline only grows, so it is read by cursor: pass `next_after` as `after` to read on.
    """

    items: list[RunEvent]
    after: int
    limit: int
    next_after: int = Field(description="The cursor after the last entry returned.")


@router.post(
    "",
    status_code=201,
    response_model=RunView,
    summary="Start a run",
    responses={
        200: {"model": RunView, "description": "The idempotency key was used before: its run."},
        **responses(*AUTHED, 400, 404, 415),
    },
)
async def start_run(
    body: RunStart,
    response: Response,
    service: ServiceDep,
    principal: Writer,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> RunView:
    """Start a stored pipeline, an inline one, or one action; answers the new run (201).

    With an idempotency key used before (in the body or the `Idempotency-Key` header), nothing
    starts and the first run is answered (200).
    """
    key = body.idempotency_key or idempotency_key
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise ApiError(
            422,
            "validation_error",
            "the Idempotency-Key header and the body's idempotency_key differ",
            fields=[FieldError(path="idempotency_key", message="differs from the header")],
        )
    scoped = scoped_key(principal.owner, key) if key else None
    if scoped is not None and await service.engine.run_for_key(scoped) is not None:
        response.status_code = 200
    # In a thread: an inline pipeline is parsed and checked there, and may be large.
    spec, kind, origin = await asyncio.to_thread(resolve_start, service, principal, body)
    await publishing.check_start(service, body.callback_topics, body.webhooks)
    run_id = await service.engine.start_run(
        spec,
        body.params,
        idempotency_key=scoped,
        owner=principal.owner,
        labels={**body.labels, **origin},
        kind=kind,
    )
    publishing.attach(service, run_id, body.callback_topics, body.webhooks)
    return _shown(await service.engine.get(run_id))


@router.get(
    "",
    response_model=Page[RunSummary],
    summary="List runs",
    responses=responses(*AUTHED),
)
async def list_runs(
    service: ServiceDep,
    principal: Reader,
    status: Annotated[list[RunStatus] | None, Query(max_length=len(RunStatus))] = None,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[str | None, Query(max_length=50)] = None,
    trigger: Annotated[
        TriggerKind | None,
        Query(description="Only runs started so: manual, schedule, webhook or event."),
    ] = None,
    trigger_id: Annotated[
        str | None,
        Query(max_length=200, description="Only runs of this schedule, webhook or event trigger."),
    ] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only.")] = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunSummary]:
    """Runs, newest first, filtered by status (repeatable), pipeline name, kind, trigger and
    time."""
    filters: dict[str, Any] = {
        "pipeline": pipeline,
        "owner": owner if principal.is_admin else owner_filter(principal),
        "kind": kind,
        "trigger": trigger,
        "trigger_id": trigger_id,
        "created_after": _seconds(created_after),
        "created_before": _seconds(created_before),
    }
    statuses = [s.value for s in status] if status else None
    items = await service.engine.list_runs(status=statuses, **filters, limit=limit, offset=offset)
    count = await service.engine.count_runs(status=statuses, **filters)
    return Page(items=items, total=count, limit=limit, offset=offset)


@router.get(
    "/{run_id}",
    response_model=RunView,
    summary="Show a run with its steps",
    responses=responses(*AUTHED, 404),
)
async def get_run(run_id: str, service: ServiceDep, principal: Reader) -> RunView:
    """The run with its steps, progress and (while it runs) an estimate of time left."""
    return _shown(await visible_run(service, principal, run_id))


@router.get(
    "/{run_id}/steps",
    response_model=Page[StepView],
    summary="List a run's steps",
    responses=responses(*AUTHED, 404),
)
async def list_steps(
    run_id: str, service: ServiceDep, principal: Reader, limit: Limit = 50, offset: Offset = 0
) -> Page[StepView]:
    """The run's steps in the pipeline's order (upstream first)."""
    steps = _shown(await visible_run(service, principal, run_id)).steps
    return Page(items=steps[offset : offset + limit], total=len(steps), limit=limit, offset=offset)


@router.get(
    "/{run_id}/steps/{step_id}/items",
    response_model=Page[ItemView],
    summary="List a for_each step's items",
    responses=responses(*AUTHED, 404),
)
async def list_items(
    run_id: str,
    step_id: str,
    service: ServiceDep,
    principal: Reader,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ItemView]:
    """A for_each step's items in order, a page at a time."""
    view = await visible_run(service, principal, run_id)
    step = next((s for s in view.steps if s.step_id == step_id), None)
    if step is None or step.items is None:
        raise ApiError(404, "not_found", f"run {run_id} has no for_each step {step_id!r}")
    items = step.items
    return Page(items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset)


@router.get(
    "/{run_id}/timeline",
    response_model=Timeline,
    summary="Read a run's timeline",
    responses=responses(*AUTHED, 404),
)
async def get_timeline(
    run_id: str,
    service: ServiceDep,
    principal: Reader,
    after: Annotated[int, Query(ge=0, le=2**62, description="Entries after this cursor.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT * 10)] = 1000,
) -> Timeline:
    """Every status change, progress report and applied event of the run, oldest first."""
    await visible_run(service, principal, run_id)
    items = await service.engine.timeline(run_id, after=after, limit=limit)
    next_after = items[-1].seq if items else after
    return Timeline(items=items, after=after, limit=limit, next_after=next_after)


@router.post(
    "/{run_id}/cancel",
    response_model=RunView,
    summary="Cancel a run",
    responses=responses(*AUTHED, 400, 404, 409, 415),
)
async def cancel_run(
    run_id: str,
    service: ServiceDep,
    principal: Writer,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> RunView:
    """Cancel the run: running steps are cancelled and cleaned up.

    Cancelling a cancelled run answers it again; cancelling one that ended otherwise is 409.
    """
    view = await visible_run(service, principal, run_id)
    if view.status is RunStatus.CANCELLED:
        return _shown(view)
    if view.status.is_terminal:
        raise ApiError(
            409, "conflict", f"run {run_id} is {view.status.value}; it cannot be cancelled"
        )
    reason = body.reason if body is not None else "cancelled"
    return _shown(await service.engine.cancel(run_id, reason))


@router.post(
    "/{run_id}/retry",
    status_code=201,
    response_model=RunView,
    summary="Retry a run as a new run",
    responses=responses(*AUTHED, 404, 409),
)
async def retry_run(run_id: str, service: ServiceDep, principal: Writer) -> RunView:
    """Start a new run of a failed, cancelled or timed-out run; completed steps are kept."""
    await visible_run(service, principal, run_id)
    new_id = await service.engine.retry(run_id)
    publishing.inherit(service, new_id, run_id)
    return _shown(await service.engine.get(new_id))


def _seconds(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # A time without a zone is read as UTC.
    return value.timestamp()
