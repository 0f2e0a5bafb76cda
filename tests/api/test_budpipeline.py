"""BudPipeline's DAG documents over real HTTP (``POST /pipelines``, ``POST /runs``) and through
the Python client, with the results BudPipeline gives for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Client
from conveyor.api import Service
from tests.support.budpipeline_dags import BRANCHING, RETRYING, ROUTING, step_statuses


async def _run(http: httpx.AsyncClient, service: Service, body: dict[str, Any]) -> dict[str, Any]:
    started = await http.post("/runs", json=body)
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    await service.backend.wait(run_id, timeout=30)
    read = await http.get(f"/runs/{run_id}")
    assert read.status_code == 200, read.text
    result: dict[str, Any] = read.json()
    return result


async def test_a_stored_dag_runs_both_branches(http: httpx.AsyncClient, service: Service) -> None:
    stored = await http.post("/pipelines", json={"document": BRANCHING})
    assert stored.status_code == 201, stored.text
    pipeline_id = stored.json()["id"]
    assert stored.json()["document"]["dialect"] == "budpipeline"

    true = await _run(http, service, {"pipeline_id": pipeline_id})
    false = await _run(
        http, service, {"pipeline_id": pipeline_id, "params": {"run_transform": False}}
    )

    assert true["status"] == false["status"] == "completed"
    assert true["outputs"]["final_result"] == "HELLO WORLD"
    assert false["outputs"]["final_result"] == "Hello World"
    assert step_statuses(false) == {
        "log_start": "completed",
        "transform": "skipped",
        "set_result": "completed",
    }
    # The optional parameter was not given: default() and `is defined` see it as absent.
    assert true["outputs"]["suffix"] == "none"
    assert str(true["outputs"]["has_suffix"]) == "False"


async def test_an_inline_dag_retries_with_budpipelines_names(
    http: httpx.AsyncClient, service: Service
) -> None:
    result = await _run(http, service, {"pipeline": RETRYING})

    flaky = next(step for step in result["steps"] if step["step_id"] == "flaky")
    assert (flaky["status"], flaky["attempt"]) == ("failed", 3)
    assert result["status"] == "completed"
    assert result["outputs"]["report"] == "UPSTREAM_DOWN: service unavailable"


@pytest.mark.parametrize(
    ("size", "taken", "skipped"),
    [(12, "ship_freight", "ship_parcel"), (3, "ship_parcel", "ship_freight")],
)
async def test_a_conditional_routes_to_its_target_step(
    http: httpx.AsyncClient, service: Service, size: int, taken: str, skipped: str
) -> None:
    result = await _run(http, service, {"pipeline": ROUTING, "params": {"size": size}})

    statuses = step_statuses(result)
    assert (statuses[taken], statuses[skipped], statuses["confirm"]) == (
        "completed",
        "skipped",
        "completed",
    )
    assert result["outputs"]["target_step"] == taken


async def test_validation_over_http_warns_for_a_budpipeline_document(
    http: httpx.AsyncClient,
) -> None:
    careless = json.loads(json.dumps(BRANCHING))
    careless["outputs"]["extra"] = "{{ workflow.name }}"

    response = await http.post("/pipelines/validate", json={"document": careless})

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is True
    messages = [w["message"] for w in report["warnings"] if w["path"] == "outputs.extra"]
    assert messages and "undefined name 'workflow'" in messages[0]


async def test_a_bad_budpipeline_document_is_422_naming_the_field(http: httpx.AsyncClient) -> None:
    broken = json.loads(json.dumps(RETRYING))
    broken["steps"][0]["retry"]["max_attempts"] = "{{ params.max_retries }}"
    broken["steps"][0]["on_failure"] = "Explode"

    response = await http.post("/pipelines", json={"document": broken})

    assert response.status_code == 422, response.text
    text = response.text
    assert "steps[0].retry.max_attempts" in text
    assert "steps[0].on_failure" in text
    assert (await http.get("/pipelines")).json()["items"] == []


async def test_the_python_client_runs_a_dag_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(ROUTING), encoding="utf-8")

    async with Client.local(tmp_path / "client.db") as client:
        run_id = await client.start(path, {"size": 3})
        view = await client.wait(run_id, timeout=30)

    assert view.outputs is not None
    assert view.outputs["matched_branch"] == "small"
    assert {s.step_id: s.status.value for s in view.steps}["ship_freight"] == "skipped"
