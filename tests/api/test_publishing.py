"""Lifecycle publishing over real HTTP: a run's lifecycle reaches its webhooks, signed and in
order, and its callback topics through a Dapr sidecar's publish API.

Receivers are real servers on 127.0.0.1 (uvicorn, like the service): a webhook receiver that
checks every signature, and a fake Dapr sidecar that answers Dapr's publish route.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

import conveyor.publishing
from conveyor.actions import ActionRegistry
from conveyor.api import Service, create_app
from conveyor.api.keys import create_key
from conveyor.config import Settings
from conveyor.publishing import (
    EVENT_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_seconds,
    sign,
    specs,
    verify,
)
from conveyor.publishing.outbox import Outbox
from conveyor.publishing.signing import signed_headers
from tests.api import docs
from tests.api.live import client_for, serve

SECRET = "a-webhook-secret-of-some-length"
WAIT = 30.0

LIFECYCLE = [
    "conveyor.run.started",
    "conveyor.step.started",
    "conveyor.step.completed",
    "conveyor.step.started",
    "conveyor.step.completed",
    "conveyor.run.completed",
]
"""What `docs.greeting()` (two steps, one after the other) publishes."""


# ------------------------------------------------------------------ real receivers


@dataclass
class Receiver:
    """A webhook receiver that checks signatures; it answers 503 to its first `fail_first`
    requests, and to every request while `down`."""

    secret: str = SECRET
    fail_first: int = 0
    down: bool = False
    delay: float = 0.0
    requests: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bad_signatures: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.requests += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.down or self.requests <= self.fail_first:
                return Response("not now", status_code=503)
            if not verify(self.secret, body, request.headers):
                self.bad_signatures += 1
                return Response(status_code=401)
            self.messages.append(json.loads(body))
            self.headers.append(dict(request.headers))
            return Response(status_code=204)

        return app

    def types(self) -> list[str]:
        return [message["type"] for message in self.messages]


@dataclass
class Sidecar:
    """A fake Dapr sidecar: records what is posted to ``/v1.0/publish/{pubsub}/{topic}``."""

    published: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1.0/publish/{pubsub}/{topic}")
        async def publish(pubsub: str, topic: str, request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            self.published.append((pubsub, topic, content_type, json.loads(await request.body())))
            return Response(status_code=204)

        @app.post("/topics/{topic}")
        async def plain(topic: str, request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            self.published.append(("", topic, content_type, json.loads(await request.body())))
            return Response(status_code=204)

        return app


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `predicate()` holds.

    Polled: what it reads is state of servers and of the database, with no event to await.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@dataclass
class Running:
    service: Service
    http: httpx.AsyncClient
    url: str


@asynccontextmanager
async def running(
    settings: Settings, registry: ActionRegistry, owner: str = "alice"
) -> AsyncIterator[Running]:
    """The service served on 127.0.0.1, with a client holding a write key of `owner`."""
    service = Service.create(settings, registry=registry)
    async with serve(create_app(service)) as url:
        token = create_key(service.store, owner, "write")[1]
        async with client_for(url, token) as http:
            yield Running(service, http, url)


def fast(tmp_path: Path, **changes: Any) -> Settings:
    """Settings that reach loopback receivers and retry quickly."""
    base: dict[str, Any] = {
        "db_path": tmp_path / "conveyor.db",
        "allow_private_networks": True,
        "publish_backoff_seconds": 0.05,
        "publish_max_backoff_seconds": 0.2,
        "publish_max_attempts": 5,
    }
    return Settings(**{**base, **changes})


async def start(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/runs", json={"pipeline": docs.greeting(), **body})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def deliveries(http: httpx.AsyncClient, run_id: str, **query: Any) -> list[dict[str, Any]]:
    response = await http.get(f"/runs/{run_id}/deliveries", params={"limit": 500, **query})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# ------------------------------------------------------------------ webhooks


async def test_a_runs_lifecycle_arrives_in_order_and_signed(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        run = await start(api.http, params={"who": "Ada"}, webhooks=[hook])
        await until(lambda: "conveyor.run.completed" in receiver.types())

        assert receiver.types() == LIFECYCLE
        assert receiver.bad_signatures == 0
        first, last = receiver.messages[0], receiver.messages[-1]
        assert first["run_id"] == run["run_id"] and first["pipeline"] == "greet"
        assert [m["step_id"] for m in receiver.messages[1:5]] == ["say", "say", "keep", "keep"]
        seqs = [m["seq"] for m in receiver.messages]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert receiver.messages[4]["outputs"] == {"greeting": "hello Ada"}
        assert last["status"] == "completed" and last["outputs"] == {"greeting": "hello Ada"}
        for message, headers in zip(receiver.messages, receiver.headers, strict=True):
            assert headers[ID_HEADER] == message["delivery_id"]
            assert headers[SIGNATURE_HEADER].startswith("v1,")
            assert headers[EVENT_HEADER.lower()] == message["type"]
            assert abs(int(headers[TIMESTAMP_HEADER.lower()]) - time.time()) < 60
            assert message["id"] == f"{run['run_id']}:{message['seq']}"

        listed = await deliveries(api.http, run["run_id"])
        assert [d["type"] for d in listed] == LIFECYCLE
        assert {(d["status"], d["attempts"], d["target"]) for d in listed} == {
            ("delivered", 1, "webhook")
        }
        assert listed[0]["destination"] == hook_url + "/hook"
        raw = (await api.http.get(f"/runs/{run['run_id']}/deliveries")).text
        assert SECRET not in raw


async def test_starting_again_with_the_same_key_adds_no_targets(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        run = await start(api.http, webhooks=[hook], idempotency_key="once")
        await until(lambda: "conveyor.run.completed" in receiver.types())
        body = {"pipeline": docs.greeting(), "webhooks": [hook, hook], "idempotency_key": "once"}
        again = await api.http.post("/runs", json=body)
        assert again.status_code == 200 and again.json()["run_id"] == run["run_id"]
        # The replay recorded no target, so no second round of deliveries can follow.
        assert len(Outbox(api.service.store).targets_of(run["run_id"])) == 1
        assert receiver.types() == LIFECYCLE
        assert len(await deliveries(api.http, run["run_id"])) == len(LIFECYCLE)


async def test_event_filter_sends_only_matching_types(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET, "events": ["conveyor.run.*"]}
        run = await start(api.http, webhooks=[hook])
        await until(lambda: "conveyor.run.completed" in receiver.types())
        assert receiver.types() == ["conveyor.run.started", "conveyor.run.completed"]
        assert len(await deliveries(api.http, run["run_id"])) == 2


async def test_large_outputs_are_left_out(tmp_path: Path, action_registry: ActionRegistry) -> None:
    receiver = Receiver()
    settings = fast(tmp_path, publish_max_output_bytes=10)
    async with serve(receiver.app()) as hook_url, running(settings, action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET, "events": ["conveyor.*.completed"]}
        await start(api.http, params={"who": "a long enough name"}, webhooks=[hook])
        await until(lambda: "conveyor.run.completed" in receiver.types())
        assert len(receiver.messages) == 3
        for message in receiver.messages:
            assert message["outputs"] is None and message["outputs_omitted"] is True


async def test_failed_run_publishes_the_step_failure_and_the_run_failure(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        response = await api.http.post(
            "/runs", json={"pipeline": docs.failing(), "webhooks": [hook]}
        )
        assert response.status_code == 201
        await until(lambda: "conveyor.run.failed" in receiver.types())
        failed = [m for m in receiver.messages if m["type"] == "conveyor.step.failed"]
        assert [m["step_id"] for m in failed] == ["boom"]
        assert "no" in (failed[0]["error"] or "")
        assert receiver.messages[-1]["type"] == "conveyor.run.failed"


async def test_a_retry_publishes_where_its_run_did(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        first = (
            await api.http.post("/runs", json={"pipeline": docs.failing(), "webhooks": [hook]})
        ).json()
        await until(lambda: "conveyor.run.failed" in receiver.types())
        retried = await api.http.post(f"/runs/{first['run_id']}/retry")
        assert retried.status_code == 201
        second = retried.json()["run_id"]
        await until(
            lambda: any(
                m["run_id"] == second and m["type"] == "conveyor.run.failed"
                for m in receiver.messages
            )
        )
        theirs = [m for m in receiver.messages if m["run_id"] == second]
        assert theirs[0]["type"] == "conveyor.run.started"
        assert theirs[-1]["type"] == "conveyor.run.failed"
        assert len(await deliveries(api.http, second)) == len(theirs)


async def test_a_receiver_failing_twice_gets_the_message_on_the_third_attempt(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(fail_first=2)
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        run = await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: "conveyor.run.completed" in receiver.types())

        assert receiver.types() == LIFECYCLE  # Still in order: later ones waited.
        assert receiver.requests == len(LIFECYCLE) + 2
        listed = await deliveries(api.http, run["run_id"])
        assert [d["attempts"] for d in listed] == [3, 1, 1, 1, 1, 1]
        assert listed[0]["status"] == "delivered"
        assert "503" in listed[0]["last_error"]


async def test_a_dead_receiver_is_recorded_failed_after_max_attempts(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = fast(tmp_path, publish_max_attempts=3, publish_backoff_seconds=0.01)
    async with running(settings, action_registry) as api:
        run = await start(api.http, webhooks=[{"url": closed_port_url(), "secret": SECRET}])

        async def all_failed() -> list[dict[str, Any]]:
            listed = await deliveries(api.http, run["run_id"])
            return (
                listed if len(listed) == 6 and all(d["status"] == "failed" for d in listed) else []
            )

        listed: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not (listed := await all_failed()):  # noqa: ASYNC110 - read over HTTP
                await asyncio.sleep(0.05)
        assert {d["attempts"] for d in listed} == {3}
        assert all("connect" in d["last_error"].lower() for d in listed)
        assert all(d["next_attempt_at"] is None for d in listed)
        failed = await deliveries(api.http, run["run_id"], status="failed")
        assert len(failed) == 6
        assert await deliveries(api.http, run["run_id"], status="delivered") == []


async def test_pending_deliveries_resume_after_a_restart(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(down=True)
    settings = fast(tmp_path, publish_max_attempts=100)
    async with serve(receiver.app()) as hook_url:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        async with running(settings, action_registry) as api:
            run = await start(api.http, webhooks=[hook])
            await until(lambda: receiver.requests >= 2)
            listed = await deliveries(api.http, run["run_id"])
            assert {d["status"] for d in listed} == {"pending"}
        # Stopped, with everything still pending. The receiver recovers, the service restarts.
        assert receiver.messages == []
        receiver.down = False
        async with running(settings, action_registry) as api:
            await until(lambda: "conveyor.run.completed" in receiver.types())
            assert receiver.types() == LIFECYCLE
            listed = await deliveries(api.http, run["run_id"])
            assert {d["status"] for d in listed} == {"delivered"}
            assert listed[0]["attempts"] >= 2


async def test_a_slow_receiver_does_not_slow_the_engine(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(delay=2.0)
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        began = time.monotonic()
        run = await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        finished = await api.service.backend.wait(run["run_id"], timeout=WAIT)
        took = time.monotonic() - began
        assert finished.succeeded
        # Six messages at 2 s each would take 12 s if the engine waited on them.
        assert took < 2.0, took
        assert receiver.messages == []


# ------------------------------------------------------------------ callback topics (Dapr)


async def test_callback_topics_reach_the_dapr_sidecar_as_cloudevents(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    sidecar = Sidecar()
    async with serve(sidecar.app()) as sidecar_url:
        settings = fast(tmp_path, dapr_http_endpoint=sidecar_url, pubsub_name="lifecycle-bus")
        async with running(settings, action_registry) as api:
            run = await start(api.http, callback_topics=["runs", "audit"])

            def types(topic: str) -> list[str]:
                return [e["type"] for _, t, _, e in sidecar.published if t == topic]

            await until(
                lambda: all(types(t)[-1:] == ["conveyor.run.completed"] for t in ("runs", "audit"))
            )
            assert types("runs") == LIFECYCLE and types("audit") == LIFECYCLE
            for pubsub, _topic, content_type, event in sidecar.published:
                assert pubsub == "lifecycle-bus"
                assert content_type.startswith("application/cloudevents+json")
                assert event["specversion"] == "1.0" and event["source"] == "conveyor"
                assert event["data"]["run_id"] == run["run_id"]
                assert event["subject"].startswith(run["run_id"])
                assert event["time"] == event["data"]["at"]
            ids = [event["id"] for *_, event in sidecar.published]
            assert len(set(ids)) == len(ids)
            listed = await deliveries(api.http, run["run_id"])
            assert {(d["target"], d["status"]) for d in listed} == {("topic", "delivered")}
            assert {d["destination"] for d in listed} == {"runs", "audit"}


async def test_without_dapr_callback_topics_go_to_their_configured_urls(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    sidecar = Sidecar()
    async with serve(sidecar.app()) as base:
        settings = fast(tmp_path, topic_urls={"runs": base + "/topics/runs"})
        async with running(settings, action_registry) as api:
            run = await start(api.http, callback_topics=["runs"])
            await until(
                lambda: (
                    [e["type"] for *_, e in sidecar.published][-1:] == ["conveyor.run.completed"]
                )
            )
            assert [e["type"] for *_, e in sidecar.published] == LIFECYCLE
            assert {(p, t) for p, t, _, _ in sidecar.published} == {("", "runs")}
            assert all(e["data"]["run_id"] == run["run_id"] for *_, e in sidecar.published)


# ------------------------------------------------------------------ refused at start


async def test_a_loopback_webhook_is_refused_by_default(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = Settings(db_path=tmp_path / "conveyor.db")
    async with running(settings, action_registry) as api:
        hooks = [
            {"url": "http://127.0.0.1:8080/hook", "secret": SECRET},
            {"url": "https://8.8.8.8/hook", "secret": SECRET},  # Public: no complaint.
        ]
        response = await api.http.post(
            "/runs", json={"pipeline": docs.greeting(), "webhooks": hooks}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_targets"
        assert [f["path"] for f in error["fields"]] == ["webhooks[0].url"]
        assert "loopback" in error["fields"][0]["message"]
        # Nothing started.
        assert (await api.http.get("/runs")).json()["total"] == 0


async def test_a_loopback_webhook_is_allowed_when_the_settings_allow_it(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    settings = Settings(db_path=tmp_path / "conveyor.db", allowed_hosts=["127.0.0.1"])
    async with serve(receiver.app()) as hook_url, running(settings, action_registry) as api:
        await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: "conveyor.run.completed" in receiver.types())


async def test_bad_targets_are_refused_naming_the_field(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = Settings(db_path=tmp_path / "conveyor.db")
    hook = {"url": "https://8.8.8.8/hook", "secret": SECRET}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"webhooks": [{**hook, "secret": "short"}]}, 422, "webhooks[0].secret"),
        ({"webhooks": [{"url": hook["url"]}]}, 422, "webhooks[0].secret"),
        ({"webhooks": [{**hook, "events": ["conveyor.nope"]}]}, 422, "webhooks[0].events[0]"),
        ({"webhooks": [{**hook, "events": []}]}, 422, "webhooks[0].events"),
        ({"webhooks": [{**hook, "colour": "red"}]}, 422, "webhooks[0].colour"),
        ({"webhooks": [{**hook, "url": ""}]}, 422, "webhooks[0].url"),
        ({"webhooks": [hook] * 11}, 422, "webhooks"),
        ({"webhooks": [{**hook, "url": "ftp://8.8.8.8/x"}]}, 400, "webhooks[0].url"),
        ({"webhooks": [{**hook, "url": "http://169.254.169.254/"}]}, 400, "webhooks[0].url"),
        ({"webhooks": [hook, {**hook, "url": "http://a.invalid/"}]}, 400, "webhooks[1].url"),
        ({"callback_topics": ["has space"]}, 422, "callback_topics[0]"),
        # No Dapr sidecar and no topic URL: nowhere to publish.
        ({"callback_topics": ["runs"]}, 400, "callback_topics[0]"),
    ]
    async with running(settings, action_registry) as api:
        for extra, status, path in cases:
            body = {"pipeline": docs.greeting(), **extra}
            response = await api.http.post("/runs", json=body)
            assert response.status_code == status, (extra, response.text)
            paths = [f["path"] for f in response.json()["error"]["fields"]]
            assert path in paths, (extra, paths)
            assert SECRET not in response.text
        assert (await api.http.get("/runs")).json()["total"] == 0


async def test_a_host_that_does_not_resolve_in_time_is_refused(
    tmp_path: Path, action_registry: ActionRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A DNS server that never answers cannot run here: the resolver is made slow instead.
    def slow_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        raise socket.gaierror("no answer")

    monkeypatch.setattr(specs, "_RESOLVE_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    settings = Settings(db_path=tmp_path / "conveyor.db")
    async with running(settings, action_registry) as api:
        hook = {"url": "https://hooks.example.com/x", "secret": SECRET}
        response = await api.http.post(
            "/runs", json={"pipeline": docs.greeting(), "webhooks": [hook]}
        )
        assert response.status_code == 400
        field = response.json()["error"]["fields"][0]
        assert field == {
            "path": "webhooks[0].url",
            "message": "its host name did not resolve in time",
        }


async def test_a_service_without_publishing_refuses_targets(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = fast(tmp_path)
    service = Service.create(settings, registry=action_registry)
    vars(service).pop("publishing")  # As a service put together without `install`.
    async with serve(create_app(service)) as url:
        token = create_key(service.store, "alice", "write")[1]
        async with client_for(url, token) as http:
            hook = {"url": "http://127.0.0.1:9/hook", "secret": SECRET}
            response = await http.post(
                "/runs", json={"pipeline": docs.greeting(), "webhooks": [hook]}
            )
            assert response.status_code == 400
            assert "does not publish" in response.json()["error"]["message"]
            assert (await http.post("/runs", json={"pipeline": docs.greeting()})).status_code == 201


async def test_a_url_refused_when_sent_fails_at_once(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(down=True)
    async with serve(receiver.app()) as hook_url:
        hook = {"url": hook_url + "/hook", "secret": SECRET}
        async with running(fast(tmp_path, publish_max_attempts=100), action_registry) as api:
            run = await start(api.http, webhooks=[hook])
            await until(lambda: receiver.requests >= 1)
        # Restarted with the default policy: loopback is refused now, on the next attempt.
        strict = fast(tmp_path, allow_private_networks=False, publish_max_attempts=100)
        async with running(strict, action_registry) as api:
            listed: list[dict[str, Any]] = []

            async def settled() -> bool:
                nonlocal listed
                listed = await deliveries(api.http, run["run_id"])
                return len(listed) == 6 and all(d["status"] == "failed" for d in listed)

            async with asyncio.timeout(WAIT):
                while not await settled():  # noqa: ASYNC110 - read over HTTP
                    await asyncio.sleep(0.05)
            assert all("loopback" in d["last_error"] for d in listed)
            assert [d["attempts"] for d in listed[1:]] == [1] * 5
        assert receiver.messages == []


def test_the_publishing_package_exports_exactly_these_names() -> None:
    assert conveyor.publishing.__all__ == [
        "EVENT_HEADER",
        "EVENT_TYPES",
        "ID_HEADER",
        "SIGNATURE_HEADER",
        "TIMESTAMP_HEADER",
        "CallbackTopic",
        "Dispatcher",
        "WebhookSpec",
        "backoff_seconds",
        "check_targets",
        "cloud_event",
        "lifecycle_message",
        "sign",
        "verify",
    ]


# ------------------------------------------------------------------ reading deliveries


async def test_deliveries_are_visible_to_the_runs_owner_only(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as hook_url, running(fast(tmp_path), action_registry) as api:
        run = await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: "conveyor.run.completed" in receiver.types())
        bob = create_key(api.service.store, "bob", "read")[1]
        admin = create_key(api.service.store, "root", "admin")[1]
        async with client_for(api.url, bob) as other, client_for(api.url, admin) as root:
            hidden = await other.get(f"/runs/{run['run_id']}/deliveries")
            assert hidden.status_code == 404
            assert hidden.json()["error"]["type"] == "not_found"
            assert (await root.get(f"/runs/{run['run_id']}/deliveries")).json()["total"] == 6
        unknown = await api.http.get("/runs/nope/deliveries")
        assert unknown.status_code == 404
        bad = await api.http.get(f"/runs/{run['run_id']}/deliveries", params={"status": "lost"})
        assert bad.status_code == 422
        assert bad.json()["error"]["fields"][0]["path"] == "query.status"
        page = (await api.http.get(f"/runs/{run['run_id']}/deliveries?limit=2&offset=1")).json()
        assert page["total"] == 6 and len(page["items"]) == 2
        assert page["items"][0]["type"] == LIFECYCLE[1]


async def test_a_run_without_targets_has_no_deliveries(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    async with running(fast(tmp_path), action_registry) as api:
        run = await start(api.http)
        await api.service.backend.wait(run["run_id"], timeout=WAIT)
        assert await deliveries(api.http, run["run_id"]) == []


# ------------------------------------------------------------------ signing


def test_the_signature_is_standard_webhooks_published_test_vector() -> None:
    # From the Standard Webhooks reference library's tests (libraries/python, test_sign_function).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, msg_id, timestamp, body) == expected
    headers = {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: expected}
    assert verify(secret, body, headers, now=timestamp)
    # Several signatures (a secret being rotated): any one that matches will do.
    rotated = {
        **headers,
        SIGNATURE_HEADER: "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + expected,
    }
    assert verify(secret, body, rotated, now=timestamp)


def test_a_signature_covers_the_id_the_timestamp_and_the_body() -> None:
    now = int(time.time())
    body = json.dumps({"type": "conveyor.run.started"}).encode()
    headers = signed_headers(SECRET, "d-1", now, body)
    assert verify(SECRET, body, headers, now=now)
    assert verify(SECRET, body, {k.upper(): v for k, v in headers.items()}, now=now)
    assert not verify("another-secret-entirely", body, headers, now=now)
    assert not verify(SECRET, body.replace(b"started", b"stopped"), headers, now=now)
    assert not verify(SECRET, body, {**headers, ID_HEADER: "d-2"}, now=now)
    # The timestamp is signed: moving it forward to pass the window breaks the signature.
    assert not verify(SECRET, body, {**headers, TIMESTAMP_HEADER: str(now + 400)}, now=now + 400)
    assert not verify(SECRET, body, headers, now=now + 301)  # A replay, too late.
    assert not verify(SECRET, body, headers, now=now - 301)
    for missing in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
        assert not verify(SECRET, body, {k: v for k, v in headers.items() if k != missing})
    assert not verify(SECRET, body, {**headers, TIMESTAMP_HEADER: "soon"}, now=now)


def test_backoff_doubles_up_to_its_cap(tmp_path: Path) -> None:
    settings = Settings(
        db_path=tmp_path / "x.db", publish_backoff_seconds=1, publish_max_backoff_seconds=5
    )
    assert [backoff_seconds(n, settings) for n in range(1, 6)] == [1, 2, 4, 5, 5]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deliveries go to loopback receivers; a proxy from the environment must not intercept.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
