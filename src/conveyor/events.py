"""Events from outside: one model for plain JSON, CloudEvents and Dapr pub/sub deliveries.

The correlation id (the `external_workflow_id` a step waits on) is read from the first of the
configured dotted paths that holds a value, looked up in the event as it was received, so the
same paths serve a plain JSON body (`payload.workflow_id`) and a CloudEvent envelope
(`data.payload.workflow_id`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.config import DEFAULT_CORRELATION_PATHS
from conveyor.errors import EventError
from conveyor.ids import new_id
from conveyor.inputs import unstorable


class Event(BaseModel):
    """An event, whatever form it arrived in.

    Attributes:
        id: Unique id; an event with an id seen before is applied once.
        type: The event's type (CloudEvents `type`, or the body's `type`).
        source: Who sent it, when known.
        data: What `on_event` sees as `event_data`.
        correlation_id: The id waiting steps are matched on.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id, min_length=1, max_length=512)
    type: str = Field(default="event", max_length=512)
    source: str | None = Field(default=None, max_length=2048)
    data: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, max_length=512)


class RouteStatus(StrEnum):
    """What happened to an accepted event."""

    ROUTED = "routed"
    """Delivered to the steps waiting on its correlation id."""
    PENDING = "pending"
    """Nobody waits yet; kept (until its TTL) for a step that starts waiting on its id."""
    DUPLICATE = "duplicate"
    """An event with this id was accepted before; not applied again."""
    UNROUTABLE = "unroutable"
    """No correlation id could be read from it; kept and listable."""
    ACCEPTED = "accepted"
    """Stored durably and routed asynchronously (the Temporal backend's mailboxes)."""


class EventReceipt(BaseModel):
    """The answer to sending an event: it is stored, and this is how it was routed."""

    event_id: str
    correlation_id: str | None
    status: RouteStatus
    deliveries: int = 0


def read_path(document: Any, path: str) -> Any:
    """The value at a dotted `path` in nested mappings, or None."""
    current = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def correlation_id_of(document: Mapping[str, Any], paths: Sequence[str]) -> str | None:
    """The first non-empty scalar found at `paths`, as a string."""
    path = correlation_path_of(document, paths)
    return None if path is None else str(read_path(document, path))


def correlation_path_of(document: Mapping[str, Any], paths: Sequence[str]) -> str | None:
    """The first of `paths` that holds a non-empty scalar (where the correlation id is)."""
    for path in paths:
        value = read_path(document, path)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) != "":
            return path
    return None


def is_cloudevent(body: Mapping[str, Any]) -> bool:
    """Whether `body` is a CloudEvent in structured mode (Dapr delivers these too)."""
    return "specversion" in body and "type" in body and "id" in body


def event_from_body(
    body: Any,
    *,
    paths: Sequence[str] = DEFAULT_CORRELATION_PATHS,
    correlation_id: str | None = None,
    event_id: str | None = None,
) -> Event:
    """Build an `Event` from a received JSON body.

    A CloudEvent (structured mode, as Dapr pub/sub delivers) gives its `data` to `on_event`;
    a plain JSON object is the data itself.

    Raises:
        EventError: the body is not a JSON object, a CloudEvent's data is not one, or a value
            in it cannot be stored as JSON (a non-finite number, a lone surrogate).
    """
    if not isinstance(body, Mapping):
        raise EventError(f"an event must be a JSON object, got {type(body).__name__}")
    problems = unstorable(body)
    if problems:
        path, message = problems[0]
        raise EventError(f"{path}: {message}")
    found = correlation_id or correlation_id_of(body, paths)
    if is_cloudevent(body):
        data = body.get("data")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise EventError("data: a CloudEvent's data must be a JSON object")
        return Event(
            id=event_id or str(body["id"]),
            type=str(body["type"]),
            source=str(body["source"]) if body.get("source") is not None else None,
            data=dict(data),
            correlation_id=found,
        )
    raw_id = body.get("id") if isinstance(body.get("id"), str) else None
    event_type = body.get("type")
    return Event(
        id=event_id or raw_id or new_id(),
        type=event_type if isinstance(event_type, str) and event_type else "event",
        data=dict(body),
        correlation_id=found,
    )
