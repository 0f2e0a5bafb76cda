"""What a request body may be: JSON everywhere, and a pipeline also as YAML.

A pipeline is written in YAML far more often than in JSON, so the routes that take one
(`POST /pipelines`, `PUT /pipelines/{id}`, `POST /pipelines/validate`) also take the YAML
text itself (`curl --data-binary @pipeline.yaml -H 'Content-Type: application/yaml'`).
`YamlPipelines` turns such a request into the JSON one the route documents,
``{"document": "<the text>"}``, so the route, its validation and its errors stay one.

Any other body must be JSON with its `Content-Type` saying so. A body without one is not
guessed at: with auth off (`--insecure`) a web page could otherwise post to the service from a
browser without the preflight a JSON content type demands. `unsupported_body` words the 415.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

YAML_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})
"""Media types of a pipeline sent as YAML text."""

_PIPELINE_ROUTES = (
    ("POST", re.compile(r"^/pipelines/?$")),
    ("POST", re.compile(r"^/pipelines/validate/?$")),
    ("PUT", re.compile(r"^/pipelines/[^/]+/?$")),
)


def media_type(content_type: str | None) -> str:
    """`application/json` of `application/json; charset=utf-8`; "" for none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether the media type is JSON (`application/json` or a `+json` type)."""
    kind = media_type(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def takes_pipeline(method: str, path: str) -> bool:
    """Whether the route at `method` `path` takes a pipeline document (and so YAML)."""
    return any(method == m and pattern.match(path) for m, pattern in _PIPELINE_ROUTES)


def unsupported_body(method: str, path: str, content_type: str | None) -> str:
    """The 415's message: what was sent, and what this route accepts."""
    sent = f"Content-Type {media_type(content_type)!r}" if content_type else "no Content-Type"
    accepted = "JSON (Content-Type: application/json)"
    if takes_pipeline(method, path):
        accepted += ", or the pipeline as YAML (Content-Type: application/yaml or text/yaml)"
    return f"the body was sent with {sent}; send it as {accepted}"


class YamlPipelines:
    """Turn a YAML pipeline posted to a pipeline route into the route's JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not takes_pipeline(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        content_type = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
        if media_type(content_type) not in YAML_TYPES:
            await self.app(scope, receive, send)
            return
        raw, last = await _read_body(receive)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            await _refuse(send, 400, "invalid_yaml", "the YAML body is not UTF-8 text")
            return
        body = json.dumps({"document": text}).encode()
        rewritten = [(k, v) for k, v in headers if k not in (b"content-type", b"content-length")]
        rewritten += [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return last if last is not None else await receive()

        await self.app({**scope, "headers": rewritten}, replay, send)


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body (the size limit in front has bounded it), and a disconnect if one came."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


async def _refuse(send: Send, status: int, type_: str, message: str) -> None:
    # The one error body of `conveyor.api.errors`, written here: that module imports this one.
    body = json.dumps({"error": {"type": type_, "message": message, "fields": []}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
