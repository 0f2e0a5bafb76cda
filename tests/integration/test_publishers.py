"""The publishers against a real HTTP server on 127.0.0.1 (as a Dapr sidecar or a webhook)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from conveyor.actions import ActionContext, Publisher
from conveyor.actions.publishers import (
    DaprPublisher,
    HttpPublisher,
    MemoryPublisher,
    PublishedMessage,
    publisher_from_settings,
)
from conveyor.config import Settings
from conveyor.errors import ConfigurationError, ServiceInvocationError
from tests.support.http_server import HttpTestServer, closed_port_url


async def test_dapr_posts_to_the_publish_api_with_metadata_as_query(
    http_server: HttpTestServer,
) -> None:
    http_server.route("POST", "/v1.0/publish/", status=204)

    async with DaprPublisher(http_server.url, "pubsub", api_token="tok") as publisher:
        await publisher.publish(
            "conveyor-events", {"workflow_id": "wf-1"}, {"ttlInSeconds": "60", "rawPayload": "true"}
        )

    (request,) = http_server.requests
    assert request.method == "POST"
    assert request.path == "/v1.0/publish/pubsub/conveyor-events"
    assert request.json == {"workflow_id": "wf-1"}
    assert request.query == {"metadata.ttlInSeconds": ["60"], "metadata.rawPayload": ["true"]}
    assert request.header("dapr-api-token") == "tok"
    assert request.header("content-type") == "application/json"


async def test_dapr_refusal_is_an_error_with_the_sidecar_body(
    http_server: HttpTestServer,
) -> None:
    body = {"errorCode": "ERR_PUBSUB_NOT_FOUND", "message": "pubsub nope not found"}
    http_server.route("POST", "/v1.0/publish/nope/", status=404, body=body)

    async with DaprPublisher(http_server.url, "nope") as publisher:
        with pytest.raises(ServiceInvocationError, match="ERR_PUBSUB_NOT_FOUND") as caught:
            await publisher.publish("t", {"x": 1})

    assert caught.value.status_code == 404
    assert caught.value.body == body
    assert "nope/t" in str(caught.value)


async def test_dapr_unreachable_sidecar_is_an_error() -> None:
    async with DaprPublisher(closed_port_url(), "pubsub", timeout_seconds=5) as publisher:
        with pytest.raises(ServiceInvocationError, match="could not connect"):
            await publisher.publish("t", {})


async def test_dapr_slow_sidecar_times_out(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/v1.0/publish/", status=204, delay=3)

    async with DaprPublisher(http_server.url, "pubsub", timeout_seconds=0.2) as publisher:
        with pytest.raises(ServiceInvocationError, match=r"timed out after 0\.2 s"):
            await publisher.publish("t", {})


async def test_http_posts_the_message_as_json_to_the_topic_url(
    http_server: HttpTestServer,
) -> None:
    http_server.route("POST", "/hooks/", status=202)

    async with HttpPublisher({"done": http_server.url_for("/hooks/done")}) as publisher:
        await publisher.publish("done", [1, "two"], {"source": "test"})

    (request,) = http_server.requests
    assert request.path == "/hooks/done"
    assert request.json == [1, "two"]
    assert request.header("x-conveyor-topic") == "done"
    assert request.header("x-conveyor-meta-source") == "test"


async def test_http_unknown_topic_names_it_and_the_known_ones() -> None:
    async with HttpPublisher({"a": "http://127.0.0.1:1/a"}) as publisher:
        with pytest.raises(ServiceInvocationError, match=r"'b' \(known: a\)"):
            await publisher.publish("b", {})


async def test_http_error_status_is_an_error(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/hooks/", status=500, body="boom")

    async with HttpPublisher({"t": http_server.url_for("/hooks/t")}) as publisher:
        with pytest.raises(ServiceInvocationError, match=r"500.*boom"):
            await publisher.publish("t", {})


async def test_memory_keeps_json_copies_in_order() -> None:
    publisher = MemoryPublisher()
    message = {"n": 1}

    await publisher.publish("a", message)
    message["n"] = 2
    await publisher.publish("b", message, {"k": "v"})

    assert publisher.messages == [
        PublishedMessage("a", {"n": 1}),
        PublishedMessage("b", {"n": 2}, {"k": "v"}),
    ]
    assert publisher.on_topic("a") == [{"n": 1}]
    publisher.clear()
    assert publisher.messages == []


async def test_memory_refuses_what_cannot_be_json() -> None:
    with pytest.raises(ServiceInvocationError, match="cannot be sent as JSON"):
        await MemoryPublisher().publish("a", {"x": {1, 2}})


def test_settings_choose_dapr_then_http() -> None:
    dapr = publisher_from_settings(
        Settings(
            dapr_http_endpoint="http://127.0.0.1:3500",
            dapr_api_token=SecretStr("t"),
            pubsub_name="bus",
            topic_urls={"a": "http://127.0.0.1:1"},
        )
    )
    http = publisher_from_settings(Settings(topic_urls={"a": "http://127.0.0.1:1"}))

    assert isinstance(dapr, DaprPublisher)
    assert dapr.url_for("x y") == "http://127.0.0.1:3500/v1.0/publish/bus/x%20y"
    assert isinstance(http, HttpPublisher)
    assert isinstance(http, Publisher)
    assert isinstance(MemoryPublisher(), Publisher)


def test_settings_without_a_destination_explain_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as caught:
        publisher_from_settings(Settings())

    assert "CONVEYOR_DAPR_HTTP_ENDPOINT" in str(caught.value)
    assert "CONVEYOR_TOPIC_URLS" in str(caught.value)


async def test_action_context_publishes_through_the_configured_publisher(
    http_server: HttpTestServer,
) -> None:
    http_server.route("POST", "/v1.0/publish/", status=204)
    context = ActionContext(
        step_id="s",
        execution_id="r",
        settings=Settings(dapr_http_endpoint=http_server.url, pubsub_name="events"),
    )

    await context.publish("runs", {"run": "r"})

    assert http_server.requests[0].path == "/v1.0/publish/events/runs"
    assert isinstance(context.publisher, DaprPublisher)
    await context.publisher.aclose()
