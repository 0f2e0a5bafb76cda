"""One error body for every 4xx and 5xx answer, and the handlers that produce it.

    {"error": {"type": "invalid_pipeline", "message": "...",
               "fields": [{"path": "steps[2].params.count", "message": "must be <= 10"}]}}

`type` is a stable, machine-readable word; `message` is for people; `fields` names every
problem of a request at once, each by its path in the document that was sent (a body's paths
have no `body.` prefix; query, path and header parameters keep theirs: `query.limit`).

Bad input is always a 4xx: errors Conveyor raises on purpose map to their status here, and
anything else is a defect, answered 500 without its details (they go to the log).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor.api.media import is_json, unsupported_body
from conveyor.errors import (
    ConveyorError,
    EngineBusyError,
    EventError,
    ParamValidationError,
    PipelineLoadError,
    PipelineValidationError,
    RunNotFoundError,
    RunStateError,
    TemplateError,
    UnknownActionError,
    field_path,
)

log = structlog.get_logger("conveyor.api")


class FieldError(BaseModel):
    """One problem with one part of a request."""

    path: str = Field(description="Where it is, e.g. `steps[2].params.count` or `query.limit`.")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str = Field(description="A stable word: `not_found`, `invalid_pipeline`, ...")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answer a route raises on purpose."""

    def __init__(
        self,
        status_code: int,
        type_: str,
        message: str,
        *,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.type = type_
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})
        super().__init__(message)


def not_found(what: str, ident: str) -> ApiError:
    """The 404 for an unknown (or someone else's) resource; both answer the same on purpose."""
    return ApiError(404, "not_found", f"no {what} with id {ident!r}")


_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "No API key, or one that is unknown or revoked.",
    403: "The API key's scope does not allow this.",
    404: "Not found, or not visible to this API key's owner.",
    409: "The resource's state does not allow this.",
    413: "The request body is larger than the service accepts.",
    415: "The body's Content-Type is not one this route accepts (JSON; YAML for pipelines).",
    422: "The request is well-formed but invalid; `fields` names each problem.",
    503: "The service is not ready.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the given error statuses with the error body."""
    return {
        code: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(code, "Error.")}
        for code in codes
    }


AUTHED = (401, 403, 413, 422)
"""The error statuses any route behind an API key may answer."""


