"""``http_request``: call an HTTP API, through the outbound address guard.

The URL comes from a pipeline, so every request, and every redirect it leads to, is checked by
`conveyor.actions.network.check_url` against the engine's settings before it is sent: loopback,
private, link-local and metadata addresses are refused unless the operator allowed them
(``CONVEYOR_ALLOWED_HOSTS``, ``CONVEYOR_ALLOW_PRIVATE_NETWORKS``). Redirects are followed by
hand for that reason, at most `MAX_REDIRECTS` of them; httpx builds each next request (method
change on 303, credentials dropped on a change of origin).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    SelectOption,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type
from conveyor.actions.invokers import decode_body, describe_body
from conveyor.actions.network import check_url
from conveyor.actions.outbound import guarded_client
from conveyor.errors import ServiceInvocationError

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""A larger body fails the step: outputs are stored with the run."""
DEFAULT_TIMEOUT_SECONDS = 30


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle is the slowest part of making a client; one context serves all.
    return httpx.create_ssl_context()


class RequestFailed(Exception):
    """The request could not be made or answered; the message says why."""


def _object(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestFailed(f"{name} must be a JSON object, got {describe_type(value)}")
    return value


def _expected(params: dict[str, Any]) -> list[int] | None:
    value = params.get("expected_status")
    if value is None:
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise RequestFailed(f"expected_status must be a list of status codes, got {value!r}")
    try:
        return [int(code) for code in value]
    except (TypeError, ValueError):
        raise RequestFailed(
            f"expected_status must be a list of status codes, got {value!r}"
        ) from None


async def _read(response: httpx.Response) -> bytes:
    size = 0
    chunks = []
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RequestFailed(
                f"the response is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Answer:
    response: httpx.Response
    """Status, headers and URL; its body was read (and capped) into `body`."""
    body: Any
    next_request: httpx.Request | None


class HttpRequestExecutor(BaseActionExecutor):
    """Sends the request, following redirects hop by hop through the address guard."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Make the request; refusals, transport errors and error statuses are failures."""
        params = context.params
        url = str(params.get("url") or "")
        method = str(params.get("method") or "GET").upper()
        try:
            if method not in METHODS:
                raise RequestFailed(f"method {method!r} is not one of {', '.join(METHODS)}")
            headers = {str(k): str(v) for k, v in _object(params, "headers").items()}
            query = _object(params, "query")
            expected = _expected(params)
            answer = await self._send(context, method, url, headers, query, params)
        except (RequestFailed, ServiceInvocationError) as exc:
            # BlockedAddressError is a ServiceInvocationError: its message says why.
            return ActionResult(
                success=False,
                error=str(exc),
                # The same keys as an answer's, so later steps can read them either way.
                outputs={"status_code": None, "headers": {}, "body": None, "ok": False, "url": url},
            )
        response, body = answer.response, answer.body
        status = response.status_code
        ok = status in expected if expected is not None else response.is_success
        outputs = {
            "status_code": status,
            "headers": dict(response.headers.items()),
            "body": body,
            "ok": ok,
            "url": str(response.url),
        }
        if not ok and params.get("fail_on_error_status", True):
            wanted = f" (expected {', '.join(map(str, expected))})" if expected else ""
            detail = f": {describe_body(body)}" if body is not None else ""
            return ActionResult(
                success=False,
                error=f"{method} {response.url} answered {status} "
                f"{response.reason_phrase}{wanted}{detail}",
                outputs=outputs,
            )
        return ActionResult(success=True, outputs=outputs)

    async def _send(
        self,
        context: ActionContext,
        method: str,
        url: str,
        headers: dict[str, str],
        query: dict[str, Any],
        params: dict[str, Any],
    ) -> _Answer:
        settings = context.settings
        if settings is None:
            from conveyor.config import Settings

            settings = Settings()
        timeout = float(params.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
        follow = params.get("follow_redirects", True)
        body = params.get("body")
        # The URL as written first: a refused address is named as such even when httpx
        # could not parse it (0177.0.0.1); then each request as built, hop by hop.
        await check_url(url, settings)
        # Connections go only to the addresses the guard checked as they are made, so a name
        # that resolves elsewhere after `check_url` (DNS rebinding) is refused, not reached.
        async with guarded_client(settings, timeout=timeout, verify=_tls_context()) as client:
            try:
                request = client.build_request(
                    method,
                    url,
                    headers=headers,
                    params={k: v for k, v in query.items() if v is not None} or None,
                    json=body if body is not None and method not in ("GET", "HEAD") else None,
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
                raise RequestFailed(f"cannot build the request to {url!r}: {exc}") from exc
            for hop in range(MAX_REDIRECTS + 1):
                await check_url(str(request.url), settings)
                answer = await self._hop(client, request, timeout)
                next_request = answer.next_request
                if not (follow and answer.response.is_redirect and next_request is not None):
                    return answer
                if hop == MAX_REDIRECTS:
                    raise RequestFailed(
                        f"{method} {url} redirected more than {MAX_REDIRECTS} times "
                        f"(last to {next_request.url})"
                    )
                context.logger.debug(
                    "http_redirect",
                    status=answer.response.status_code,
                    location=str(next_request.url),
                )
                request = next_request
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _hop(
        self, client: httpx.AsyncClient, request: httpx.Request, timeout: float
    ) -> _Answer:
        where = f"{request.method} {request.url}"
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"{where} timed out after {timeout:g} s") from exc
        except httpx.ConnectError as exc:
            raise RequestFailed(f"{where}: could not connect: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RequestFailed(f"{where} failed: {exc}") from exc
        try:
            content = await _read(response)
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"{where} timed out after {timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise RequestFailed(f"{where}: reading the response failed: {exc}") from exc
        finally:
            await response.aclose()
        # A response of the read bytes (already decompressed) with the same content type, so
        # the body is decoded like any other: charset, JSON or text.
        decoded = httpx.Response(
            response.status_code,
            headers={"content-type": response.headers.get("content-type", "")},
            content=content,
        )
        return _Answer(response, decode_body(decoded), response.next_request)


META = ActionMeta(
    type="http_request",
    version="1.0.0",
    name="HTTP request",
    description="Calls an HTTP API and returns its status, headers and body. Internal "
    "addresses are refused unless the engine's settings allow them.",
    category="Integration",
    icon="🌐",
    execution_mode=ExecutionMode.SYNC,
    idempotent=False,
    timeout_seconds=300,
    params=[
        ParamDefinition(
            name="url",
            label="URL",
            type=ParamType.STRING,
            required=True,
            description="The http or https URL to call.",
            placeholder="https://api.example.com/v1/items",
            validation=ValidationRules(
                pattern=r"(?i)https?://.+", pattern_message="must be an http:// or https:// URL"
            ),
        ),
        ParamDefinition(
            name="method",
            label="Method",
            type=ParamType.SELECT,
            default="GET",
            description="The HTTP method.",
            options=[SelectOption(label=method, value=method) for method in METHODS],
        ),
        ParamDefinition(
            name="headers",
            label="Headers",
            type=ParamType.JSON,
            description="Request headers, a JSON object of name to value.",
            placeholder='{"Authorization": "Bearer {{ params.token }}"}',
        ),
        ParamDefinition(
            name="query",
            label="Query parameters",
            type=ParamType.JSON,
            description="Query string parameters, a JSON object (a list value repeats the name).",
            placeholder='{"page": 1}',
        ),
        ParamDefinition(
            name="body",
            label="Body",
            type=ParamType.JSON,
            description="Sent as the JSON body (not with GET or HEAD).",
        ),
        ParamDefinition(
            name="timeout_seconds",
            label="Timeout (seconds)",
            type=ParamType.NUMBER,
            default=DEFAULT_TIMEOUT_SECONDS,
            description="How long to wait to connect, and then for each read.",
            validation=ValidationRules(min=0.1, max=300),
        ),
        ParamDefinition(
            name="expected_status",
            label="Expected status codes",
            type=ParamType.JSON,
            description="The status codes that count as success, e.g. [200, 404]; "
            "any 2xx when empty.",
            placeholder="[200, 201]",
        ),
        ParamDefinition(
            name="fail_on_error_status",
            label="Fail on error status",
            type=ParamType.BOOLEAN,
            default=True,
            description="Fail the step when the status is not expected; otherwise succeed "
            "with ok=false.",
        ),
        ParamDefinition(
            name="follow_redirects",
            label="Follow redirects",
            type=ParamType.BOOLEAN,
            default=True,
            description=f"Follow up to {MAX_REDIRECTS} redirects, each checked like the URL.",
        ),
    ],
    outputs=[
        OutputDefinition(name="status_code", type="number", description="The response status."),
        OutputDefinition(name="headers", type="object", description="The response headers."),
        OutputDefinition(
            name="body", type="any", description="The body: decoded JSON, text, or null if empty."
        ),
        OutputDefinition(
            name="ok", type="boolean", description="Whether the status was an expected one."
        ),
        OutputDefinition(
            name="url", type="string", description="The URL that answered, after redirects."
        ),
    ],
)


@register_action(META)
class HttpRequestAction:
    """The ``http_request`` action."""

    meta = META
    executor_class = HttpRequestExecutor
