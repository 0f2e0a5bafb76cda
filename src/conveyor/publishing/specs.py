"""Where a run's lifecycle goes, as a run's start request names it: topics and webhooks.

The models check what can be checked alone (lengths, known message types); whether a URL may
be reached depends on the outbound policy and on DNS, so `check_targets` does that, with the
settings, before the run starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

from conveyor.actions.network import check_url
from conveyor.errors import ServiceInvocationError
from conveyor.publishing.messages import EVENT_TYPES
from conveyor.publishing.signing import signing_key

if TYPE_CHECKING:
    from conveyor.config import Settings

MAX_TARGETS = 10
"""The most topics, and the most webhooks, one run publishes to."""
_RESOLVE_TIMEOUT_SECONDS = 5.0

CallbackTopic = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")
]
"""A pub/sub topic name: letters, digits and ``. _ : / -``."""


def _known_pattern(pattern: str) -> str:
    if not any(fnmatchcase(kind, pattern) for kind in EVENT_TYPES):
        raise ValueError(
            f"{pattern!r} matches no message type; types are {', '.join(EVENT_TYPES)} "
            "(glob patterns such as conveyor.step.* are allowed)"
        )
    return pattern


EventPattern = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(_known_pattern)
]


class WebhookSpec(BaseModel):
    """A URL that receives the run's lifecycle as signed JSON ``POST`` requests."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2000,
        description="An http or https URL; internal addresses are refused unless the "
        "service allows private networks.",
    )
    secret: SecretStr = Field(
        min_length=16,
        max_length=500,
        description="The key of the `webhook-signature` header (Standard Webhooks: HMAC-SHA256 "
        "of `{webhook-id}.{webhook-timestamp}.{body}`); a `whsec_<base64>` secret is the bytes "
        "it encodes, any other its UTF-8 bytes. Write-only: stored encrypted for signing, never "
        "returned.",
    )

    @field_validator("secret")
    @classmethod
    def _usable_key(cls, value: SecretStr) -> SecretStr:
        signing_key(value.get_secret_value())  # A ValueError names what is wrong.
        return value

    events: list[EventPattern] | None = Field(
        default=None,
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Message types to send (glob patterns, e.g. `conveyor.run.*`); all when "
        "absent.",
    )


@dataclass(frozen=True)
class Target:
    """One place a run's lifecycle goes, as stored."""

    id: str
    run_id: str
    position: int
    kind: Literal["topic", "webhook"]
    address: str
    secret: str | None = None
    events: list[str] | None = None


async def check_targets(
    settings: Settings, topics: list[str], webhooks: list[WebhookSpec]
) -> list[tuple[str, str]]:
    """Every problem with where a run asks its lifecycle to go, as (path, message).

    Topics need somewhere to publish (a Dapr sidecar, or a URL for the topic); webhook URLs
    must pass the outbound guard with the service's settings.
    """
    problems: list[tuple[str, str]] = []
    if topics and not settings.dapr_http_endpoint:
        for i, topic in enumerate(topics):
            if topic not in settings.topic_urls:
                problems.append(
                    (
                        f"callback_topics[{i}]",
                        "nowhere to publish it: the service has no Dapr sidecar "
                        "(CONVEYOR_DAPR_HTTP_ENDPOINT) and no URL for this topic "
                        "(CONVEYOR_TOPIC_URLS)",
                    )
                )
    for i, hook in enumerate(webhooks):
        try:
            async with asyncio.timeout(_RESOLVE_TIMEOUT_SECONDS):
                await check_url(hook.url, settings)
        except TimeoutError:
            problems.append((f"webhooks[{i}].url", "its host name did not resolve in time"))
        except ServiceInvocationError as exc:  # BlockedAddressError is one.
            problems.append((f"webhooks[{i}].url", str(exc)))
    return problems