def error_response(
    status_code: int,
    type_: str,
    message: str,
    fields: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the error body."""
    body = ErrorResponse(error=ErrorDetail(type=type_, message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def loc_path(loc: Sequence[str | int]) -> str:
    """`("body", "steps", 0, "id")` as `steps[0].id`; other sources keep their prefix."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return field_path(parts)


def _issue_fields(issues: Iterable[object]) -> list[FieldError]:
    fields = []
    for issue in issues:
        path = getattr(issue, "path", "")
        message = getattr(issue, "message", str(issue))
        fields.append(FieldError(path=str(path), message=str(message)))
    return fields


def _conveyor_error(exc: ConveyorError) -> tuple[int, str, list[FieldError]]:
    """The status, type and fields of an error Conveyor raised."""
    if isinstance(exc, PipelineValidationError):
        return 422, "invalid_pipeline", _issue_fields(exc.issues)
    if isinstance(exc, PipelineLoadError):
        return 422, "invalid_pipeline", [FieldError(path="", message=str(exc))]
    if isinstance(exc, ParamValidationError):
        fields = [FieldError(path=f"params.{p.name}", message=p.message) for p in exc.problems]
        return 422, "invalid_params", fields
    if isinstance(exc, TemplateError):
        return 422, "template_error", []
    if isinstance(exc, EventError):
        return 422, "invalid_event", []
    if isinstance(exc, RunNotFoundError | UnknownActionError):
        return 404, "not_found", []
    if isinstance(exc, RunStateError):
        return 409, "conflict", []
    if isinstance(exc, EngineBusyError):
        return 503, "unavailable", []
    return 400, "bad_request", []


def answer_to(exc: Exception) -> JSONResponse | None:
    """The answer to an error raised on purpose (`ApiError`, `ConveyorError`); None otherwise."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.type, exc.message, exc.fields, exc.headers)
    if isinstance(exc, ConveyorError):
        status, type_, fields = _conveyor_error(exc)
        # Busy is a moment's state (another process writing): say when to come back.
        headers = {"Retry-After": "1"} if status == 503 else None
        return error_response(status, type_, str(exc), fields, headers)
    return None


async def _on_known_error(request: Request, exc: Exception) -> JSONResponse:
    answer = answer_to(exc)
    assert answer is not None
    return answer


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        # A body that does not parse is a different mistake from one that parses wrongly.
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        context = detail.get("ctx") or {}
        reason = context.get("error", "invalid JSON")
        return error_response(400, "invalid_json", f"the body is not valid JSON: {reason}")
    content_type = request.headers.get("content-type")
    if _body_unread(errors) and not is_json(content_type):
        # FastAPI reads a body as JSON only when its Content-Type says so; say that, rather
        # than that the bytes it kept are not an object.
        message = unsupported_body(request.method, request.url.path, content_type)
        return error_response(415, "unsupported_media_type", message)
    fields = worded_fields(errors)
    return error_response(422, "validation_error", _summary(fields), fields)


def worded_fields(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic's errors as fields worded for a person, one a path.

    A value that matches no member of a union gets one error per member, each under a path
    ending in the member's name (`document.dict[str,any]`, `document.str`); those are merged
    into one field: `document: must be an object or a string`.
    """
    merged: dict[str, list[str]] = {}
    for error in errors:
        loc = [part for part in error.get("loc", ()) if not _is_union_member(part)]
        path = loc_path(loc)
        message = _worded(error)
        if message not in merged.setdefault(path, []):
            merged[path].append(message)
    fields = []
    for path, messages in merged.items():
        wanted = [m.removeprefix("must be ") for m in messages if m.startswith("must be ")]
        if len(wanted) == len(messages) > 1:
            messages = ["must be " + " or ".join(wanted)]
        if not path and messages == ["is required"]:
            messages = ["the request needs a JSON body"]
        fields.append(FieldError(path=path, message="; ".join(messages)))
    return fields


# Pydantic's words for a type, as a person who writes JSON says them.
_TYPE_WORDS = {
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "string_type": "a string",
    "list_type": "a list",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _worded(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}"
    if kind in ("value_error", "assertion_error"):
        # Our own validators' text, without pydantic's "Value error, " in front.
        context = error.get("ctx") or {}
        reason = context.get("error")
        return str(reason) if reason is not None else message.split(", ", 1)[-1]
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    return message[:1].lower() + message[1:]


def _is_union_member(part: str | int) -> bool:
    # Pydantic names a union member by its type: "str", "int", "dict[str,any]", ...
    return isinstance(part, str) and (
        "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "none")
    )


def _summary(fields: Sequence[FieldError]) -> str:
    shown = [f"{f.path}: {f.message}" if f.path else f.message for f in fields[:3]]
    more = f" (and {len(fields) - 3} more)" if len(fields) > 3 else ""
    return "the request is invalid: " + "; ".join(shown) + more if shown else "invalid request"


def _body_unread(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the body as a whole failed, as bytes FastAPI did not read as JSON do."""
    return any(
        tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)
        for error in errors
    )


_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = _HTTP_TYPES.get(exc.status_code, "error" if exc.status_code < 500 else "internal")
    message = exc.detail if isinstance(exc.detail, str) else type_.replace("_", " ")
    return error_response(exc.status_code, type_, message, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A defect: the details go to the log, never to the caller. Formatting and writing a
    # traceback takes a while for a deep one: in a thread, so other requests go on.
    await asyncio.to_thread(_log_defect, request.url.path, exc)
    return error_response(500, "internal", "internal error")


def _log_defect(path: str, exc: BaseException) -> None:
    # The traceback as plain text, whatever renderer is configured: never with its frames'
    # local variables (which may hold secrets, and cost megabytes for a deep recursion).
    trace = "".join(traceback.format_exception(exc, limit=-_TRACEBACK_FRAMES))
    log.error("unhandled_error", path=path, exception=trace)


_TRACEBACK_FRAMES = 30
"""How many of a defect's innermost frames are logged (a recursion has a thousand)."""


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of `app` carry the one error body."""
    app.add_exception_handler(ApiError, _on_known_error)
    app.add_exception_handler(ConveyorError, _on_known_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
