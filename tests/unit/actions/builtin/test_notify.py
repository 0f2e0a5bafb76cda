"""``notify`` through each publisher; the HTTP ones against a real server on 127.0.0.1."""

from __future__ import annotations

from conveyor.actions import ActionContext, Publisher, validated_params
from conveyor.actions.builtin.notify import NotifyAction, NotifyExecutor
from conveyor.actions.publishers import DaprPublisher, HttpPublisher, MemoryPublisher
from conveyor.config import Settings
from tests.support.http_server import HttpTestServer
from tests.unit.actions.builtin.helpers import execute_raw


def context(
    publisher: Publisher | None = None, settings: Settings | None = None, **params: object
) -> ActionContext:
    return ActionContext(
        step_id="announce",
        execution_id="run-1",
        params=validated_params(NotifyAction.meta, params),
        publisher=publisher,
        settings=settings,
    )


async def test_publishes_to_the_memory_publisher() -> None:
    publisher = MemoryPublisher()

    outcome = await NotifyExecutor().execute(
        context(publisher, topic="orders", message={"id": 7}, metadata={"ttlInSeconds": 60})
    )

    assert outcome.success
    assert outcome.outputs == {"topic": "orders", "published": True}
    (message,) = publisher.messages
    assert (message.topic, message.data, message.metadata) == (
        "orders",
        {"id": 7},
        {"ttlInSeconds": "60"},
    )


async def test_publishes_through_a_dapr_sidecar(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/v1.0/publish/", status=204)
    settings = Settings(dapr_http_endpoint=http_server.url, pubsub_name="bus")
    ctx = context(settings=settings, topic="orders", message='{"id": 7}', metadata={"k": "v"})

    outcome = await NotifyExecutor().execute(ctx)

    assert outcome.success
    (request,) = http_server.requests
    assert request.path == "/v1.0/publish/bus/orders"
    assert request.json == {"id": 7}
    assert request.query == {"metadata.k": ["v"]}
    assert isinstance(ctx.publisher, DaprPublisher)
    await ctx.publisher.aclose()


async def test_publishes_to_the_topic_url(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/hooks/orders", status=200)
    async with HttpPublisher({"orders": http_server.url_for("/hooks/orders")}) as publisher:
        outcome = await NotifyExecutor().execute(
            context(publisher, topic="orders", message=["a", "b"])
        )

    assert outcome.success
    assert http_server.requests[0].json == ["a", "b"]
    assert http_server.requests[0].header("x-conveyor-topic") == "orders"


async def test_a_refused_publish_is_a_failed_result(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/v1.0/publish/", status=403, body={"message": "not allowed"})
    settings = Settings(dapr_http_endpoint=http_server.url)
    ctx = context(settings=settings, topic="orders", message={"id": 7})

    outcome = await NotifyExecutor().execute(ctx)

    assert not outcome.success
    assert "403" in (outcome.error or "")
    assert "not allowed" in (outcome.error or "")
    assert outcome.outputs == {"topic": "orders", "published": False}
    assert isinstance(ctx.publisher, DaprPublisher)
    await ctx.publisher.aclose()


async def test_unknown_topic_is_a_failed_result_naming_it() -> None:
    async with HttpPublisher({"a": "http://127.0.0.1:9/a"}) as publisher:
        outcome = await NotifyExecutor().execute(context(publisher, topic="b", message={}))

    assert not outcome.success
    assert "'b'" in (outcome.error or "")


async def test_nowhere_to_publish_explains_the_settings() -> None:
    outcome = await NotifyExecutor().execute(
        context(settings=Settings(), topic="orders", message={})
    )

    assert not outcome.success
    assert "CONVEYOR_TOPIC_URLS" in (outcome.error or "")


async def test_metadata_that_is_not_an_object_fails() -> None:
    outcome = await execute_raw(NotifyAction, {"topic": "t", "message": {}, "metadata": [1]})

    assert not outcome.success
    assert "metadata must be a JSON object" in (outcome.error or "")
