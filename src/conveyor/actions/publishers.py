"""Publishers: how `ActionContext.publish` (and the `notify` action) put a message on a topic.

- `DaprPublisher`: a Dapr sidecar's pub/sub API, ``POST {endpoint}/v1.0/publish/{pubsub}/{topic}``
  with the metadata as ``metadata.<key>`` query parameters, as Dapr's API defines them.
- `HttpPublisher`: ``POST`` the message as JSON to a URL per topic (webhooks, or a service's
  own event endpoint), for running without Dapr.
- `MemoryPublisher`: keeps what is published in a list, for tests and embedded use.

`publisher_from_settings` picks one from the configuration. Every failure is a
`ServiceInvocationError` naming the topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from conveyor.actions._services import Publisher
from conveyor.actions.invokers import HttpClientOwner
from conveyor.errors import ConfigurationError, ServiceInvocationError

if TYPE_CHECKING:
    from conveyor.config import Settings

DEFAULT_TIMEOUT_SECONDS = 10.0
METADATA_HEADER_PREFIX = "X-Conveyor-Meta-"
"""`HttpPublisher` sends each metadata entry as a header with this prefix."""


class DaprPublisher(HttpClientOwner):
    """Publishes through a Dapr sidecar's pub/sub API."""

    def __init__(
        self,
        endpoint: str,
        pubsub_name: str,
        api_token: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Make a publisher for the pub/sub component `pubsub_name` of the sidecar at `endpoint`.

        Args:
            endpoint: The sidecar's HTTP address, e.g. ``http://127.0.0.1:3500``.
            pubsub_name: The name of the Dapr pub/sub component.
            api_token: Sent as the ``dapr-api-token`` header when the sidecar requires one.
            client: A client to send through instead of one of its own (left open by `aclose`).
            timeout_seconds: How long one publish may take.
        """
        super().__init__(client, configured=[endpoint])
        self.endpoint = endpoint.rstrip("/")
        self.pubsub_name = pubsub_name
        self.timeout_seconds = timeout_seconds
        self._headers = {"dapr-api-token": api_token} if api_token else {}

    def url_for(self, topic: str) -> str:
        """The sidecar URL a message for `topic` is posted to."""
        return (
            f"{self.endpoint}/v1.0/publish/{quote(self.pubsub_name, safe='')}/"
            f"{quote(topic, safe='')}"
        )

    async def publish(
        self, topic: str, data: Any, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Publish `data` (as JSON) to `topic`.

        Args:
            topic: The topic.
            data: The message; sent as its JSON body (Dapr wraps it in a CloudEvent).
            metadata: Sent as ``metadata.<key>`` query parameters (e.g. ``ttlInSeconds``).

        Raises:
            ServiceInvocationError: the sidecar cannot be reached, timed out or refused it.
        """
        params = {f"metadata.{key}": str(value) for key, value in (metadata or {}).items()}
        await self._send(
            f"publish to {self.pubsub_name}/{topic} through Dapr",
            "POST",
            self.url_for(topic),
            json_body=data,
            params=params,
            headers=self._headers,
            timeout_seconds=self.timeout_seconds,
        )


class HttpPublisher(HttpClientOwner):
    """Publishes by posting each message as JSON to the URL configured for its topic.

    Metadata entries travel as ``X-Conveyor-Meta-<key>`` headers, and the topic as
    ``X-Conveyor-Topic``, so the body is exactly the message.
    """

    def __init__(
        self,
        topic_urls: Mapping[str, str],
        *,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Make a publisher for the topics of `topic_urls`.

        Args:
            topic_urls: Topic to the URL its messages are posted to.
            client: A client to send through instead of one of its own (left open by `aclose`).
            timeout_seconds: How long one publish may take.
        """
        super().__init__(client, configured=topic_urls.values())
        self.topic_urls = dict(topic_urls)
        self.timeout_seconds = timeout_seconds

    async def publish(
        self, topic: str, data: Any, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Post `data` as JSON to the URL of `topic`.

        Raises:
            ServiceInvocationError: no URL is configured for `topic`, or the post failed.
        """
        url = self.topic_urls.get(topic)
        if url is None:
            known = ", ".join(sorted(self.topic_urls)) or "none"
            raise ServiceInvocationError(
                f"no URL for topic {topic!r} (known: {known}); add it to CONVEYOR_TOPIC_URLS"
            )
        headers = {"X-Conveyor-Topic": topic}
        headers.update(
            {
                f"{METADATA_HEADER_PREFIX}{key}": str(value)
                for key, value in (metadata or {}).items()
            }
        )
        await self._send(
            f"publish to {topic}",
            "POST",
            url,
            json_body=data,
            headers=headers,
            timeout_seconds=self.timeout_seconds,
        )


@dataclass(frozen=True)
class PublishedMessage:
    """One message a `MemoryPublisher` received."""

    topic: str
    data: Any
    metadata: dict[str, str] = field(default_factory=dict)


class MemoryPublisher:
    """Keeps published messages in `messages`, in order, instead of sending them.

    Each message is stored as a JSON copy: later changes to the caller's object do not show,
    and a message that a real publisher could not send fails here too.
    """

    def __init__(self) -> None:
        """Make an empty publisher."""
        self.messages: list[PublishedMessage] = []

    async def publish(
        self, topic: str, data: Any, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Record `data` for `topic`.

        Raises:
            ServiceInvocationError: `data` cannot be encoded as JSON.
        """
        try:
            copy = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise ServiceInvocationError(
                f"publish to {topic}: the data cannot be sent as JSON: {exc}"
            ) from exc
        self.messages.append(
            PublishedMessage(
                topic, copy, {key: str(value) for key, value in (metadata or {}).items()}
            )
        )

    def on_topic(self, topic: str) -> list[Any]:
        """The data of every message published to `topic`, in order."""
        return [message.data for message in self.messages if message.topic == topic]

    def clear(self) -> None:
        """Forget every message."""
        self.messages.clear()

    async def aclose(self) -> None:
        """Nothing to release; here so every publisher can be closed alike."""


def publisher_from_settings(settings: Settings) -> Publisher:
    """The publisher the configuration asks for.

    A Dapr sidecar when ``CONVEYOR_DAPR_HTTP_ENDPOINT`` is set, otherwise plain HTTP to the
    URLs of ``CONVEYOR_TOPIC_URLS``.

    Raises:
        ConfigurationError: neither is configured.
    """
    if settings.dapr_http_endpoint:
        token = settings.dapr_api_token
        return DaprPublisher(
            settings.dapr_http_endpoint,
            settings.pubsub_name,
            token.get_secret_value() if token is not None else None,
        )
    if settings.topic_urls:
        return HttpPublisher(settings.topic_urls)
    raise ConfigurationError(
        "nowhere to publish: set CONVEYOR_DAPR_HTTP_ENDPOINT to publish through a Dapr sidecar "
        "(to the pub/sub component CONVEYOR_PUBSUB_NAME), or CONVEYOR_TOPIC_URLS to a JSON map "
        'of topic to URL, e.g. \'{"conveyor-events": "http://127.0.0.1:9000/events"}\''
    )


__all__ = [
    "DaprPublisher",
    "HttpPublisher",
    "MemoryPublisher",
    "PublishedMessage",
    "publisher_from_settings",
]
