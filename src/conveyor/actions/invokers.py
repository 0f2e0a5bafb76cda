"""Service invokers: how `ActionContext.invoke_service` reaches another service by app id.

Two ways, chosen by configuration (`invoker_from_settings`):

- `DaprInvoker`: through a Dapr sidecar's service invocation API,
  ``{endpoint}/v1.0/invoke/{app_id}/method/{method_path}``, with the sidecar's API token when
  one is set (``CONVEYOR_DAPR_HTTP_ENDPOINT``, ``CONVEYOR_DAPR_API_TOKEN``).
- `DirectHttpInvoker`: plain HTTP to a base URL per app id (``CONVEYOR_SERVICES``), for
  running without Dapr.

Both keep one pooled `httpx.AsyncClient` (close it with `aclose()` or ``async with``), send
`data` as a JSON body and `params` as the query string, and return the decoded answer: JSON when
it is JSON, text otherwise, None for an empty body. Every failure is a `ServiceInvocationError`
that says which call failed and how: the status and error body of a non-2xx answer, the timeout,
or the URL that refused the connection.

Service URLs come from the operator's configuration, not from pipelines, so their hosts are
allowed whatever address they have; the client is still a guarded one
(`conveyor.actions.outbound`), so nothing else is reached through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlsplit

import httpx

from conveyor.actions._services import ServiceInvoker
from conveyor.actions.outbound import guarded_client
from conveyor.errors import ServiceInvocationError, ServiceStatusError

if TYPE_CHECKING:
    from conveyor.config import Settings

_ERROR_BODY_LIMIT = 500


def decode_body(response: httpx.Response) -> Any:
    """The body of `response`: decoded JSON when it is JSON, else text, None when empty.

    A body without a content type is tried as JSON, since some services leave the header out.
    """
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json") or not content_type:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return response.text


def describe_body(body: Any) -> str:
    """`body` shortened for an error message."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    if len(text) > _ERROR_BODY_LIMIT:
        return text[:_ERROR_BODY_LIMIT] + "..."
    return text


def hosts_of(urls: Iterable[str]) -> list[str]:
    """The hosts of `urls` (those that have one)."""
    return [host for url in urls if (host := urlsplit(url).hostname)]


def _seconds(value: float) -> str:
    return f"{value:g}"


