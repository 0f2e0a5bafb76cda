"""Events over HTTP: the ingress, the Dapr pub/sub subscription, and the stored events.

`POST /events` takes plain JSON, CloudEvents (structured, binary, batched) and Dapr pub/sub
deliveries (see `conveyor.api.ingress`), stores each event and routes it to the steps waiting
on its correlation id before answering 202 with the receipts. `POST /dapr/events/{topic}` is
the route `GET /dapr/subscribe` names to a Dapr sidecar: the same ingress, answered the way
Dapr reads a delivery's outcome (``SUCCESS``, ``RETRY``, ``DROP``).

Senders prove themselves with the events token (`Settings.events_token`) as
``Authorization: Bearer <token>`` or in Dapr's ``dapr-api-token`` header, or with an API key
of ``write`` scope. Events belong to no owner: listing them needs an ``admin`` key.

On Temporal an event is kept by its correlation id's mailbox workflow, which forwards it to
the steps waiting on it: each receipt says `accepted`, and the stored-event listings answer
501 (there is no event log to list).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from conveyor.api.deps import LOCAL_OWNER, Admin, Principal, ServiceDep
from conveyor.api.engine import embedded
from conveyor.api.errors import ApiError, error_response, responses
from conveyor.api.ingress import MAX_BATCH, read_events
from conveyor.api.keys import authenticate
from conveyor.api.models import Limit, Offset, Page
from conveyor.api.service import Service
from conveyor.backends.local.eventlog import StoredEvent
from conveyor.backends.local.sql import Q
from conveyor.errors import DatabaseBusyError, EngineBusyError
from conveyor.events import EventReceipt
from conveyor.runs import as_datetime

log = structlog.get_logger("conveyor.api.events")

router = APIRouter(tags=["events"])

EVENTS_PRINCIPAL = "events"
"""The owner a request authenticated by the events token acts as."""

StoredStatus = Literal["pending", "routed", "unroutable", "expired"]
LOST: tuple[StoredStatus, ...] = ("unroutable", "expired")
"""The statuses of events no step received: no correlation id, or nobody waited in time."""

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="EventsToken",
    description="The events token, or an API key with the `write` scope. A Dapr sidecar may "
    "send the events token in its `dapr-api-token` header instead.",
)
DAPR_TOKEN_HEADER = "dapr-api-token"
"""Where a Dapr sidecar sends its APP_API_TOKEN; read from the request rather than declared as
a second security scheme, which would document either credential as enough on its own even
when the other one sent is wrong."""


async def events_sender(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> Principal:
    """The principal of a request sending events (see `events_principal`)."""
    bearer = credentials.credentials if credentials is not None else None
    return events_principal(service, bearer, request.headers.get(DAPR_TOKEN_HEADER))


def events_principal(service: Service, bearer: str | None, dapr_token: str | None) -> Principal:
    """Authenticate a sender of events: the events token, or an API key of `write` scope.

    Every credential sent must be right: a wrong ``dapr-api-token`` next to a good key is
    refused, so a misconfigured sidecar is found at once rather than hidden.

    Args:
        bearer: The token of an ``Authorization: Bearer`` header, if one was sent.
        dapr_token: The ``dapr-api-token`` header, if one was sent.

    Raises (as answers):
        401: no credential, or one that is neither the events token nor a known key.
        403: an API key whose scope is weaker than `write`.
    """
    if not service.auth.enabled:
        return Principal(owner=LOCAL_OWNER, scope="admin")
    principal: Principal | None = None
    if dapr_token is not None:
        if not service.auth.events_token_matches(dapr_token):
            raise _unauthorized("the dapr-api-token header is not the events token")
        principal = Principal(owner=EVENTS_PRINCIPAL, scope="write")
    if bearer is not None:
        principal = _bearer_principal(service, bearer)
    if principal is None:
        raise _unauthorized(
            "send the events token (Authorization: Bearer <token>, or dapr-api-token) "
            "or an API key with the 'write' scope"
        )
    return principal


def _bearer_principal(service: Service, token: str) -> Principal:
    if service.auth.events_token_matches(token):
        return Principal(owner=EVENTS_PRINCIPAL, scope="write")
    key = authenticate(service.store, token)
    if key is None:
        raise _unauthorized("the bearer token is neither the events token nor a known API key")
    principal = Principal(owner=key.owner, scope=key.scope, key_id=key.id)
    if not principal.allows("write"):
        raise ApiError(403, "forbidden", "sending events needs a key with the 'write' scope")
    return principal


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


Sender = Annotated[Principal, Depends(events_sender)]

_CE_HEADERS = [
    {
        "name": f"ce-{name}",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 512},
        "description": f"CloudEvents binary mode: the event's `{name}` (the body is its data).",
    }
    for name in ("specversion", "id", "type", "source")
]
_EVENT_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}
_BODY: dict[str, Any] = {
    "parameters": _CE_HEADERS,
    "requestBody": {
        "required": True,
        "description": "One event, or a batch (an array) of at most "
        f"{MAX_BATCH}: plain JSON data, or CloudEvents.",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_BATCH},
                    ]
                }
            },
            "application/cloudevents+json": {"schema": _EVENT_SCHEMA},
            "application/cloudevents-batch+json": {
                "schema": {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_BATCH}
            },
        },
    },
}


async def accept_events(
    service: Service, body: bytes, headers: Mapping[str, str]
) -> tuple[list[EventReceipt], bool]:
    """Read, store and route a request's events; every one is checked before any is kept.

    Returns:
        A receipt per event, and whether the request was a batch.

    Raises:
        ApiError: the body is not events (400/415/422), or they cannot be stored now (503).
    """
    events, batch = read_events(body, headers, service.settings.correlation_paths)
    try:
        # One commit for the whole request: a batch costs little more than one event.
        receipts = await service.engine.send_events(events)
    except (sqlite3.OperationalError, DatabaseBusyError) as exc:
        # The database is locked or out of space: nothing is wrong with the event itself.
        log.warning("event_not_stored", error=str(exc))
        raise ApiError(
            503,
            "unavailable",
            "the event could not be stored now; send it again",
            headers={"Retry-After": "1"},
        ) from exc
    for receipt in receipts:
        service.metrics.count_event(receipt.status.value)
    return receipts, batch


@router.post(
    "/events",
    status_code=202,
    response_model=EventReceipt | list[EventReceipt],
    summary="Send events",
    openapi_extra=_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 503),
)
async def send_events(
    request: Request, service: ServiceDep, sender: Sender
) -> EventReceipt | list[EventReceipt]:
    """Store events and route them to the steps waiting on their correlation ids.

    Answers once every event is stored: one receipt for one event, a list for a batch. An
    event nobody waits on yet is kept (`pending`) for a step that starts waiting later; one
    without a correlation id is kept as `unroutable`; an id seen before is a `duplicate`.
    """
    receipts, batch = await accept_events(service, await request.body(), request.headers)
    return receipts if batch else receipts[0]


class Subscription(BaseModel):
    """One topic Dapr should deliver to this service, and the route it posts to."""

    pubsubname: str
    topic: str
    route: str


class DaprAnswer(BaseModel):
    """How a Dapr sidecar should treat a delivery."""

    status: Literal["SUCCESS", "RETRY", "DROP"] = Field(
        description="SUCCESS: stored; RETRY: deliver again later; DROP: malformed, never "
        "deliver again."
    )
    message: str | None = Field(default=None, description="Why, for RETRY and DROP.")


@router.get(
    "/dapr/subscribe",
    response_model=list[Subscription],
    summary="Dapr programmatic subscription",
    responses=responses(401, 403, 422),
)
async def dapr_subscribe(service: ServiceDep, sender: Sender) -> list[Subscription]:
    """The callback topic, for a Dapr sidecar reading this app's subscriptions at start.

    It takes the same credentials as the deliveries: a sidecar sends its token with both.
    """
    topic = service.settings.callback_topic
    return [
        Subscription(
            pubsubname=service.settings.pubsub_name, topic=topic, route=f"/dapr/events/{topic}"
        )
    ]


@router.post(
    "/dapr/events/{topic}",
    response_model=DaprAnswer,
    summary="Receive a Dapr pub/sub delivery",
    openapi_extra=_BODY,
    responses=responses(401, 403, 404, 413, 422),
)
async def dapr_delivery(
    topic: str, request: Request, service: ServiceDep, sender: Sender
) -> DaprAnswer | Response:
    """A delivery from a Dapr sidecar: SUCCESS once stored, DROP for a malformed event.

    A topic this service does not subscribe to answers 404, which Dapr also drops.
    """
    if topic != service.settings.callback_topic:
        return error_response(404, "not_found", f"this service does not subscribe to {topic!r}")
    try:
        await accept_events(service, await request.body(), request.headers)
    except EngineBusyError as exc:
        return DaprAnswer(status="RETRY", message=str(exc))
    except ApiError as exc:
        if exc.status_code == 503:
            return DaprAnswer(status="RETRY", message=exc.message)
        if exc.status_code not in (400, 415, 422):
            raise
        detail = "; ".join(f"{f.path}: {f.message}" if f.path else f.message for f in exc.fields)
        log.warning("dapr_event_dropped", topic=topic, error=exc.message, fields=detail)
        return DaprAnswer(status="DROP", message=f"{exc.message}{': ' + detail if detail else ''}")
    return DaprAnswer(status="SUCCESS")


class EventView(BaseModel):
    """An event as stored."""

    seq: int = Field(description="The order it was received in.")
    id: str
    correlation_id: str | None
    type: str
    source: str | None
    data: dict[str, Any]
    received_at: datetime
    status: StoredStatus

    @classmethod
    def of(cls, event: StoredEvent) -> EventView:
        """The view of a stored event."""
        received = as_datetime(event.received_at)
        assert received is not None
        return cls(
            seq=event.seq,
            id=event.id,
            correlation_id=event.correlation_id,
            type=event.type,
            source=event.source,
            data=event.data,
            received_at=received,
            status=event.status,
        )


async def _page(
    service: Service, statuses: list[str] | None, limit: int, offset: int
) -> Page[EventView]:
    local = embedded(service.engine, "listing stored events")
    items = await local.list_events(status=statuses, limit=limit, offset=offset)
    counts = dict(service.store.db.execute(Q["events_by_status"]).fetchall())
    total = sum(n for status, n in counts.items() if statuses is None or status in statuses)
    return Page(
        items=[EventView.of(e) for e in items], total=int(total), limit=limit, offset=offset
    )


@router.get(
    "/events",
    response_model=Page[EventView],
    summary="List stored events",
    responses=responses(401, 403, 422, 501),
)
async def list_events(
    service: ServiceDep,
    admin: Admin,
    status: Annotated[list[StoredStatus] | None, Query(max_length=4)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[EventView]:
    """Stored events, newest first, optionally of the given statuses (repeatable). Admins only."""
    return await _page(service, list(status) if status else None, limit, offset)


@router.get(
    "/events/unroutable",
    response_model=Page[EventView],
    summary="List events no step received",
    responses=responses(401, 403, 422, 501),
)
async def list_unroutable(
    service: ServiceDep, admin: Admin, limit: Limit = 50, offset: Offset = 0
) -> Page[EventView]:
    """Events without a correlation id, and those nobody waited on before their TTL ran out.

    Newest first. Admins only.
    """
    return await _page(service, list(LOST), limit, offset)
