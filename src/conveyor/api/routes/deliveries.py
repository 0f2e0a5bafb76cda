"""A run's lifecycle deliveries over HTTP: what was sent where, and how each attempt went.

Visible exactly as the run is: another owner's run answers 404. A webhook's secret is never
part of an answer, and its URL is shown without credentials, query or fragment, which may
carry secrets of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from conveyor.api.deps import Reader, ServiceDep, visible_run
from conveyor.api.errors import AUTHED, responses
from conveyor.api.models import Limit, Offset, Page
from conveyor.publishing.outbox import DeliveryStatus, Outbox
from conveyor.runs import as_datetime

router = APIRouter(prefix="/runs", tags=["runs"])


class DeliveryView(BaseModel):
    """One lifecycle message to one target."""

    id: str = Field(description="The delivery id (`X-Conveyor-Delivery`, or the CloudEvent id).")
    target: Literal["topic", "webhook"]
    destination: str = Field(description="The topic, or the webhook URL without its query.")
    position: int = Field(description="The target's index in the run's start request.")
    type: str = Field(description="The message type, e.g. `conveyor.step.completed`.")
    seq: int = Field(description="The timeline entry it was made from.")
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None


@router.get(
    "/{run_id}/deliveries",
    response_model=Page[DeliveryView],
    summary="List a run's lifecycle deliveries",
    responses=responses(*AUTHED, 404),
)
async def list_deliveries(
    run_id: str,
    service: ServiceDep,
    principal: Reader,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryView]:
    """Every message sent (or being sent) to the run's callback topics and webhooks, oldest
    first, with its status (`pending`, `delivered`, `failed`), attempts and last error."""
    await visible_run(service, principal, run_id)
    rows, total = Outbox(service.store).deliveries_of(run_id, status, limit, offset)
    items = [
        DeliveryView(
            id=row["id"],
            target=row["kind"],
            destination=row["address"] if row["kind"] == "topic" else _shown(row["address"]),
            position=row["position"],
            type=row["type"],
            seq=row["event_seq"],
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            next_attempt_at=as_datetime(row["next_attempt_at"]),
            created_at=as_datetime(row["created_at"]),
            delivered_at=as_datetime(row["delivered_at"]),
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


def _shown(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
