"""Request errors worded for a person: what was wrong, where, and what to send instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import docs

ROOT = Path(__file__).resolve().parents[2]
HELLO = (ROOT / "examples" / "hello.yaml").read_text()


def _error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == type_
    assert "Value error" not in response.text
    assert "Input should" not in response.text
    return error


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml"])
async def test_a_pipeline_is_stored_from_yaml(http: httpx.AsyncClient, content_type: str) -> None:
    created = await http.post("/pipelines", content=HELLO, headers={"content-type": content_type})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "hello"
    updated = await http.put(
        "/pipelines/hello",
        content=HELLO.replace("Hello,", "Hi,"),
        headers={"content-type": content_type},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    checked = await http.post(
        "/pipelines/validate", content=HELLO, headers={"content-type": content_type}
    )
    assert checked.json() == {"valid": True, "errors": [], "warnings": []}


async def test_broken_yaml_is_named_with_its_line(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/pipelines", content="name: x\nsteps: [", headers={"content-type": "application/yaml"}
    )
    error = _error(response, 422, "invalid_pipeline")
    assert "line" in error["message"]
    assert (await http.get("/pipelines")).json()["total"] == 0


async def test_yaml_that_is_not_utf8_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/pipelines", content=b"name: \xff", headers={"content-type": "text/yaml"}
    )
    assert _error(response, 400, "invalid_yaml")["message"] == "the YAML body is not UTF-8 text"


async def test_a_body_without_content_type_is_415_naming_what_is_accepted(
    http: httpx.AsyncClient,
) -> None:
    body = b'{"action": "log", "params": {"message": "hi"}}'
    response = await http.post("/runs", content=body)
    error = _error(response, 415, "unsupported_media_type")
    assert error["message"] == (
        "the body was sent with no Content-Type; send it as JSON (Content-Type: application/json)"
    )
    assert (await http.get("/runs")).json()["total"] == 0


async def test_another_type_to_a_pipeline_route_names_json_and_yaml(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/pipelines", content=HELLO, headers={"content-type": "text/plain"})
    error = _error(response, 415, "unsupported_media_type")
    assert error["message"] == (
        "the body was sent with Content-Type 'text/plain'; send it as JSON "
        "(Content-Type: application/json), or the pipeline as YAML "
        "(Content-Type: application/yaml or text/yaml)"
    )


async def test_yaml_to_a_route_that_is_not_a_pipeline_route_is_415(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/runs", content="action: log\n", headers={"content-type": "application/yaml"}
    )
    error = _error(response, 415, "unsupported_media_type")
    assert "application/yaml" in error["message"]
    assert "send it as JSON (Content-Type: application/json)" in error["message"]


async def test_an_empty_start_says_what_to_give(http: httpx.AsyncClient) -> None:
    error = _error(await http.post("/runs", json={}), 422, "validation_error")
    expected = (
        "say what to run: give one of pipeline_id (a stored pipeline), pipeline "
        "(an inline one) or action (one action)"
    )
    assert error["fields"] == [{"path": "", "message": expected}]
    assert error["message"] == f"the request is invalid: {expected}"
    both = _error(
        await http.post("/runs", json={"pipeline_id": "x", "action": "log"}),
        422,
        "validation_error",
    )
    assert both["fields"][0]["message"] == (
        "give only one of pipeline_id, pipeline or action, not pipeline_id and action"
    )


async def test_an_unknown_action_is_422_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"action": "lgo", "params": {}})
    error = _error(response, 422, "validation_error")
    [field] = error["fields"]
    assert field["path"] == "action"
    assert field["message"].startswith("unknown action type 'lgo' (known: ")


async def test_field_errors_are_worded_for_a_person(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", json={"pipeline": docs.greeting(), "params": [], "bogus": 1, "version": "v"}
    )
    error = _error(response, 422, "validation_error")
    by_path = {f["path"]: f["message"] for f in error["fields"]}
    assert by_path["params"] == "must be an object"
    assert by_path["bogus"] == "is not a field of this request"
    assert by_path["version"] == "must be an integer"
    union = _error(await http.post("/pipelines", json={"document": 5}), 422, "validation_error")
    assert union["fields"] == [{"path": "document", "message": "must be an object or a string"}]
    missing = _error(await http.post("/pipelines", json={}), 422, "validation_error")
    assert missing["fields"] == [{"path": "document", "message": "is required"}]
    assert missing["message"] == "the request is invalid: document: is required"
