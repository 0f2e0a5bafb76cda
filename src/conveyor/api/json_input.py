"""Refuse a JSON body holding what JSON cannot store, before any route reads it.

Python's `json` (which FastAPI reads bodies with) accepts ``NaN``, ``Infinity`` and lone
surrogates (``"\\udc80"``); none can be written back, so a run's params holding one failed
later, as a defect. Every JSON body of a write is checked here first, as pure ASGI, and
refused with the path of each bad value: 400 for a constant that is not JSON, 422 for a
value that cannot be stored. The events endpoints check their own bodies as they read them
(`conveyor.events.event_from_body`), so the busiest route does not read its body twice.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.errors import ErrorDetail, ErrorResponse, FieldError
from conveyor.api.ingress import is_json_type, media_type
from conveyor.inputs import loads, unstorable

_WRITES = frozenset({"POST", "PUT", "PATCH"})
_OWN_READERS = ("/events", "/dapr/events/")


class JsonBodyCheck:
    """Answer 400/422 to a JSON body with a non-finite number or text that is not Unicode."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _checked(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = _refusal(body) if first is None else None
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if first is None:
            first = {"type": "http.request", "body": body, "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                assert first is not None
                return first
            return await receive()

        await self.app(scope, replay, send)


def _checked(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in _WRITES:
        return False
    path: str = scope["path"]
    if path == _OWN_READERS[0] or path.startswith(_OWN_READERS[1]):
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return is_json_type(media_type(value.decode("latin-1")))
    return True


def _refusal(body: bytes) -> tuple[int, ErrorDetail] | None:
    if not body.strip():
        return None
    try:
        document = loads(body)
    except RecursionError:
        return 400, ErrorDetail(
            type="invalid_json", message="the body is not valid JSON: nested too deeply"
        )
    except json.JSONDecodeError as exc:
        if exc.msg.endswith("is not a JSON number"):
            return 400, ErrorDetail(
                type="invalid_json", message=f"the body is not valid JSON: {exc.msg}"
            )
        return None  # Malformed JSON: the route answers it as it always has.
    except ValueError:
        return None
    problems = unstorable(document)
    if not problems:
        return None
    return 422, ErrorDetail(
        type="validation_error",
        message="the request holds values that cannot be stored as JSON",
        fields=[FieldError(path=path, message=message) for path, message in problems],
    )


async def _answer(send: Send, status: int, detail: ErrorDetail) -> None:
    payload = ErrorResponse(error=detail).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
