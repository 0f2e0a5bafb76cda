"""The pipeline catalog: create, list, read, update as a new version, delete, validate."""

from __future__ import annotations

from typing import Any

import httpx

from conveyor.api import Service
from tests.api import docs


async def _create(http: httpx.AsyncClient, document: Any) -> dict[str, Any]:
    response = await http.post("/pipelines", json={"document": document})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_then_read_by_id_and_by_name(http: httpx.AsyncClient) -> None:
    created = await _create(http, docs.greeting())
    assert created["name"] == "greet"
    assert created["owner"] == "admin"
    assert created["version"] == created["latest_version"] == 1
    assert created["document"]["steps"][0]["id"] == "say"
    assert created["warnings"] == []
    by_id = (await http.get(f"/pipelines/{created['id']}")).json()
    by_name = (await http.get("/pipelines/greet")).json()
    assert by_id == by_name
    assert by_id["document"] == created["document"]


async def test_create_from_yaml_text(http: httpx.AsyncClient) -> None:
    text = "name: from_yaml\nsteps:\n  - id: a\n    action: log\n    params: {message: hi}\n"
    created = await _create(http, text)
    assert created["name"] == "from_yaml"
    assert created["document"]["steps"][0]["params"] == {"message": "hi"}


async def test_list_is_paginated_by_name(http: httpx.AsyncClient) -> None:
    for name in ("c", "a", "b"):
        await _create(http, docs.greeting(name))
    page = (await http.get("/pipelines", params={"limit": 2})).json()
    assert [p["name"] for p in page["items"]] == ["a", "b"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    rest = (await http.get("/pipelines", params={"limit": 2, "offset": 2})).json()
    assert [p["name"] for p in rest["items"]] == ["c"]
    named = (await http.get("/pipelines", params={"name": "b"})).json()
    assert [p["name"] for p in named["items"]] == ["b"]
    assert "document" not in named["items"][0]


async def test_update_adds_a_version_and_keeps_the_old(http: httpx.AsyncClient) -> None:
    created = await _create(http, docs.greeting(text="one"))
    response = await http.put(
        f"/pipelines/{created['id']}", json={"document": docs.greeting(text="two")}
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["id"], updated["version"], updated["latest_version"]) == (created["id"], 2, 2)
    latest = (await http.get(f"/pipelines/{created['id']}")).json()
    first = (await http.get(f"/pipelines/{created['id']}", params={"version": 1})).json()
    assert "two" in latest["document"]["steps"][0]["params"]["message"]
    assert "one" in first["document"]["steps"][0]["params"]["message"]
    versions = (await http.get(f"/pipelines/{created['id']}/versions")).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    missing = await http.get(f"/pipelines/{created['id']}", params={"version": 3})
    assert missing.status_code == 404


async def test_runs_keep_the_version_they_started_with(
    http: httpx.AsyncClient, service: Service
) -> None:
    created = await _create(http, docs.greeting(text="one"))
    run = (await http.post("/runs", json={"pipeline_id": created["id"]})).json()
    await http.put(f"/pipelines/{created['id']}", json={"document": docs.greeting(text="two")})
    done = await service.backend.wait(run["run_id"], timeout=10)
    assert done.outputs == {"greeting": "one world"}
    await http.delete(f"/pipelines/{created['id']}")
    again = (await http.get(f"/runs/{run['run_id']}")).json()
    assert again["outputs"] == {"greeting": "one world"}


async def test_delete(http: httpx.AsyncClient) -> None:
    created = await _create(http, docs.greeting())
    response = await http.delete(f"/pipelines/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await http.get(f"/pipelines/{created['id']}")).status_code == 404
    assert (await http.delete(f"/pipelines/{created['id']}")).status_code == 404
    assert (await http.get("/pipelines")).json()["total"] == 0


async def test_a_name_is_unique_per_owner(http: httpx.AsyncClient) -> None:
    await _create(http, docs.greeting("same"))
    response = await http.post("/pipelines", json={"document": docs.greeting("same")})
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"
    other = await _create(http, docs.greeting("other"))
    renamed = await http.put(f"/pipelines/{other['id']}", json={"document": docs.greeting("same")})
    assert renamed.status_code == 409
    assert (await http.get(f"/pipelines/{other['id']}")).json()["latest_version"] == 1


async def test_invalid_pipeline_is_422_with_every_path(http: httpx.AsyncClient) -> None:
    before = (await http.get("/pipelines")).json()
    response = await http.post("/pipelines", json={"document": docs.broken()})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_pipeline"
    paths = {f["path"] for f in error["fields"]}
    assert {"steps[0].action", "steps[1].params.seconds", "steps[2].depends_on[0]"} <= paths
    assert (await http.get("/pipelines")).json() == before


async def test_shape_errors_are_named_by_path(http: httpx.AsyncClient) -> None:
    document = {"name": "x", "steps": [{"id": "1 bad", "action": "log", "retry": "often"}]}
    response = await http.post("/pipelines", json={"document": document})
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert {"steps[0].id", "steps[0].retry"} <= paths


async def test_invalid_update_keeps_the_latest_version(http: httpx.AsyncClient) -> None:
    created = await _create(http, docs.greeting())
    response = await http.put(f"/pipelines/{created['id']}", json={"document": docs.broken()})
    assert response.status_code == 422
    latest = (await http.get(f"/pipelines/{created['id']}")).json()
    assert latest["version"] == 1
    assert latest["document"] == created["document"]


async def test_unparseable_text_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/pipelines", json={"document": "name: [unclosed"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_pipeline"
    assert "line 1" in response.json()["error"]["message"]


async def test_yaml_aliases_are_refused(http: httpx.AsyncClient) -> None:
    text = "name: x\nsteps:\n  - &s {id: a, action: log, params: {message: hi}}\n  - *s\n"
    response = await http.post("/pipelines", json={"document": text})
    assert response.status_code == 422
    assert "aliases" in response.json()["error"]["message"]


async def test_a_path_string_is_never_read_as_a_file(http: httpx.AsyncClient) -> None:
    response = await http.post("/pipelines/validate", json={"document": "/etc/passwd.yaml"})
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert "file" not in response.json()["errors"][0]["message"]


async def test_validate_without_storing(http: httpx.AsyncClient) -> None:
    ok = await http.post("/pipelines/validate", json={"document": docs.greeting()})
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "errors": [], "warnings": []}
    bad = (await http.post("/pipelines/validate", json={"document": docs.broken()})).json()
    assert bad["valid"] is False
    assert "steps[0].action" in {e["path"] for e in bad["errors"]}
    unparsed = (await http.post("/pipelines/validate", json={"document": "a: [b"})).json()
    assert unparsed["valid"] is False
    assert (await http.get("/pipelines")).json()["total"] == 0


async def test_warnings_are_returned(http: httpx.AsyncClient) -> None:
    document = docs.greeting()
    document["parameters"].append({"name": "unused", "type": "string"})
    created = await _create(http, document)
    assert created["warnings"], "an unused parameter is worth a warning"
    checked = (await http.post("/pipelines/validate", json={"document": document})).json()
    assert checked["valid"] is True
    assert checked["warnings"] == created["warnings"]


async def test_unknown_pipeline_is_404(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/pipelines/nope"),
        await http.get("/pipelines/nope/versions"),
        await http.put("/pipelines/nope", json={"document": docs.greeting()}),
        await http.delete("/pipelines/nope"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
