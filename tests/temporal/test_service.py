"""The HTTP service on the Temporal backend: the same API, only the backend setting changes.

The real app under uvicorn on loopback, over a `Service` whose backend is Temporal (the
session dev server), with workflow and activity workers in this process.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from conveyor.actions import ActionRegistry
from conveyor.api import Service, create_app
from conveyor.api.engine import TemporalEngine
from conveyor.api.keys import create_key
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.config import Settings
from tests.acceptance.test_cli_run import ROOT, command, environment
from tests.api import docs
from tests.api.live import serve
from tests.api.test_stream import read_all

WAIT = 60.0
"""Generous: two cores shared with other suites."""


@pytest.fixture
def service(temporal_settings: Settings, temporal_registry: ActionRegistry) -> Service:
    """A service whose backend the settings choose: Temporal."""
    return Service.create(temporal_settings, registry=temporal_registry)


@pytest.fixture
async def server_url(service: Service, temporal_workers: list[Worker]) -> AsyncIterator[str]:
    """The app served on this test's loop, with the workers running."""
    async with serve(create_app(service)) as url:
        yield url


@pytest.fixture
async def http(server_url: str, service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending an admin key (kept in the service's own SQLite file)."""
    token = create_key(service.store, "admin", "admin")[1]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=WAIT) as client:
        yield client


async def _start(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/runs", json=body)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def _until(http: httpx.AsyncClient, run_id: str, done: Any, what: str) -> dict[str, Any]:
    """The run once `done(run)` holds, read over HTTP."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await http.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if done(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id} never {what}: {run}"
        await asyncio.sleep(0.2)


async def _ended(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    return await _until(http, run_id, lambda r: r["status"] not in ("pending", "running"), "ended")


async def _step_waiting(http: httpx.AsyncClient, run_id: str, step_id: str) -> dict[str, Any]:
    def waiting(run: dict[str, Any]) -> bool:
        return any(s["step_id"] == step_id and s["status"] == "waiting" for s in run["steps"])

    return await _until(http, run_id, waiting, f"had step {step_id} waiting")


def waiter(correlation_id: str, **params: Any) -> dict[str, Any]:
    """A pipeline that waits for an event on `correlation_id` and outputs its status."""
    return {
        "name": "waiter",
        "steps": [
            {
                "id": "wait",
                "action": "wait_for_event",
                "params": {"correlation_id": correlation_id, **params},
            }
        ],
        "outputs": {"status": "{{ steps.wait.outputs.status }}"},
    }


async def test_the_service_is_on_temporal(service: Service) -> None:
    assert isinstance(service.backend, TemporalBackend)
    assert isinstance(service.engine, TemporalEngine)
    assert service.publishing is None


async def test_start_inline_stored_and_one_action_and_list_them(
    http: httpx.AsyncClient,
) -> None:
    inline = await _start(http, {"pipeline": docs.greeting(), "params": {"who": "Ada"}})
    assert inline["owner"] == "admin"
    stored = await http.post("/pipelines", json={"document": docs.greeting(text="hi")})
    assert stored.status_code == 201, stored.text
    by_id = await _start(http, {"pipeline_id": stored.json()["id"]})
    action = await _start(http, {"action": "set_output", "params": {"values": {"x": 1}}})

    done = await _ended(http, inline["run_id"])
    assert done["status"] == "completed"
    assert done["outputs"] == {"greeting": "hello Ada"}
    assert [s["step_id"] for s in done["steps"]] == ["say", "keep"]
    assert (await _ended(http, by_id["run_id"]))["outputs"] == {"greeting": "hi world"}
    one = await _ended(http, action["run_id"])
    assert one["kind"] == "action"
    assert one["steps"][0]["outputs"] == {"x": 1}

    steps = (await http.get(f"/runs/{inline['run_id']}/steps")).json()
    assert steps["total"] == 2

    # Visibility is eventually consistent: the list catches up shortly.
    async with asyncio.timeout(WAIT):
        while True:
            page = (await http.get("/runs", params={"pipeline": "greet"})).json()
            ids = {item["run_id"] for item in page["items"]}
            if {inline["run_id"], by_id["run_id"]} <= ids:
                break
            await asyncio.sleep(0.3)
    assert action["run_id"] not in ids
    assert page["total"] == len(page["items"]) == 2
    actions = (await http.get("/runs", params={"kind": "action", "status": "completed"})).json()
    assert [item["run_id"] for item in actions["items"]] == [action["run_id"]]

    pending = (await http.get("/runs", params={"status": "pending"})).json()
    assert (pending["items"], pending["total"]) == ([], 0)

    timeline = (await http.get(f"/runs/{inline['run_id']}/timeline")).json()
    assert timeline["items"] and timeline["next_after"] == timeline["items"][-1]["seq"]


async def test_an_idempotency_key_answers_the_first_run(http: httpx.AsyncClient) -> None:
    body = {"action": "set_output", "params": {"values": {}}, "idempotency_key": "once"}
    first = await _start(http, body)
    again = await http.post("/runs", json=body)
    assert again.status_code == 200
    assert again.json()["run_id"] == first["run_id"]
    assert again.json()["idempotency_key"] == "once"


async def test_events_complete_waiting_runs_sent_before_or_while_they_wait(
    http: httpx.AsyncClient,
) -> None:
    # Sent before any step waits: the mailbox keeps it for the step that starts waiting.
    early = await http.post("/events", json={"workflow_id": "early-1", "status": "COMPLETED"})
    assert early.status_code == 202, early.text
    assert early.json()["status"] == "accepted"
    before = await _start(http, {"pipeline": waiter("early-1")})

    during = await _start(http, {"pipeline": waiter("late-1")})
    other = await _start(http, {"pipeline": waiter("late-2")})
    await _step_waiting(http, during["run_id"], "wait")
    await _step_waiting(http, other["run_id"], "wait")
    batch = [
        {"workflow_id": "late-1", "status": "COMPLETED"},
        {"workflow_id": "late-2", "status": "COMPLETED"},
    ]
    response = await http.post("/events", json=batch)
    assert response.status_code == 202, response.text
    assert [r["correlation_id"] for r in response.json()] == ["late-1", "late-2"]

    for run in (before, during, other):
        done = await _ended(http, run["run_id"])
        assert done["status"] == "completed", done
        assert done["outputs"] == {"status": "COMPLETED"}


async def test_a_bad_event_batch_sends_nothing(http: httpx.AsyncClient) -> None:
    response = await http.post("/events", json=[{"workflow_id": "x"}, "not an object"])
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["fields"]


async def test_cancel_a_waiting_run(http: httpx.AsyncClient) -> None:
    run = await _start(http, {"pipeline": waiter("never")})
    await _step_waiting(http, run["run_id"], "wait")
    response = await http.post(f"/runs/{run['run_id']}/cancel", json={"reason": "enough"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    again = await http.post(f"/runs/{run['run_id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


async def test_retry_a_failed_run_keeps_its_completed_steps(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    pipeline = {
        "name": "flaky",
        "steps": [
            {"id": "first", "action": "set_output", "params": {"values": {"n": 1}}},
            {
                "id": "bad",
                "action": "fails_first",
                "depends_on": ["first"],
                "params": {"marker": str(tmp_path / "marker")},
            },
        ],
    }
    run = await _start(http, {"pipeline": pipeline})
    failed = await _ended(http, run["run_id"])
    assert failed["status"] == "failed"
    response = await http.post(f"/runs/{run['run_id']}/retry")
    assert response.status_code == 201, response.text
    retried = await _ended(http, response.json()["run_id"])
    assert retried["status"] == "completed"
    assert retried["owner"] == "admin"
    completed = await http.post(f"/runs/{retried['run_id']}/retry")
    assert completed.status_code == 409


async def test_an_approval_is_listed_and_approved(http: httpx.AsyncClient) -> None:
    pipeline = {
        "name": "release",
        "steps": [
            {"id": "ask", "action": "approval", "params": {"title": "Ship it?"}},
            {
                "id": "record",
                "action": "set_output",
                "depends_on": ["ask"],
                "params": {"values": {"by": "{{ steps.ask.outputs.decided_by }}"}},
            },
        ],
        "outputs": {"by": "{{ steps.record.outputs.by }}"},
    }
    run = await _start(http, {"pipeline": pipeline})
    await _step_waiting(http, run["run_id"], "ask")
    async with asyncio.timeout(WAIT):
        while True:
            requests = (await http.get(f"/runs/{run['run_id']}/requests")).json()
            if requests["items"]:
                break
            await asyncio.sleep(0.2)
    assert [(r["step_id"], r["title"]) for r in requests["items"]] == [("ask", "Ship it?")]
    pending = (await http.get("/requests")).json()["items"]
    assert (run["run_id"], "ask") in [(r["run_id"], r["step_id"]) for r in pending]
    answer = await http.post(f"/runs/{run['run_id']}/requests/ask", json={"decision": "approve"})
    assert answer.status_code in (200, 202), answer.text
    assert answer.json()["delivery"] == "accepted"
    done = await _ended(http, run["run_id"])
    assert done["status"] == "completed"
    assert done["outputs"] == {"by": "admin"}
    again = await http.post(f"/runs/{run['run_id']}/requests/ask", json={"decision": "approve"})
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert (again.json()["delivery"], again.json()["step_status"]) == ("accepted", "completed")
    late = await http.post(f"/runs/{run['run_id']}/requests/ask", json={"decision": "reject"})
    assert late.status_code == 409
    assert "already decided: admin chose 'approve'" in late.json()["error"]["message"]
    mine = (await http.get("/requests")).json()
    assert run["run_id"] not in [r["run_id"] for r in mine["items"]]


async def test_the_run_stream_delivers_entries_and_ends(
    http: httpx.AsyncClient, server_url: str
) -> None:
    run = await _start(http, {"pipeline": waiter("stream-1")})
    await _step_waiting(http, run["run_id"], "wait")

    async def send_later() -> None:
        await asyncio.sleep(1.0)  # Lets the stream reach its live part; not a proof of anything.
        await http.post("/events", json={"workflow_id": "stream-1", "status": "COMPLETED"})

    sending = asyncio.create_task(send_later())
    messages = await read_all(http, f"/runs/{run['run_id']}/stream")
    await sending
    assert messages[-1].event == "end"
    assert messages[-1].data["status"] == "completed"
    seqs = [int(m.id) for m in messages[:-1] if m.id is not None]
    assert seqs and seqs == sorted(set(seqs))
    kinds = {m.event for m in messages[:-1]}
    assert {"run", "step"} <= kinds
    # Resuming after the last id gives only the end.
    rest = await read_all(
        http, f"/runs/{run['run_id']}/stream", headers={"Last-Event-ID": str(seqs[-1])}
    )
    assert [m.event for m in rest] == ["end"]


async def test_unknown_runs_are_404(http: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/runs/run-nope"),
        ("GET", "/runs/run-nope/timeline"),
        ("GET", "/runs/run-nope/stream"),
        ("GET", "/runs/run-nope/requests"),
        ("POST", "/runs/run-nope/cancel"),
        ("POST", "/runs/run-nope/retry"),
    ):
        response = await http.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["type"] == "not_found"


async def test_another_owners_run_is_404(
    http: httpx.AsyncClient, server_url: str, service: Service
) -> None:
    run = await _start(http, {"action": "set_output", "params": {"values": {}}})
    token = create_key(service.store, "bob", "write")[1]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=WAIT) as bob:
        assert (await bob.get(f"/runs/{run['run_id']}")).status_code == 404
        assert (await bob.post(f"/runs/{run['run_id']}/cancel")).status_code == 404


async def test_auth_is_enforced(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=WAIT) as anon:
        for method, path in (("GET", "/runs"), ("POST", "/runs"), ("POST", "/events")):
            response = await anon.request(method, path, json={})
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_what_needs_the_embedded_backend_is_refused_clearly(
    http: httpx.AsyncClient,
) -> None:
    targets = await http.post(
        "/runs",
        json={
            "action": "set_output",
            "params": {"values": {}},
            "webhooks": [{"url": "https://example.invalid/hook", "secret": "s" * 16}],
        },
    )
    assert targets.status_code == 400, targets.text
    error = targets.json()["error"]
    assert "lifecycle publishing needs the embedded backend" in error["message"]
    assert [f["path"] for f in error["fields"]] == ["webhooks[0].url"]
    assert (await http.get("/runs", params={"pipeline": "set_output"})).json()["items"] == []

    for path in ("/stream", "/events", "/events/unroutable"):
        response = await http.get(path)
        assert response.status_code == 501, (path, response.text)
        body = response.json()["error"]
        assert body["type"] == "not_implemented"
        assert "needs the embedded backend" in body["message"]


async def test_metrics_leave_out_what_temporal_does_not_have(
    http: httpx.AsyncClient, server_url: str
) -> None:
    await http.post("/events", json={"workflow_id": "m-1"})
    text = (await http.get("/metrics")).text
    assert 'conveyor_events_received_total{status="accepted"} 1.0' in text
    assert "conveyor_runs" not in text
    assert "conveyor_step_duration_seconds" not in text
    assert "conveyor_queue_running" not in text
    assert (await http.get("/ready")).status_code == 200


async def test_closing_the_stream_gate_ends_a_live_stream(
    http: httpx.AsyncClient, service: Service
) -> None:
    run = await _start(http, {"pipeline": waiter("gate-1")})
    await _step_waiting(http, run["run_id"], "wait")

    async def close_later() -> None:
        await asyncio.sleep(1.0)  # Lets the stream reach its live part; not a proof of anything.
        service.streams.close()

    closing = asyncio.create_task(close_later())
    messages = await read_all(http, f"/runs/{run['run_id']}/stream")
    await closing
    assert messages and "end" not in [m.event for m in messages]
    await http.post(f"/runs/{run['run_id']}/cancel")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_conveyor_serve_runs_on_temporal_by_the_backend_setting(
    temporal_settings: Settings,
    temporal_registry: ActionRegistry,
    temporal_workers: list[Worker],
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {
        **environment(),
        "CONVEYOR_BACKEND": "temporal",
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_settings.temporal_address,
        "CONVEYOR_TEMPORAL_TASK_QUEUE_PREFIX": temporal_settings.temporal_task_queue_prefix,
    }
    args = ["serve", "--insecure", "--port", str(port), "--db", str(tmp_path / "serve.db")]
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        process = await asyncio.create_subprocess_exec(
            *command(), *args, cwd=ROOT, stderr=sink, env=env
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
            deadline = time.monotonic() + WAIT
            while True:
                assert process.returncode is None, log.read_text()
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.2)
            run = await _start(client, {"action": "set_output", "params": {"values": {"y": 2}}})
            done = await _ended(client, run["run_id"])
            assert done["status"] == "completed"
            assert done["steps"][0]["outputs"] == {"y": 2}
            # The run is a workflow on the cluster, read here without the service.
            async with TemporalBackend(temporal_registry, temporal_settings) as backend:
                assert (await backend.get(run["run_id"])).status == "completed"
            assert (await client.get("/stream")).status_code == 501
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
