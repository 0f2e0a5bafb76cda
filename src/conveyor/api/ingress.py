"""Reading events from an HTTP request, in every form the events endpoint accepts.

- plain JSON (``application/json``): the body is the event's data;
- a CloudEvent in structured mode (``application/cloudevents+json``, or JSON carrying
  ``specversion``): the attributes and ``data`` in the body; Dapr pub/sub delivers these;
- a CloudEvent in binary mode (``ce-specversion``, ``ce-id``, ``ce-type``, ``ce-source``
  headers): the body is the data;
- a batch: a JSON array of plain or structured events (``application/cloudevents-batch+json``
  for CloudEvents only).

Every problem of a request is found before any event is accepted, so a batch is taken whole
or not at all, and each problem is named by its path (``[2].id``, ``header.ce-type``).

No event read here may reach a human-input wait: an event in the namespace of people's
decisions is refused (`conveyor.human.reserved_problems`), since only the human-input routes
know who decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from conveyor.api.errors import ApiError, FieldError, loc_path
from conveyor.errors import EventError
from conveyor.events import Event, correlation_path_of, event_from_body
from conveyor.human import reserved_problems

MAX_BATCH = 100
"""The most events one request may carry."""

CE_ATTRIBUTES = ("specversion", "id", "source", "type")
"""The attributes every CloudEvent must have (CloudEvents 1.0, "Required Attributes")."""

SPEC_VERSIONS = ("1.0",)

_JSON = "application/json"
_STRUCTURED = "application/cloudevents+json"
_BATCH = "application/cloudevents-batch+json"


def media_type(value: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return (value or "").split(";", 1)[0].strip().lower()


def is_json_type(kind: str) -> bool:
    """Whether a media type is JSON (an absent one is read as JSON too)."""
    return kind in ("", _JSON) or kind.endswith("+json")


def read_events(
    body: bytes, headers: Mapping[str, str], paths: Sequence[str]
) -> tuple[list[Event], bool]:
    """The events a request carries, and whether it was a batch.

    Args:
        body: The raw request body.
        headers: The request headers (names in any case).
        paths: Where correlation ids are read from.

    Raises:
        ApiError: 415 for a body that is not JSON, 400 for JSON that does not parse, 422 for
            events that are malformed, each problem named.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    kind = media_type(lowered.get("content-type"))
    if not is_json_type(kind):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"events are JSON; the content type {kind!r} is not accepted",
            fields=[FieldError(path="header.content-type", message=f"{kind!r} is not JSON")],
        )
    if any(name.startswith("ce-") for name in lowered):
        return [_binary(body, lowered, paths)], False
    document = parse_json(body)
    if isinstance(document, list):
        return _batch(document, kind, paths), True
    if kind == _BATCH:
        raise _invalid(
            [FieldError(path="", message=f"a batch is a JSON array, not {_json_type(document)}")]
        )
    return [_structured_or_plain(document, kind == _STRUCTURED, paths, "")], False


def parse_json(body: bytes) -> Any:
    """The JSON document of a body.

    Raises:
        ApiError: 400 when the body is empty or not JSON (NaN and Infinity included: they
            cannot be stored as JSON).
    """
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty; an event is a JSON document")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; nesting too deep recurses.
        if isinstance(exc, json.JSONDecodeError):
            reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        elif isinstance(exc, RecursionError):
            reason = "nested too deeply"
        else:
            reason = str(exc)
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {reason}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _batch(document: list[Any], kind: str, paths: Sequence[str]) -> list[Event]:
    if not document:
        raise _invalid([FieldError(path="", message="a batch needs at least one event")])
    if len(document) > MAX_BATCH:
        raise _invalid([FieldError(path="", message=f"a batch holds at most {MAX_BATCH} events")])
    events: list[Event] = []
    problems: list[FieldError] = []
    for index, item in enumerate(document):
        prefix = f"[{index}]"
        try:
            events.append(_structured_or_plain(item, kind == _BATCH, paths, prefix))
        except ApiError as exc:
            problems.extend(exc.fields)
    if problems:
        raise _invalid(problems)
    return events


