"""The interfaces actions reach the outside through: service invocation and publishing.

Implementations live in `conveyor.actions.invokers` and `conveyor.actions.publishers`; an
`ActionContext` carries the configured ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ServiceInvoker(Protocol):
    """Calls a method of another service by app id (direct HTTP or a Dapr sidecar)."""

    async def invoke(
        self,
        app_id: str,
        method_path: str,
        http_method: str = "POST",
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_seconds: float = 30,
    ) -> Any:
        """Call `method_path` of `app_id` and return its decoded JSON body (or text).

        Raises:
            ServiceInvocationError: no answer, a non-2xx status (with its body) or a timeout.
        """
        ...


@runtime_checkable
class Publisher(Protocol):
    """Publishes a message to a topic (Dapr pub/sub, webhooks, ...)."""

    async def publish(
        self, topic: str, data: Any, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Publish `data` to `topic`; raise `ServiceInvocationError` when it is not accepted."""
        ...
