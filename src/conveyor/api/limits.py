"""A limit on request body size, as pure ASGI middleware.

Pure ASGI rather than a Starlette `BaseHTTPMiddleware`: it sees the raw `receive` channel, so
it can refuse a body by its `Content-Length` before reading a byte, and count the bytes of a
chunked body (which has no length) as they arrive. The body is read here, up to the limit, and
handed on whole; a JSON API reads whole bodies anyway, and nothing past the limit is buffered.

A body found too large is read on and thrown away (up to `DRAIN_BYTES` more) before the 413 is
sent: a client still sending when the server answers and closes gets a connection reset
instead of the answer. Past that much, the connection is closed at once.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.errors import ErrorDetail, ErrorResponse

DRAIN_BYTES = 16 * 1024 * 1024
"""How much of a too-large body is read (and dropped) so the client can read the 413."""


class BodySizeLimit:
    """Answer 413 (with the error body) to a request whose body exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            if length <= self.max_bytes + DRAIN_BYTES:
                await _drain(receive, length)
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # The client left; let the app see it.
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_BYTES)
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        if first is None:
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                assert first is not None
                return first
            # Later reads wait on the real channel: a streaming response learns of the
            # client's disconnect there.
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = ErrorResponse(
            error=ErrorDetail(
                type="payload_too_large",
                message=f"the request body is larger than {self.max_bytes} bytes",
            )
        )
        payload = body.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    # The rest of the body is not read, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a body, `limit` bytes at most."""
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
