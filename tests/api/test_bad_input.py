"""Bad input of every kind gets its 4xx and the one error body, and harms nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.config import Settings
from tests.api import docs


def _error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "fields"}
    assert body["error"]["type"] == type_
    error: dict[str, Any] = body["error"]
    return error


async def _snapshot(http: httpx.AsyncClient) -> tuple[Any, ...]:
    pipelines = (await http.get("/pipelines")).json()
    runs = (await http.get("/runs")).json()
    stored = [(await http.get(f"/pipelines/{p['id']}")).json() for p in pipelines["items"]]
    return pipelines, runs, stored


@pytest.fixture
async def seeded(http: httpx.AsyncClient) -> AsyncIterator[tuple[Any, ...]]:
    """One stored pipeline and one run; yields the listings, compared after the test."""
    created = await http.post("/pipelines", json={"document": docs.greeting()})
    assert created.status_code == 201
    run = await http.post("/runs", json={"pipeline": docs.sleeping()})
    assert run.status_code == 201
    before = await _snapshot(http)
    yield before
    assert await _snapshot(http) == before, "bad input changed what is stored"


JSON = {"content-type": "application/json"}
WRITES = [
    ("POST", "/pipelines"),
    ("PUT", "/pipelines/greet"),
    ("POST", "/pipelines/validate"),
    ("POST", "/runs"),
    ("POST", "/actions/log/validate"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b"\xff\xfe", b'{"document": }'])
async def test_malformed_json_is_400(
    http: httpx.AsyncClient, seeded: Any, method: str, path: str, raw: bytes
) -> None:
    response = await http.request(method, path, content=raw, headers=JSON)
    error = _error(response, 400, "invalid_json")
    assert error["message"].startswith("the body is not valid JSON")


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_a_body_that_is_not_an_object_is_422(
    http: httpx.AsyncClient, seeded: Any, method: str, path: str
) -> None:
    response = await http.request(method, path, json=[1, 2])
    error = _error(response, 422, "validation_error")
    assert error["fields"][0]["path"] == ""


async def test_wrong_types_are_named_by_path(http: httpx.AsyncClient, seeded: Any) -> None:
    response = await http.post(
        "/runs",
        json={"pipeline": docs.greeting(), "params": "x", "labels": {"a": 1}, "version": "v"},
    )
    error = _error(response, 422, "validation_error")
    paths = {f["path"] for f in error["fields"]}
    assert {"params", "labels.a", "version"} <= paths
    assert "body" not in " ".join(paths)
    missing = await http.post("/pipelines", json={"doc": {}})
    fields = _error(missing, 422, "validation_error")["fields"]
    assert {f["path"] for f in fields} == {"document"}


async def test_unknown_fields_are_refused(http: httpx.AsyncClient, seeded: Any) -> None:
    response = await http.post("/runs", json={"pipeline": docs.greeting(), "parms": {}})
    error = _error(response, 422, "validation_error")
    assert [f["path"] for f in error["fields"]] == ["parms"]


async def test_bad_query_parameters_keep_their_prefix(http: httpx.AsyncClient) -> None:
    for params, path in (
        ({"limit": 0}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"status": "sleeping"}, "query.status[0]"),
        ({"created_after": "yesterday"}, "query.created_after"),
        ({"created_before": "9"}, "query.created_before"),
        ({"stauts": "failed"}, "query.stauts"),
    ):
        error = _error(await http.get("/runs", params=params), 422, "validation_error")
        assert [f["path"] for f in error["fields"]] == [path]


async def test_invalid_pipeline_harms_nothing(http: httpx.AsyncClient, seeded: Any) -> None:
    for method, path in (("POST", "/pipelines"), ("PUT", "/pipelines/greet")):
        response = await http.request(method, path, json={"document": docs.broken()})
        error = _error(response, 422, "invalid_pipeline")
        assert "steps[1].params.seconds" in {f["path"] for f in error["fields"]}
    error = _error(
        await http.post("/runs", json={"pipeline": docs.broken()}), 422, "invalid_pipeline"
    )
    assert "steps[0].action" in {f["path"] for f in error["fields"]}


async def test_bad_params_harm_nothing(http: httpx.AsyncClient, seeded: Any) -> None:
    response = await http.post("/runs", json={"pipeline_id": "greet", "params": {"nobody": 1}})
    error = _error(response, 422, "invalid_params")
    assert [f["path"] for f in error["fields"]] == ["params.nobody"]


async def test_unknown_ids_harm_nothing(http: httpx.AsyncClient, seeded: Any) -> None:
    for method, path in (
        ("GET", "/runs/nope"),
        ("POST", "/runs/nope/cancel"),
        ("DELETE", "/pipelines/nope"),
        ("GET", "/actions/nope"),
    ):
        _error(await http.request(method, path), 404, "not_found")
    unknown = _error(await http.post("/runs", json={"action": "nope"}), 422, "validation_error")
    assert [f["path"] for f in unknown["fields"]] == ["action"]


async def test_an_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    _error(await http.get("/nowhere"), 404, "not_found")
    _error(await http.patch("/runs"), 405, "method_not_allowed")


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    # A small limit, so oversized bodies stay small in the test.
    return Settings(db_path=tmp_path / "conveyor.db", max_body_bytes=4096)


async def test_an_oversized_body_is_413(http: httpx.AsyncClient, seeded: Any) -> None:
    big = {"document": docs.greeting() | {"description": "x" * 5000}}
    response = await http.post("/pipelines", json=big)
    error = _error(response, 413, "payload_too_large")
    assert "4096" in error["message"]


async def test_an_oversized_chunked_body_is_413(http: httpx.AsyncClient, seeded: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"document": {"name": "x", "description": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    response = await http.post("/pipelines", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    _error(response, 413, "payload_too_large")


async def test_a_body_under_the_limit_passes(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"document": '
        yield b'"name: small\\nsteps: [{id: a, action: log, params: {message: hi}}]"}'

    response = await http.post("/pipelines", content=chunks(), headers=JSON)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("fast_events", [True, False])
async def test_an_event_with_a_lone_surrogate_is_a_422_on_both_paths(
    service: Any, admin_token: str, fast_events: bool
) -> None:
    from conveyor.api import create_app
    from tests.api.live import client_for, serve

    body = '{"workflow_id": "w-1", "note": "\\udc80"}'
    app = create_app(service, fast_events=fast_events)
    async with serve(app) as url, client_for(url, admin_token) as client:
        response = await client.post("/events", content=body, headers=JSON)
        error = _error(response, 422, "invalid_event")
        assert error["fields"] == [
            {"path": "note", "message": "is not valid Unicode text (a lone surrogate)"}
        ]
        assert (await client.get("/events")).json()["total"] == 0


def test_a_defect_is_logged_without_locals_and_cut_short() -> None:
    from structlog.testing import capture_logs

    from conveyor.api.errors import _log_defect

    def deep(depth: int, secret: str = "hunter2") -> None:
        if depth:
            deep(depth - 1, secret)
        raise RuntimeError("boom")

    try:
        deep(200)
    except RuntimeError as exc:
        error = exc
    with capture_logs() as logs:
        _log_defect("/runs", error)
    (entry,) = logs
    trace = entry["exception"]
    assert "RuntimeError: boom" in trace
    assert "hunter2" not in trace
    assert trace.count(", in deep") <= 30
