"""What a run's lifecycle looks like to the outside: one JSON message shape for every change.

A message is made from one timeline entry (`RunEvent`) of a run:

    {"id": "<run_id>:<seq>", "type": "conveyor.step.completed", "run_id": "...",
     "pipeline": "...", "seq": 7, "at": "2026-01-31T12:00:00.123456+00:00",
     "step_id": "fetch", "index": null, "status": "completed", "attempt": 1,
     "progress": 100.0, "message": null, "error": null, "outputs": {...}}

`type` is ``conveyor.run.<started|completed|failed|cancelled|timed_out>``,
``conveyor.step.<started|waiting|retrying|completed|failed|timeout|skipped|cancelled>`` or
``conveyor.step.progress``. Entries that say nothing new to a subscriber (a run or step back to
pending, an event applied to a waiting step, whose effect is the status change it causes) make
no message. `outputs` is set on ``conveyor.step.completed`` and ``conveyor.run.completed`` when
it is at most `Settings.publish_max_output_bytes` of JSON; a larger one is left out and
`outputs_omitted` is true.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from conveyor.backends.local.store import dumps, loads
from conveyor.runs import RunEvent

RUN_TYPES = tuple(
    f"conveyor.run.{name}" for name in ("started", "completed", "failed", "cancelled", "timed_out")
)
STEP_TYPES = tuple(
    f"conveyor.step.{name}"
    for name in (
        "started",
        "waiting",
        "retrying",
        "completed",
        "failed",
        "timeout",
        "skipped",
        "cancelled",
        "progress",
    )
)
EVENT_TYPES = RUN_TYPES + STEP_TYPES
"""Every message type, in the order a run's lifecycle usually meets them."""

CLOUDEVENT_SOURCE = "conveyor"
CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"


def message_type(event: RunEvent) -> str | None:
    """The message type of a timeline entry, or None when it makes no message."""
    if event.kind == "progress":
        return "conveyor.step.progress"
    if event.kind not in ("run", "step") or event.status in (None, "pending"):
        return None
    scope = "run" if event.kind == "run" else "step"
    name = "started" if event.status == "running" else event.status
    kind = f"conveyor.{scope}.{name}"
    return kind if kind in EVENT_TYPES else None


def lifecycle_message(
    event: RunEvent,
    pipeline: str,
    *,
    outputs: Any = None,
    max_output_bytes: int = 16 * 1024,
) -> dict[str, Any] | None:
    """The message of a timeline entry, or None when it makes none.

    Args:
        event: The timeline entry.
        pipeline: The run's pipeline name.
        outputs: The completed step's (or run's) outputs, for completion messages.
        max_output_bytes: Outputs larger than this as JSON are left out.
    """
    kind = message_type(event)
    if kind is None:
        return None
    message: dict[str, Any] = {
        "id": f"{event.run_id}:{event.seq}",
        "type": kind,
        "run_id": event.run_id,
        "pipeline": pipeline,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "step_id": event.step_id,
        "index": event.index,
        "status": event.status,
        "attempt": event.attempt,
        "progress": event.progress,
        "message": event.message,
        "error": event.error,
    }
    if kind in ("conveyor.step.completed", "conveyor.run.completed"):
        encoded = dumps(outputs)
        if len(encoded.encode()) <= max_output_bytes:
            message["outputs"] = loads(encoded)
        else:
            message["outputs"] = None
            message["outputs_omitted"] = True
    return message


def cloud_event(message: dict[str, Any], event_id: str) -> dict[str, Any]:
    """`message` as a structured-mode CloudEvent 1.0, the form Dapr pub/sub carries.

    Args:
        message: A lifecycle message.
        event_id: The CloudEvent id: the delivery's id, the same on every attempt, so a
            subscriber can drop a message it already handled.
    """
    subject = message["run_id"]
    if message.get("step_id"):
        subject += f"/{message['step_id']}"
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": CLOUDEVENT_SOURCE,
        "type": message["type"],
        "subject": subject,
        "time": message["at"],
        "datacontenttype": "application/json",
        "data": message,
    }


def matches(kind: str, patterns: list[str] | None) -> bool:
    """Whether a message of type `kind` passes a filter of glob patterns (None passes all)."""
    return patterns is None or any(fnmatchcase(kind, pattern) for pattern in patterns)


def utc_now_iso(now: float) -> str:
    """`now` (epoch seconds) in ISO 8601, UTC."""
    return datetime.fromtimestamp(now, tz=UTC).isoformat()
