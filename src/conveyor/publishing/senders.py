"""Sending one delivery: a signed webhook request, or a CloudEvent on a callback topic.

Both raise `DeliveryError` when the attempt failed; `permanent` says trying again cannot help
(the outbound guard refuses the URL), so the delivery is given up at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from conveyor.actions._services import Publisher
from conveyor.actions.invokers import HttpClientOwner
from conveyor.actions.network import check_url
from conveyor.actions.publishers import DaprPublisher, HttpPublisher
from conveyor.errors import BlockedAddressError, ServiceInvocationError
from conveyor.publishing import signing
from conveyor.publishing.messages import CLOUDEVENT_CONTENT_TYPE

if TYPE_CHECKING:
    from conveyor.config import Settings

_ERROR_BODY_LIMIT = 200


class DeliveryError(Exception):
    """One attempt of a delivery failed."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class WebhookSender(HttpClientOwner):
    """Posts signed lifecycle messages to webhook URLs."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        """Make a sender that follows `settings`' outbound policy and timeout."""
        super().__init__(client, settings=settings)
        self.settings = settings

    async def send(
        self,
        url: str,
        secret: str,
        body: bytes,
        *,
        msg_id: str,
        timestamp: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Post `body` to `url` as delivery `msg_id` at `timestamp`, signed with `secret`
        (the Standard Webhooks headers of `conveyor.publishing.signing`).

        The URL is checked again on every attempt: the policy may have changed since the run
        started, and so may what its host name resolves to.

        Raises:
            DeliveryError: the URL is refused (permanent), or the receiver could not be
                reached, timed out or did not answer 2xx.
        """
        try:
            await check_url(url, self.settings)
        except BlockedAddressError as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        except ServiceInvocationError as exc:
            raise DeliveryError(str(exc)) from exc
        all_headers = {
            "Content-Type": "application/json",
            **signing.signed_headers(secret, msg_id, timestamp, body),
            **(headers or {}),
        }
        try:
            response = await self.client.post(
                url,
                content=body,
                headers=all_headers,
                timeout=httpx.Timeout(self.settings.publish_timeout_seconds),
            )
        except BlockedAddressError as exc:
            # The name resolved to a refused address when connecting (DNS rebinding).
            raise DeliveryError(str(exc), permanent=True) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"timed out after {self.settings.publish_timeout_seconds:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            text = response.text[:_ERROR_BODY_LIMIT]
            raise DeliveryError(
                f"answered {response.status_code} {response.reason_phrase}"
                + (f": {text}" if text else "")
            )


class _CloudEventDaprPublisher(DaprPublisher):
    # Dapr takes a body of content type application/cloudevents+json as the CloudEvent
    # itself instead of wrapping it, so subscribers get our id and type.
    async def publish_cloud_event(self, topic: str, event: Mapping[str, Any]) -> None:
        await self._send(
            f"publish to {self.pubsub_name}/{topic} through Dapr",
            "POST",
            self.url_for(topic),
            json_body=event,
            headers={**self._headers, "Content-Type": CLOUDEVENT_CONTENT_TYPE},
            timeout_seconds=self.timeout_seconds,
        )


class TopicSender:
    """Publishes lifecycle CloudEvents to callback topics.

    Through the Dapr sidecar of `Settings.dapr_http_endpoint` (pub/sub component
    `Settings.pubsub_name`) when one is configured, otherwise by posting to the topic's URL of
    `Settings.topic_urls`. The sidecar and the topic URLs are the operator's configuration,
    so the outbound guard (which is about URLs that requests name) does not apply to them.
    """

    def __init__(self, settings: Settings) -> None:
        """Make a sender for `settings`' sidecar or topic URLs."""
        self._publisher: _CloudEventDaprPublisher | Publisher | None = None
        timeout = settings.publish_timeout_seconds
        if settings.dapr_http_endpoint:
            token = settings.dapr_api_token
            self._publisher = _CloudEventDaprPublisher(
                settings.dapr_http_endpoint,
                settings.pubsub_name,
                token.get_secret_value() if token is not None else None,
                timeout_seconds=timeout,
            )
        elif settings.topic_urls:
            self._publisher = HttpPublisher(settings.topic_urls, timeout_seconds=timeout)

    async def send(self, topic: str, event: Mapping[str, Any]) -> None:
        """Publish `event` to `topic`.

        Raises:
            DeliveryError: nowhere to publish, or the publish failed.
        """
        publisher = self._publisher
        if publisher is None:
            raise DeliveryError(
                "nowhere to publish: no Dapr sidecar and no topic URLs are configured"
            )
        try:
            if isinstance(publisher, _CloudEventDaprPublisher):
                await publisher.publish_cloud_event(topic, event)
            else:
                await publisher.publish(topic, dict(event))
        except ServiceInvocationError as exc:
            raise DeliveryError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close the publisher's connections."""
        close = getattr(self._publisher, "aclose", None)
        if close is not None:
            await close()


def encode(body: Mapping[str, Any]) -> bytes:
    """The exact bytes a webhook request carries (and its signature covers)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