class HttpClientOwner:
    """Holds one pooled `httpx.AsyncClient`, made here or lent by the caller.

    A lent client is left open by `aclose()`: whoever made it closes it. A client made here is
    a guarded one (`conveyor.actions.outbound.guarded_client`) that also allows the hosts of
    `configured` URLs, the operator's own.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        settings: Settings | None = None,
        configured: Iterable[str] = (),
    ) -> None:
        self._owns_client = client is None
        # Redirects are not followed: a service that redirects is answered as it answered,
        # and a redirect could lead a request somewhere its configuration never named.
        self._client = (
            client
            if client is not None
            else guarded_client(settings, allowed=hosts_of(configured), follow_redirects=False)
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client requests go through."""
        return self._client

    async def aclose(self) -> None:
        """Close the client's connections (a lent client is left open)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(
        self,
        what: str,
        http_method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float = 30,
        app_id: str | None = None,
    ) -> httpx.Response:
        """Send one request and turn every way it can fail into a `ServiceInvocationError`.

        Args:
            what: How the call is named in errors, e.g. ``"call to billing POST invoices"``.
            http_method: The HTTP method.
            url: The full URL.
            json_body: Sent as JSON when not None.
            params: The query string; None values are left out.
            headers: Extra headers.
            timeout_seconds: Limit for connecting, sending and reading each.
            app_id: Recorded on the error.
        """
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = await self._client.request(
                http_method.upper(),
                url,
                json=json_body,
                params=query or None,
                headers=headers,
                timeout=httpx.Timeout(timeout_seconds),
            )
        except httpx.TimeoutException as exc:
            raise ServiceInvocationError(
                f"{what} timed out after {_seconds(timeout_seconds)} s ({url})", app_id=app_id
            ) from exc
        except httpx.ConnectError as exc:
            raise ServiceInvocationError(
                f"{what} could not connect to {url}: {exc}", app_id=app_id
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceInvocationError(f"{what} failed ({url}): {exc}", app_id=app_id) from exc
        except TypeError as exc:
            # httpx raises TypeError for a body that is not JSON-serializable.
            raise ServiceInvocationError(
                f"{what}: the data cannot be sent as JSON: {exc}", app_id=app_id
            ) from exc
        if not response.is_success:
            body = decode_body(response)
            detail = f": {describe_body(body)}" if body is not None else ""
            raise ServiceStatusError(
                f"{what} answered {response.status_code} {response.reason_phrase}{detail}",
                request=response.request,
                response=response,
                app_id=app_id,
                body=body,
            )
        return response


class DirectHttpInvoker(HttpClientOwner):
    """Invokes services over plain HTTP, from a map of app ids to base URLs.

    Example:
        >>> invoker = DirectHttpInvoker({"budapp": "http://127.0.0.1:9081"})
        >>> # await invoker.invoke("budapp", "endpoints/1/delete", data={"force": True})
        >>> # POSTs {"force": true} to http://127.0.0.1:9081/endpoints/1/delete
    """

    def __init__(
        self,
        base_urls: Mapping[str, str],
        *,
        client: httpx.AsyncClient | None = None,
        settings: Settings | None = None,
    ) -> None:
        """Make an invoker for the services in `base_urls`.

        Args:
            base_urls: App id to base URL; a method path is appended to its app's base URL.
            client: A client to send through instead of one of its own (left open by `aclose`).
            settings: The outbound policy of its own client (the environment's when None).
        """
        super().__init__(client, settings=settings, configured=base_urls.values())
        self.base_urls = {app_id: url.rstrip("/") for app_id, url in base_urls.items()}

    def url_for(self, app_id: str, method_path: str) -> str:
        """The URL a call to `method_path` of `app_id` goes to.

        Raises:
            ServiceInvocationError: no base URL is configured for `app_id`.
        """
        base = self.base_urls.get(app_id)
        if base is None:
            known = ", ".join(sorted(self.base_urls)) or "none"
            raise ServiceInvocationError(
                f"no base URL for app id {app_id!r} (known: {known}); add it to CONVEYOR_SERVICES",
                app_id=app_id,
            )
        return f"{base}/{method_path.lstrip('/')}"

    async def invoke(
        self,
        app_id: str,
        method_path: str,
        http_method: str = "POST",
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_seconds: float = 30,
    ) -> Any:
        """Call `method_path` of `app_id` and return its decoded body.

        Args:
            app_id: The service, a key of `base_urls`.
            method_path: The path under the service's base URL.
            http_method: The HTTP method.
            data: Sent as the JSON body when not None.
            params: The query string.
            timeout_seconds: How long to wait for the connection and for the answer.

        Returns:
            The decoded JSON body, the text of a non-JSON body, or None for an empty one.

        Raises:
            ServiceInvocationError: an unknown app id, no connection, a timeout or a non-2xx
                answer (its status in `status_code`, its decoded body in `body`).
        """
        url = self.url_for(app_id, method_path)
        response = await self._send(
            f"call to {app_id} {http_method.upper()} {method_path}",
            http_method,
            url,
            json_body=data,
            params=params,
            timeout_seconds=timeout_seconds,
            app_id=app_id,
        )
        return decode_body(response)


class DaprInvoker(HttpClientOwner):
    """Invokes services through a Dapr sidecar's service invocation API."""

    def __init__(
        self,
        endpoint: str,
        api_token: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        settings: Settings | None = None,
    ) -> None:
        """Make an invoker that calls through the sidecar at `endpoint`.

        Args:
            endpoint: The sidecar's HTTP address, e.g. ``http://127.0.0.1:3500``.
            api_token: Sent as the ``dapr-api-token`` header when the sidecar requires one.
            client: A client to send through instead of one of its own (left open by `aclose`).
            settings: The outbound policy of its own client (the environment's when None).
        """
        super().__init__(client, settings=settings, configured=[endpoint])
        self.endpoint = endpoint.rstrip("/")
        self._headers = {"dapr-api-token": api_token} if api_token else {}

    def url_for(self, app_id: str, method_path: str) -> str:
        """The sidecar URL a call to `method_path` of `app_id` goes to."""
        return (
            f"{self.endpoint}/v1.0/invoke/{quote(app_id, safe='')}/method/{method_path.lstrip('/')}"
        )

    async def invoke(
        self,
        app_id: str,
        method_path: str,
        http_method: str = "POST",
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_seconds: float = 30,
    ) -> Any:
        """Call `method_path` of `app_id` through the sidecar and return its decoded body.

        Args:
            app_id: The Dapr app id of the service.
            method_path: The method (path) to call on it.
            http_method: The HTTP method.
            data: Sent as the JSON body when not None.
            params: The query string, passed on to the service.
            timeout_seconds: How long to wait for the connection and for the answer.

        Returns:
            The decoded JSON body, the text of a non-JSON body, or None for an empty one.

        Raises:
            ServiceInvocationError: no connection to the sidecar, a timeout or a non-2xx answer
                from the service or the sidecar (status in `status_code`, body in `body`).
        """
        return decode_body(
            await self._send(
                f"call to {app_id} {http_method.upper()} {method_path} through Dapr",
                http_method,
                self.url_for(app_id, method_path),
                json_body=data,
                params=params,
                headers=self._headers,
                timeout_seconds=timeout_seconds,
                app_id=app_id,
            )
        )


def invoker_from_settings(settings: Settings) -> ServiceInvoker:
    """The invoker the configuration asks for.

    A Dapr sidecar when ``CONVEYOR_DAPR_HTTP_ENDPOINT`` is set, otherwise direct HTTP to the
    base URLs of ``CONVEYOR_SERVICES``.
    """
    if settings.dapr_http_endpoint:
        token = settings.dapr_api_token
        return DaprInvoker(
            settings.dapr_http_endpoint,
            token.get_secret_value() if token is not None else None,
            settings=settings,
        )
    return DirectHttpInvoker(settings.services, settings=settings)


__all__ = [
    "DaprInvoker",
    "DirectHttpInvoker",
    "HttpClientOwner",
    "decode_body",
    "describe_body",
    "hosts_of",
    "invoker_from_settings",
]
