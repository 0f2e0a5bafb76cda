"""Events over HTTP: every ingress form, auth, bad input, dedupe, buffering, listing, metrics.

Runs are started over HTTP and events sent to the real server; a step's progress is read from
the engine the server runs, waiting on conditions with generous timeouts.

Every test runs twice: with `POST /events` answered by `EventsFastPath` in front of the router
(as served), and by its FastAPI route; the same assertions hold for both.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.actions import ActionRegistry, StepStatus
from conveyor.api import Service, create_app
from conveyor.config import Settings
from conveyor.engine.state import RunStatus
from conveyor.runs import RunView
from tests.api.conftest import EVENTS_TOKEN, MakeKey
from tests.api.live import serve

TIMEOUT = 30.0
TOKEN = {"Authorization": f"Bearer {EVENTS_TOKEN}"}


@pytest.fixture(params=[True, False], ids=["fastpath", "route"])
async def server_url(service: Service, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The app served with `POST /events` answered by the fast path, then by its route."""
    async with serve(create_app(service, fast_events=request.param)) as url:
        yield url


def waiter(correlation_id: str, timeout_seconds: int = 120) -> dict[str, Any]:
    """A pipeline of one `wait_for_event` step on `correlation_id`."""
    return {
        "name": "waiter",
        "steps": [
            {
                "id": "wait",
                "action": "wait_for_event",
                "params": {"correlation_id": correlation_id, "timeout_seconds": timeout_seconds},
            }
        ],
        "outputs": {"status": "{{ steps.wait.outputs.status }}"},
    }


async def _start(http: httpx.AsyncClient, correlation_id: str) -> str:
    response = await http.post("/runs", json={"pipeline": waiter(correlation_id)})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def until(service: Service, run_id: str, check: Callable[[RunView], bool]) -> RunView:
    """Wait (woken by the engine's commits, not by polling) until the run satisfies `check`."""
    changed = asyncio.Event()
    unsubscribe = service.backend.subscribe(lambda changed_id: changed.set())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not check(view := service.backend.view(run_id)):
                await changed.wait()
                changed.clear()
            return view
    finally:
        unsubscribe()


async def _waiting(service: Service, run_id: str) -> None:
    await until(service, run_id, lambda run: run.step("wait").status is StepStatus.WAITING)


