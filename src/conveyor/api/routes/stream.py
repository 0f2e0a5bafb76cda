"""Live updates as Server-Sent Events: one run's timeline, or every run of the caller's owner.

Each timeline entry is one event: `id:` its seq, `event:` its kind (`run`, `step`,
`progress`, `event`, `log`: a line a step logged), `data:` the `RunEvent` as JSON. A client
that reconnects sends the last id it saw as `Last-Event-ID` (browsers do so on their own) and
gets only what came after. A comment line every 15 s while nothing happens keeps proxies from
closing an idle stream.

The seq is one sequence for the whole database, so the per-owner stream resumes the same way.
On Temporal a run's stream is read by polling its timeline (twice a second), and the per-owner
stream answers 501: Temporal has no sequence across runs to resume it by.
Visibility is checked before the stream starts: an unknown run, or another owner's, is a 404
with the usual error body, never an empty stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from conveyor.api.deps import Reader, ServiceDep, owner_filter, visible_run
from conveyor.api.engine import embedded
from conveyor.api.errors import AUTHED, responses
from conveyor.api.sse import owner_entries, run_entries
from conveyor.api.starting import public_view
from conveyor.backends.local import LocalBackend
from conveyor.runs import RunEvent, RunView

router = APIRouter(tags=["stream"])

END_EVENT = "end"
"""The `event:` of the last message of a run's stream: `data:` is the finished run."""

_MAX_SEQ = 2**62

After = Annotated[
    int | None,
    Query(
        ge=0,
        le=_MAX_SEQ,
        description="Entries after this seq (0: from the start). `Last-Event-ID` wins over it.",
    ),
]
LastEventId = Annotated[
    int | None,
    Header(
        ge=0,
        le=_MAX_SEQ,
        description="The id of the last event received: the stream resumes after it.",
    ),
]


def _json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    # The error answers are JSON; FastAPI would otherwise document them with the route's own
    # media type, text/event-stream.
    schema = {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
    return {
        code: {"description": spec["description"], "content": {"application/json": schema}}
        for code, spec in responses(*codes).items()
    }


async def _visible_run(run_id: str, service: ServiceDep, principal: Reader) -> RunView:
    # A dependency, so an unknown or hidden run is answered 404 before any byte of the stream.
    return await visible_run(service, principal, run_id)


async def _embedded(service: ServiceDep) -> LocalBackend:
    # A dependency, so Temporal's 501 is answered before the stream starts.
    return embedded(service.engine, "the per-owner stream (GET /stream)")


def _message(event: RunEvent) -> ServerSentEvent:
    return ServerSentEvent(raw_data=event.model_dump_json(), event=event.kind, id=str(event.seq))


@router.get(
    "/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    summary="Follow a run live (Server-Sent Events)",
    responses=_json_errors(*AUTHED, 404),
)
async def stream_run(
    run_id: str,
    view: Annotated[RunView, Depends(_visible_run)],
    service: ServiceDep,
    after: After = None,
    last_event_id: LastEventId = None,
) -> AsyncIterator[ServerSentEvent]:
    """The run's timeline from the cursor (the start by default), then each change live.

    Every step transition and progress report is an event whose `id` is its seq. Once the
    run has ended, a last `end` event carries the finished run (as `GET /runs/{run_id}`
    answers it) and the stream closes.
    """
    cursor = last_event_id if last_event_id is not None else after or 0
    async for item in run_entries(service.engine, view.run_id, cursor, service.streams):
        if isinstance(item, RunEvent):
            yield _message(item)
        else:
            yield ServerSentEvent(raw_data=public_view(item).model_dump_json(), event=END_EVENT)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    summary="Follow every run of the caller's owner live (Server-Sent Events)",
    responses=_json_errors(*AUTHED, 501),
)
async def stream_runs(
    service: ServiceDep,
    principal: Reader,
    local: Annotated[LocalBackend, Depends(_embedded)],
    after: After = None,
    last_event_id: LastEventId = None,
) -> AsyncIterator[ServerSentEvent]:
    """Timeline entries of every run the key's owner owns (an admin: every run), live.

    Without a cursor the stream starts now; with `after` (0: from the start) or
    `Last-Event-ID` it first replays what came after it. Each event's `data` names its run
    (`run_id`). The stream does not end by itself. Needs the embedded backend (501 on
    Temporal, which has no sequence across runs to resume by: follow each run instead).
    """
    cursor = last_event_id if last_event_id is not None else after
    owner = owner_filter(principal)
    async for event in owner_entries(local, service.store, owner, cursor, service.streams):
        yield _message(event)
