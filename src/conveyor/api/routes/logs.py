"""Step logs over HTTP: what a run's steps wrote to `context.logger`, kept with the run.

Each line is also an event of kind `log` on the run's stream (`GET /runs/{id}/stream`).
Step logs are kept by the embedded engine; on Temporal these routes answer 501 (the lines go
to the workers' own logs).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from conveyor.api.deps import Reader, ServiceDep, visible_run
from conveyor.api.engine import embedded
from conveyor.api.errors import AUTHED, ApiError, responses
from conveyor.api.models import MAX_LIMIT
from conveyor.api.routes.runs import Timeline
from conveyor.api.service import Service
from conveyor.runs import RunEvent

router = APIRouter(prefix="/runs", tags=["runs"])

After = Annotated[int, Query(ge=0, le=2**62, description="Lines after this cursor.")]
LogLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT * 20, description="At most this many.")]


@router.get(
    "/{run_id}/logs",
    response_model=Timeline,
    summary="Read the log lines of a run's steps",
    responses=responses(*AUTHED, 404, 501),
)
async def run_logs(
    run_id: str,
    service: ServiceDep,
    principal: Reader,
    after: After = 0,
    limit: LogLimit = 1000,
) -> Timeline:
    """Every step's log lines, oldest first: `message`, `data.level`, the step and attempt.

    Each step keeps at most `CONVEYOR_STEP_LOG_MAX_BYTES` (64 KiB by default); a last line
    with `data.truncated` says when later lines were dropped.
    """
    await visible_run(service, principal, run_id)
    return await _page(service, run_id, None, after, limit)


@router.get(
    "/{run_id}/steps/{step_id}/logs",
    response_model=Timeline,
    summary="Read the log lines of one step",
    responses=responses(*AUTHED, 404, 501),
)
async def step_logs(
    run_id: str,
    step_id: str,
    service: ServiceDep,
    principal: Reader,
    after: After = 0,
    limit: LogLimit = 1000,
) -> Timeline:
    """The step's log lines (every item's, for a `for_each` step), oldest first."""
    view = await visible_run(service, principal, run_id)
    if not any(step.step_id == step_id for step in view.steps):
        raise ApiError(404, "not_found", f"run {run_id} has no step {step_id!r}")
    return await _page(service, run_id, step_id, after, limit)


async def _page(
    service: Service, run_id: str, step_id: str | None, after: int, limit: int
) -> Timeline:
    backend = embedded(service.engine, "step logs")
    items: list[RunEvent] = await backend.step_logs(run_id, step_id, after, limit)
    next_after = items[-1].seq if items else after
    return Timeline(items=items, after=after, limit=limit, next_after=next_after)