async def _post(anon: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    headers = {**TOKEN, **kwargs.pop("headers", {})}
    if isinstance(body, bytes | str):
        return await anon.post("/events", content=body, headers=headers, **kwargs)
    return await anon.post("/events", json=body, headers=headers, **kwargs)


def _fields(response: httpx.Response) -> dict[str, str]:
    error = response.json()["error"]
    return {f["path"]: f["message"] for f in error["fields"]}


async def _stored(service: Service) -> int:
    return len(await service.backend.list_events(limit=500))


# ------------------------------------------------------------------ every ingress form


async def test_plain_json_completes_a_waiting_step(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, "wf-plain")
    await _waiting(service, run_id)
    response = await _post(anon, {"workflow_id": "wf-plain", "status": "COMPLETED"})
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["correlation_id"] == "wf-plain"
    assert receipt["status"] == "routed"
    assert receipt["deliveries"] == 1
    done = await service.backend.wait(run_id, timeout=TIMEOUT)
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == {"status": "COMPLETED"}


async def test_the_correlation_paths_of_the_settings_are_used(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = Settings(db_path=tmp_path / "c.db", correlation_paths=["meta.job"])
    service = Service.create(settings, registry=action_registry, auth_enabled=False)
    async with serve(create_app(service)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/events", json={"meta": {"job": "j-7"}, "workflow_id": "x"})
    assert response.status_code == 202
    assert response.json()["correlation_id"] == "j-7"


async def test_structured_cloudevent(anon: httpx.AsyncClient, service: Service) -> None:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "type": "job.completed",
        "source": "/jobs",
        "data": {"workflow_id": "wf-ce", "status": "COMPLETED"},
    }
    headers = {"content-type": "application/cloudevents+json"}
    response = await _post(anon, json.dumps(event), headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "event_id": "ce-1",
        "correlation_id": "wf-ce",
        "status": "pending",
        "deliveries": 0,
    }
    # A CloudEvent sent as plain JSON is recognised by its specversion.
    as_json = await _post(anon, {**event, "id": "ce-2"})
    assert as_json.json()["correlation_id"] == "wf-ce"
    stored = (await service.backend.list_events(limit=10))[0]
    assert (stored.id, stored.type, stored.source) == ("ce-2", "job.completed", "/jobs")
    assert stored.data == {"workflow_id": "wf-ce", "status": "COMPLETED"}


async def test_binary_cloudevent(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, "wf-bin")
    await _waiting(service, run_id)
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-type": "job.completed",
        "ce-source": "/jobs",
    }
    response = await _post(anon, {"workflow_id": "wf-bin", "status": "DONE"}, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == "bin-1"
    assert response.json()["status"] == "routed"
    assert (await service.backend.wait(run_id, timeout=TIMEOUT)).status is RunStatus.COMPLETED
    stored = (await service.backend.list_events(limit=1))[0]
    assert (stored.type, stored.source) == ("job.completed", "/jobs")


async def test_a_batch_answers_a_receipt_each(anon: httpx.AsyncClient) -> None:
    batch: list[dict[str, Any]] = [
        {"workflow_id": "wf-b1", "progress": 10},
        {"specversion": "1.0", "id": "b-2", "type": "t", "source": "s", "data": {}},
    ]
    response = await _post(anon, batch)
    assert response.status_code == 202, response.text
    receipts = response.json()
    assert [r["status"] for r in receipts] == ["pending", "unroutable"]
    assert receipts[1]["event_id"] == "b-2"
    ce_batch = await _post(
        anon,
        json.dumps([{**batch[1], "id": "b-3"}]),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert ce_batch.status_code == 202
    assert [r["event_id"] for r in ce_batch.json()] == ["b-3"]
    not_a_batch = await _post(
        anon,
        json.dumps({**batch[1], "id": "b-4"}),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert not_a_batch.status_code == 422, not_a_batch.text
    assert not_a_batch.json()["error"]["fields"] == [
        {"path": "", "message": "a batch is a JSON array, not an object"}
    ]


async def test_dapr_subscription_and_delivery(
    anon: httpx.AsyncClient, http: httpx.AsyncClient, service: Service
) -> None:
    subscriptions = await anon.get("/dapr/subscribe", headers={"dapr-api-token": EVENTS_TOKEN})
    assert subscriptions.status_code == 200
    topic = service.settings.callback_topic
    assert subscriptions.json() == [
        {
            "pubsubname": service.settings.pubsub_name,
            "topic": topic,
            "route": f"/dapr/events/{topic}",
        }
    ]
    run_id = await _start(http, "wf-dapr")
    await _waiting(service, run_id)
    # What a Dapr sidecar posts: a CloudEvent wrapping what the service published.
    delivery = {
        "specversion": "1.0",
        "id": "dapr-1",
        "type": "com.dapr.event.sent",
        "source": "job-service",
        "topic": topic,
        "pubsubname": "pubsub",
        "datacontenttype": "application/json",
        "data": {"workflow_id": "wf-dapr", "status": "COMPLETED"},
    }
    response = await anon.post(
        f"/dapr/events/{topic}",
        content=json.dumps(delivery),
        headers={"content-type": "application/cloudevents+json", "dapr-api-token": EVENTS_TOKEN},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "SUCCESS", "message": None}
    assert (await service.backend.wait(run_id, timeout=TIMEOUT)).status is RunStatus.COMPLETED
    again = await anon.post(f"/dapr/events/{topic}", json=delivery, headers=TOKEN)
    assert again.json()["status"] == "SUCCESS"  # A redelivery is a duplicate, still a success.


async def test_dapr_drops_a_malformed_event_and_stores_nothing(
    anon: httpx.AsyncClient, service: Service
) -> None:
    topic = service.settings.callback_topic
    bad = {"specversion": "1.0", "type": "t", "source": "s", "data": "text"}
    response = await anon.post(f"/dapr/events/{topic}", json=bad, headers=TOKEN)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "DROP"
    assert "id: a CloudEvent requires this attribute" in answer["message"]
    assert "data: must be a JSON object, not a string" in answer["message"]
    not_json = await anon.post(f"/dapr/events/{topic}", content=b"{", headers=TOKEN)
    assert not_json.json()["status"] == "DROP"
    assert await _stored(service) == 0


async def test_dapr_unknown_topic_and_missing_token(anon: httpx.AsyncClient) -> None:
    unknown = await anon.post("/dapr/events/other", json={"workflow_id": "x"}, headers=TOKEN)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found"
    no_token = await anon.post("/dapr/events/conveyor-events", json={"workflow_id": "x"})
    assert no_token.status_code == 401
    assert (await anon.get("/dapr/subscribe")).status_code == 401


async def test_a_locked_database_answers_503_and_dapr_retry(
    anon: httpx.AsyncClient, service: Service
) -> None:
    # Wait 0.1 s for the lock instead of the store's 10 s, so the test stays short.
    service.backend.store.db.execute("PRAGMA busy_timeout=100")
    holder = sqlite3.connect(service.settings.db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # Another process writing, as far as SQLite knows.
        plain = await _post(anon, {"workflow_id": "wf-locked"})
        assert plain.status_code == 503
        assert plain.headers["retry-after"] == "1"
        assert plain.json()["error"]["type"] == "unavailable"
        topic = service.settings.callback_topic
        dapr = await anon.post(
            f"/dapr/events/{topic}", json={"workflow_id": "wf-locked"}, headers=TOKEN
        )
        assert dapr.status_code == 200
        assert dapr.json()["status"] == "RETRY"
    finally:
        holder.rollback()
        holder.close()
    again = await _post(anon, {"workflow_id": "wf-locked"})
    assert again.status_code == 202
    assert await _stored(service) == 1


# ------------------------------------------------------------------ routing semantics


async def test_an_event_sent_before_the_step_waits_is_not_lost(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    early = await _post(anon, {"workflow_id": "wf-early", "status": "COMPLETED"})
    assert early.json()["status"] == "pending"
    run_id = await _start(http, "wf-early")
    done = await service.backend.wait(run_id, timeout=TIMEOUT)
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == {"status": "COMPLETED"}
    listed = (await http.get("/events", params={"status": "routed"})).json()
    assert [e["correlation_id"] for e in listed["items"]] == ["wf-early"]


async def test_an_event_id_is_applied_once(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, "wf-dup")
    await _waiting(service, run_id)
    progress = {"id": "same-id", "workflow_id": "wf-dup", "progress": 40}
    first = await _post(anon, progress)
    second = await _post(anon, {**progress, "progress": 90})
    assert first.json()["status"] == "routed"
    assert second.json() == {
        "event_id": "same-id",
        "correlation_id": "wf-dup",
        "status": "duplicate",
        "deliveries": 0,
    }
    await until(service, run_id, lambda run: run.step("wait").progress == 40)
    assert await _stored(service) == 1


async def test_unroutable_events_are_kept_and_listed(
    http: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    for n in range(3):
        response = await _post(anon, {"note": n})
        assert response.json()["status"] == "unroutable"
    await _post(anon, {"workflow_id": "wf-later"})
    page = (await http.get("/events/unroutable", params={"limit": 2})).json()
    assert page["total"] == 3
    assert [e["data"] for e in page["items"]] == [{"note": 2}, {"note": 1}]
    assert all(e["status"] == "unroutable" for e in page["items"])
    rest = (await http.get("/events/unroutable", params={"limit": 2, "offset": 2})).json()
    assert [e["data"] for e in rest["items"]] == [{"note": 0}]
    everything = (await http.get("/events")).json()
    assert everything["total"] == 4
    pending = (await http.get("/events", params={"status": "pending"})).json()
    assert [e["correlation_id"] for e in pending["items"]] == ["wf-later"]


async def test_events_are_counted_in_the_metrics(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, "wf-m")
    await _waiting(service, run_id)
    await _post(anon, {"id": "m1", "workflow_id": "wf-m", "progress": 5})
    await _post(anon, {"id": "m1", "workflow_id": "wf-m", "progress": 5})
    await _post(anon, {"workflow_id": "nobody"})
    await _post(anon, {"no": "id"})
    text = (await anon.get("/metrics")).text
    for status in ("routed", "duplicate", "pending", "unroutable"):
        assert f'conveyor_events_received_total{{status="{status}"}} 1.0' in text


# ------------------------------------------------------------------ auth


async def test_events_need_the_token_or_a_write_key(
    anon: httpx.AsyncClient, make_key: MakeKey
) -> None:
    event = {"workflow_id": "wf-auth"}
    missing = await anon.post("/events", json=event)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "unauthorized"
    for headers in (
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {EVENTS_TOKEN}"},
        {"dapr-api-token": "wrong"},
        {"Authorization": "Bearer cvk_nope_nope"},
    ):
        assert (await anon.post("/events", json=event, headers=headers)).status_code == 401
    reader = make_key("someone", "read")
    weak = await anon.post("/events", json=event, headers={"Authorization": f"Bearer {reader}"})
    assert weak.status_code == 403
    writer = make_key("someone", "write")
    mixed = {"Authorization": f"Bearer {writer}", "dapr-api-token": "wrong"}
    assert (await anon.post("/events", json=event, headers=mixed)).status_code == 401
    for headers in (
        {"Authorization": f"Bearer {writer}"},
        {"Authorization": f"Bearer {EVENTS_TOKEN}"},
        {"dapr-api-token": EVENTS_TOKEN},
    ):
        assert (await anon.post("/events", json=event, headers=headers)).status_code == 202


async def test_listing_events_needs_an_admin_key(
    anon: httpx.AsyncClient, make_key: MakeKey
) -> None:
    writer = {"Authorization": f"Bearer {make_key('someone', 'write')}"}
    for path in ("/events", "/events/unroutable"):
        assert (await anon.get(path)).status_code == 401
        assert (await anon.get(path, headers=TOKEN)).status_code == 401
        assert (await anon.get(path, headers=writer)).status_code == 403


async def test_insecure_mode_takes_events_without_a_token(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    service = Service.create(
        Settings(db_path=tmp_path / "open.db"), registry=action_registry, auth_enabled=False
    )
    async with serve(create_app(service)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/events", json={"workflow_id": "x"})).status_code == 202
        assert (await client.get("/events/unroutable")).status_code == 200


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{", "Expecting property name"), (b"", "empty"), (b"[NaN]", "NaN"), (b"\xff", "utf")],
)
async def test_a_body_that_is_not_json_is_400(
    anon: httpx.AsyncClient, service: Service, body: bytes, reason: str
) -> None:
    response = await _post(anon, body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_json"
    assert reason.lower() in error["message"].lower()
    assert await _stored(service) == 0


async def test_deep_nesting_is_400(anon: httpx.AsyncClient) -> None:
    response = await _post(anon, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [(7, "a number"), ("x", "a string"), (None, "null"), (True, "a boolean")],
)
async def test_an_event_that_is_not_an_object_is_422(
    anon: httpx.AsyncClient, body: Any, message: str
) -> None:
    response = await _post(anon, json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_event"
    assert _fields(response) == {"": f"must be a JSON object, not {message}"}


async def test_a_cloudevent_missing_attributes_is_422_by_name(
    anon: httpx.AsyncClient, service: Service
) -> None:
    response = await _post(
        anon,
        json.dumps({"id": "", "type": 3, "data": [1]}),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert response.status_code == 422
    assert _fields(response) == {
        "specversion": "a CloudEvent requires this attribute",
        "id": "must be a non-empty string",
        "source": "a CloudEvent requires this attribute",
        "type": "must be a non-empty string",
        "data": "must be a JSON object, not an array",
    }
    versioned = await _post(
        anon,
        {"specversion": "0.1", "id": "1", "type": "t", "source": "s", "data_base64": "AA=="},
    )
    assert set(_fields(versioned)) == {"specversion", "data_base64"}
    assert await _stored(service) == 0


async def test_too_long_an_id_is_422(anon: httpx.AsyncClient) -> None:
    response = await _post(anon, {"id": "x" * 600, "workflow_id": "w"})
    assert response.status_code == 422
    assert list(_fields(response)) == ["id"]


async def test_a_binary_cloudevent_missing_headers_is_422(
    anon: httpx.AsyncClient, service: Service
) -> None:
    response = await _post(anon, [1], headers={"ce-specversion": "1.0", "ce-id": "1"})
    assert response.status_code == 422
    assert _fields(response) == {
        "header.ce-source": "a CloudEvent requires this attribute",
        "header.ce-type": "a CloudEvent requires this attribute",
        "": "the data must be a JSON object, not an array",
    }
    assert await _stored(service) == 0


async def test_a_bad_batch_stores_nothing(anon: httpx.AsyncClient, service: Service) -> None:
    response = await _post(anon, [{"workflow_id": "ok"}, 5, {"specversion": "1.0", "id": "x"}])
    assert response.status_code == 422
    assert _fields(response) == {
        "[1]": "must be a JSON object, not a number",
        "[2].source": "a CloudEvent requires this attribute",
        "[2].type": "a CloudEvent requires this attribute",
    }
    assert await _stored(service) == 0
    empty = await _post(anon, [])
    assert _fields(empty) == {"": "a batch needs at least one event"}
    big = await _post(anon, [{"n": n} for n in range(101)])
    assert _fields(big) == {"": "a batch holds at most 100 events"}
    plain_in_ce_batch = await _post(
        anon, json.dumps([{"n": 1}]), headers={"content-type": "application/cloudevents-batch+json"}
    )
    assert "[0].specversion" in _fields(plain_in_ce_batch)


async def test_a_body_that_is_not_json_typed_is_415(anon: httpx.AsyncClient) -> None:
    response = await _post(anon, "workflow_id=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"
    assert list(_fields(response)) == ["header.content-type"]


async def test_an_oversized_body_is_413(anon: httpx.AsyncClient, service: Service) -> None:
    big = {"workflow_id": "w", "blob": "x" * (service.settings.max_body_bytes + 1)}
    response = await _post(anon, big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"
    assert await _stored(service) == 0


async def test_unknown_query_parameters_of_send_are_422(
    anon: httpx.AsyncClient, service: Service
) -> None:
    response = await _post(anon, {"workflow_id": "w"}, params={"wait": "1", "async": ""})
    assert response.status_code == 422
    assert sorted(_fields(response)) == ["query.async", "query.wait"]
    assert await _stored(service) == 0


async def test_a_body_sent_in_chunks_is_read_whole(anon: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"workflow_id": '
        yield b'"wf-chunked"}'

    response = await anon.post("/events", content=chunks(), headers=TOKEN)
    assert response.status_code == 202, response.text
    assert response.json()["correlation_id"] == "wf-chunked"


async def test_other_methods_on_events_are_not_taken_as_sends(
    anon: httpx.AsyncClient, service: Service
) -> None:
    assert (await anon.put("/events", json={"workflow_id": "w"}, headers=TOKEN)).status_code == 405
    slash = await anon.post("/events/", json={"workflow_id": "w"}, headers=TOKEN)
    assert slash.status_code == 307  # Redirected to /events, as every route's trailing slash.
    assert slash.headers["location"].endswith("/events")
    assert await _stored(service) == 0


async def test_unknown_list_filters_are_422(http: httpx.AsyncClient) -> None:
    bad_status = await http.get("/events", params={"status": "lost"})
    assert bad_status.status_code == 422
    assert [f["path"] for f in bad_status.json()["error"]["fields"]] == ["query.status[0]"]
    unknown = await http.get("/events/unroutable", params={"stauts": "x"})
    assert unknown.status_code == 422