def _structured_or_plain(
    document: Any, must_be_cloudevent: bool, paths: Sequence[str], prefix: str
) -> Event:
    if not isinstance(document, dict):
        raise _invalid(
            [FieldError(path=prefix, message=f"must be a JSON object, not {_json_type(document)}")]
        )
    if must_be_cloudevent or "specversion" in document:
        problems = _cloudevent_problems(document)
        if problems:
            raise _invalid([_prefixed(prefix, p) for p in problems])
    return _event(document, paths, prefix)


def _cloudevent_problems(document: Mapping[str, Any]) -> list[FieldError]:
    problems = []
    for name in CE_ATTRIBUTES:
        value = document.get(name)
        if value is None:
            problems.append(FieldError(path=name, message="a CloudEvent requires this attribute"))
        elif not isinstance(value, str) or not value:
            problems.append(FieldError(path=name, message="must be a non-empty string"))
    version = document.get("specversion")
    if isinstance(version, str) and version and version not in SPEC_VERSIONS:
        problems.append(
            FieldError(path="specversion", message=f"must be one of {', '.join(SPEC_VERSIONS)}")
        )
    if "data_base64" in document:
        problems.append(
            FieldError(path="data_base64", message="binary data is not accepted; send JSON data")
        )
    data = document.get("data")
    if data is not None and not isinstance(data, dict):
        problems.append(
            FieldError(path="data", message=f"must be a JSON object, not {_json_type(data)}")
        )
    return problems


def _binary(body: bytes, headers: Mapping[str, str], paths: Sequence[str]) -> Event:
    attributes = {
        name[3:]: value.strip() for name, value in headers.items() if name.startswith("ce-")
    }
    problems = [
        FieldError(path=f"header.ce-{p.path}", message=p.message)
        for p in _cloudevent_problems(attributes)
    ]
    data: Any = parse_json(body) if body.strip() else {}
    if not isinstance(data, dict):
        problems.append(
            FieldError(path="", message=f"the data must be a JSON object, not {_json_type(data)}")
        )
    if problems:
        raise _invalid(problems)
    try:
        # The same envelope as structured mode, so correlation paths read `data.` alike.
        return _event({**attributes, "data": data}, paths, "")
    except ApiError as exc:
        # An attribute came from its header: name the header, as for the other problems.
        exc.fields = [
            FieldError(path=f"header.ce-{f.path}", message=f.message) if f.path in attributes else f
            for f in exc.fields
        ]
        raise


def _event(document: dict[str, Any], paths: Sequence[str], prefix: str) -> Event:
    event = _read_event(document, paths, prefix)
    refused = reserved_problems(event, correlation_path_of(document, paths))
    if refused:
        raise ApiError(
            422,
            "invalid_event",
            "the event speaks for a person: human decisions are not accepted as events",
            fields=[_prefixed(prefix, FieldError(path=p, message=m)) for p, m in refused],
        )
    return event


def _read_event(document: dict[str, Any], paths: Sequence[str], prefix: str) -> Event:
    try:
        return event_from_body(document, paths=paths)
    except EventError as exc:
        path, _, message = str(exc).partition(": ")
        field = FieldError(path=path if message else "", message=message or path)
        raise _invalid([_prefixed(prefix, field)]) from None
    except ValidationError as exc:
        raise _invalid(
            [
                _prefixed(prefix, FieldError(path=loc_path(e["loc"]), message=e["msg"]))
                for e in exc.errors()
            ]
        ) from None


def _prefixed(prefix: str, problem: FieldError) -> FieldError:
    if not prefix:
        return problem
    if not problem.path:
        return FieldError(path=prefix, message=problem.message)
    return FieldError(path=f"{prefix}.{problem.path}", message=problem.message)


def _invalid(problems: list[FieldError]) -> ApiError:
    return ApiError(422, "invalid_event", "the event is malformed", fields=problems)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
