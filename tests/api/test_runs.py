"""Runs over HTTP: start (stored, inline, one action), list, read, cancel, retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conveyor.api import Service
from tests.api import docs


async def _start(http: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await http.post("/runs", json=body, **kwargs)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def _finished(service: Service, run_id: str) -> None:
    await service.backend.wait(run_id, timeout=10)


async def test_start_inline_and_read_it(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"pipeline": docs.greeting(), "params": {"who": "Ada"}})
    assert run["pipeline"] == "greet"
    assert run["owner"] == "admin"
    assert run["params"] == {"who": "Ada"}
    await _finished(service, run["run_id"])
    read = (await http.get(f"/runs/{run['run_id']}")).json()
    assert read["status"] == "completed"
    assert read["outputs"] == {"greeting": "hello Ada"}
    assert [s["step_id"] for s in read["steps"]] == ["say", "keep"]


async def test_start_a_stored_pipeline_by_id_name_and_version(
    http: httpx.AsyncClient, service: Service
) -> None:
    stored = (await http.post("/pipelines", json={"document": docs.greeting(text="v1")})).json()
    await http.put(f"/pipelines/{stored['id']}", json={"document": docs.greeting(text="v2")})
    by_id = await _start(http, {"pipeline_id": stored["id"]})
    by_name = await _start(http, {"pipeline_id": "greet", "version": 1, "params": {"who": "B"}})
    await _finished(service, by_id["run_id"])
    await _finished(service, by_name["run_id"])
    assert (await service.backend.get(by_id["run_id"])).outputs == {"greeting": "v2 world"}
    assert (await service.backend.get(by_name["run_id"])).outputs == {"greeting": "v1 B"}


async def test_start_one_action(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"action": "set_output", "params": {"values": {"x": 1}}})
    assert run["kind"] == "action"
    done = await service.backend.wait(run["run_id"], timeout=10)
    assert done.step("action").outputs == {"x": 1}


async def test_bad_action_params_are_named(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"action": "delay", "params": {"secs": 1}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_params"
    assert sorted(f["path"] for f in error["fields"]) == ["params.seconds", "params.secs"]


async def test_bad_pipeline_params_are_named(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", json={"pipeline": docs.counted(), "params": {"count": "many"}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_params"
    assert [f["path"] for f in error["fields"]] == ["params.count"]
    missing = await http.post("/runs", json={"pipeline": docs.counted()})
    assert [f["path"] for f in missing.json()["error"]["fields"]] == ["params.count"]


async def test_invalid_inline_pipeline_is_422_by_path(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"pipeline": docs.broken()})
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert "steps[0].action" in paths
    assert (await http.get("/runs")).json()["total"] == 0


async def test_unknown_stored_pipelines_are_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"pipeline_id": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    stored = (await http.post("/pipelines", json={"document": docs.greeting()})).json()
    response = await http.post("/runs", json={"pipeline_id": stored["id"], "version": 9})
    assert response.status_code == 404


async def test_exactly_one_source(http: httpx.AsyncClient) -> None:
    for body in (
        {},
        {"action": "log", "pipeline": docs.greeting()},
        {"pipeline": docs.greeting(), "version": 2},
    ):
        response = await http.post("/runs", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["type"] == "validation_error"


async def test_idempotency_key_in_body_or_header(http: httpx.AsyncClient) -> None:
    body = {"pipeline": docs.greeting(), "idempotency_key": "k1"}
    first = await _start(http, body)
    assert first["idempotency_key"] == "k1"
    again = await http.post("/runs", json=body)
    assert again.status_code == 200
    assert again.json()["run_id"] == first["run_id"]
    by_header = await http.post(
        "/runs", json={"pipeline": docs.greeting()}, headers={"Idempotency-Key": "k1"}
    )
    assert by_header.status_code == 200
    assert by_header.json()["run_id"] == first["run_id"]
    assert (await http.get("/runs")).json()["total"] == 1


async def test_header_and_body_keys_must_agree(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs",
        json={"pipeline": docs.greeting(), "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "idempotency_key"


async def test_list_filters_and_pages(http: httpx.AsyncClient, service: Service) -> None:
    ok = await _start(http, {"pipeline": docs.greeting()})
    bad = await _start(http, {"pipeline": docs.failing()})
    await _finished(service, ok["run_id"])
    await _finished(service, bad["run_id"])
    everything = (await http.get("/runs")).json()
    assert everything["total"] == 2
    assert [r["run_id"] for r in everything["items"]] == [bad["run_id"], ok["run_id"]]
    failed = (await http.get("/runs", params={"status": "failed"})).json()
    assert [r["run_id"] for r in failed["items"]] == [bad["run_id"]]
    both = (await http.get("/runs", params=[("status", "failed"), ("status", "completed")])).json()
    assert both["total"] == 2
    greet = (await http.get("/runs", params={"pipeline": "greet"})).json()
    assert [r["run_id"] for r in greet["items"]] == [ok["run_id"]]
    page = (await http.get("/runs", params={"limit": 1, "offset": 1})).json()
    assert [r["run_id"] for r in page["items"]] == [ok["run_id"]]
    assert page["total"] == 2
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await http.get("/runs", params={"created_after": future})).json()["total"] == 0
    assert (await http.get("/runs", params={"created_before": future})).json()["total"] == 2
    past = "2000-01-01T00:00:00"
    assert (await http.get("/runs", params={"created_before": past})).json()["items"] == []


async def test_steps_and_timeline(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"pipeline": docs.greeting()})
    await _finished(service, run["run_id"])
    steps = (await http.get(f"/runs/{run['run_id']}/steps")).json()
    assert [s["step_id"] for s in steps["items"]] == ["say", "keep"]
    assert all(s["status"] == "completed" for s in steps["items"])
    assert steps["total"] == 2
    timeline = (await http.get(f"/runs/{run['run_id']}/timeline")).json()
    kinds = [(e["kind"], e["step_id"], e["status"]) for e in timeline["items"]]
    assert kinds[0] == ("run", None, "running")
    assert kinds[-1] == ("run", None, "completed")
    assert ("step", "say", "completed") in kinds
    assert timeline["next_after"] == timeline["items"][-1]["seq"]
    first = (await http.get(f"/runs/{run['run_id']}/timeline", params={"limit": 2})).json()
    rest = (
        await http.get(f"/runs/{run['run_id']}/timeline", params={"after": first["next_after"]})
    ).json()
    assert first["items"] + rest["items"] == timeline["items"]


async def test_cancel(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"pipeline": docs.sleeping()})
    response = await http.post(f"/runs/{run['run_id']}/cancel", json={"reason": "enough"})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = await http.post(f"/runs/{run['run_id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


async def test_cancel_a_finished_run_is_409(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"pipeline": docs.greeting()})
    await _finished(service, run["run_id"])
    response = await http.post(f"/runs/{run['run_id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"


async def test_retry_is_a_new_run(http: httpx.AsyncClient, service: Service) -> None:
    run = await _start(http, {"pipeline": docs.failing()})
    await _finished(service, run["run_id"])
    response = await http.post(f"/runs/{run['run_id']}/retry")
    assert response.status_code == 201
    retried = response.json()
    assert retried["run_id"] != run["run_id"]
    assert retried["retry_of"] == run["run_id"]
    assert retried["owner"] == "admin"
    done = await service.backend.wait(retried["run_id"], timeout=10)
    assert done.status == "failed"
    assert done.step("first").outputs == {"n": 1}
    ok = await _start(http, {"pipeline": docs.greeting()})
    await _finished(service, ok["run_id"])
    refused = await http.post(f"/runs/{ok['run_id']}/retry")
    assert refused.status_code == 409


async def test_retry_of_a_running_run_is_409(http: httpx.AsyncClient) -> None:
    run = await _start(http, {"pipeline": docs.sleeping()})
    response = await http.post(f"/runs/{run['run_id']}/retry")
    assert response.status_code == 409


async def test_unknown_run_is_404(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/runs/nope"),
        await http.get("/runs/nope/steps"),
        await http.get("/runs/nope/timeline"),
        await http.post("/runs/nope/cancel"),
        await http.post("/runs/nope/retry"),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == {
            "type": "not_found",
            "message": "no run with id 'nope'",
            "fields": [],
        }


async def test_runs_are_filtered_by_trigger(http: httpx.AsyncClient, service: Service) -> None:
    from conveyor.runs import RunTrigger

    manual = await _start(http, {"pipeline": docs.greeting()})
    assert manual["trigger"] == {"kind": "manual", "id": None, "time": None}
    scheduled = await service.engine.start_run(
        _spec(),
        owner="admin",
        trigger=RunTrigger(kind="schedule", id="sch_x", time=datetime(2026, 1, 1, tzinfo=UTC)),
    )
    listed = (await http.get("/runs", params={"trigger": "schedule"})).json()
    assert [r["run_id"] for r in listed["items"]] == [scheduled]
    assert listed["total"] == 1
    assert listed["items"][0]["trigger"]["time"] == "2026-01-01T00:00:00Z"
    by_id = (await http.get("/runs", params={"trigger_id": "sch_x"})).json()
    assert by_id["total"] == 1
    wrong = await http.get("/runs", params={"trigger": "cron"})
    assert wrong.status_code == 422
    assert "trigger" in wrong.text


def _spec() -> Any:
    from conveyor.pipeline.loading import spec_from_document

    return spec_from_document(docs.greeting())
