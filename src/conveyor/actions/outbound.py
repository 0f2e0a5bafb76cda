"""HTTP clients whose connections go only where the outbound guard said they may.

`conveyor.actions.network.check_url` checks a URL before it is requested, resolving its host
name to do so; a client that resolved the name again to connect could reach another address
(DNS rebinding: a name that answers a public address to the check and ``127.0.0.1`` to the
connect). The clients made here resolve each host once, when the connection is made, check
every address with `connect_addresses`, and connect to one of those very addresses. The URL
is left alone, so the ``Host`` header, TLS SNI and certificate verification all still use the
name, and pooled connections stay keyed by it.

httpx takes no network backend, so `GuardedTransport` swaps the connection pool httpx built
for one that connects through `_GuardedBackend`. Environment proxies (``HTTPS_PROXY``) are not
used: through a proxy the guard could not know where a connection goes.

    async with guarded_client(settings, timeout=10) as client:
        await client.get(url)   # BlockedAddressError when it would reach a refused address
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from conveyor.actions.network import connect_addresses
from conveyor.errors import BlockedAddressError, ServiceInvocationError

if TYPE_CHECKING:
    from conveyor.config import Settings

__all__ = ["GuardedTransport", "guarded_client"]

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx's own default limits."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses `connect_addresses` checked."""

    def __init__(self, settings: Settings, allowed: Iterable[str]) -> None:
        self._settings = settings
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await connect_addresses(host, port, self._settings, allowed=self._allowed)
        except BlockedAddressError:
            raise
        except ServiceInvocationError as exc:
            # A name that does not resolve fails as a connection, as it does in any client.
            raise httpcore.ConnectError(str(exc)) from exc
        failed: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None  # connect_addresses never returns an empty list.
        raise failed

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError(f"refused the Unix socket {path!r}: only TCP is allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that connects only to addresses the outbound policy allows."""

    def __init__(
        self,
        settings: Settings,
        *,
        allowed: Iterable[str] = (),
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = _LIMITS,
    ) -> None:
        """Make a transport for `settings`' outbound policy.

        Args:
            settings: `allow_private_networks` and `allowed_hosts`.
            allowed: More names or CIDR blocks to allow (the operator's configured services).
            verify: The TLS context (or whether to verify with the default one).
            limits: Connection pool limits.
        """
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(settings, allowed),
        )


def guarded_client(
    settings: Settings | None = None,
    *,
    allowed: Iterable[str] = (),
    verify: ssl.SSLContext | bool = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` over a `GuardedTransport`; `kwargs` go to the client.

    Redirects are not followed unless `kwargs` asks for it (each hop should be checked first).
    """
    if settings is None:
        from conveyor.config import Settings

        settings = Settings()
    kwargs.setdefault("follow_redirects", False)
    transport = GuardedTransport(settings, allowed=allowed, verify=verify)
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
