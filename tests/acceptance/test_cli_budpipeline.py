"""BudPipeline's DAG JSON files, run and validated with the `conveyor` command as they are.

Each test writes a DAG of `tests.support.budpipeline_dags` to a ``.json`` file and drives the
real console script, checking the results BudPipeline gives for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli_run import conveyor
from tests.support.budpipeline_dags import BRANCHING, step_statuses, write_dag


def run(path: Path, db: Path, *params: str) -> dict[str, Any]:
    args = [item for param in params for item in ("-p", param)]
    done = conveyor("run", str(path), *args, "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "conveyor.db"


def test_the_true_branch_transforms_and_the_merge_step_reads_it(tmp_path: Path, db: Path) -> None:
    result = run(write_dag(tmp_path, "branching"), db)

    assert result["status"] == "completed"
    assert result["outputs"]["final_result"] == "HELLO WORLD"
    assert str(result["outputs"]["was_transformed"]) == "True"
    assert step_statuses(result) == {
        "log_start": "completed",
        "transform": "completed",
        "set_result": "completed",
    }


def test_the_false_branch_is_skipped_and_its_dependent_still_runs(tmp_path: Path, db: Path) -> None:
    result = run(write_dag(tmp_path, "branching"), db, "run_transform=false")

    assert result["status"] == "completed"
    assert result["outputs"]["final_result"] == "Hello World"  # default(params.message)
    assert str(result["outputs"]["was_transformed"]) == "False"
    assert step_statuses(result)["transform"] == "skipped"
    assert step_statuses(result)["set_result"] == "completed"


def test_an_unset_optional_parameter_is_absent(tmp_path: Path, db: Path) -> None:
    path = write_dag(tmp_path, "branching")

    unset = run(path, db)
    given = run(path, db, "suffix=!")

    assert unset["outputs"]["suffix"] == "none"  # default('none') applied
    assert str(unset["outputs"]["has_suffix"]) == "False"  # `is defined` is false
    assert "suffix" not in unset["params"]
    assert given["outputs"]["suffix"] == "!"
    assert str(given["outputs"]["has_suffix"]) == "True"


def test_a_retry_with_budpipelines_names_runs_every_attempt(tmp_path: Path, db: Path) -> None:
    result = run(write_dag(tmp_path, "retrying"), db)

    flaky = next(step for step in result["steps"] if step["step_id"] == "flaky")
    assert flaky["status"] == "failed"
    assert flaky["attempt"] == 3  # retry.max_attempts
    assert flaky["error"] == "service unavailable"
    # on_failure: CONTINUE (any case) lets the dependent run and the run complete.
    assert result["status"] == "completed"
    assert result["outputs"]["report"] == "UPSTREAM_DOWN: service unavailable"


@pytest.mark.parametrize(
    ("size", "taken", "skipped", "label"),
    [
        ("12", "ship_freight", "ship_parcel", "Big order"),
        ("3", "ship_parcel", "ship_freight", "Small order"),
    ],
)
def test_a_conditional_runs_its_target_step_and_skips_the_other(
    tmp_path: Path, db: Path, size: str, taken: str, skipped: str, label: str
) -> None:
    result = run(write_dag(tmp_path, "routing"), db, f"size={size}")

    statuses = step_statuses(result)
    assert statuses[taken] == "completed"
    assert statuses[skipped] == "skipped"
    assert statuses["confirm"] == "completed"
    assert result["outputs"]["target_step"] == taken
    assert result["outputs"]["label"] == label
    assert result["outputs"]["waited"] is True  # wait_until's durable timer fired


def test_validate_accepts_the_dags_and_warns_where_lenient_semantics_hide_a_mistake(
    tmp_path: Path,
) -> None:
    careless = json.loads(json.dumps(BRANCHING))
    careless["steps"][0]["params"]["message"] = "{{ params.mesage }}"
    careless["steps"][1]["params"]["input"] = "{{ steps.set_result.outputs.result }}"
    path = tmp_path / "careless.json"
    path.write_text(json.dumps(careless), encoding="utf-8")

    done = conveyor("validate", str(path), str(write_dag(tmp_path, "routing")), "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    files = {Path(entry["file"]).name: entry for entry in json.loads(done.stdout)["files"]}
    warnings = {w["path"]: w["message"] for w in files["careless.json"]["warnings"]}
    assert "params.mesage: not a declared pipeline parameter" in warnings["steps[0].params.message"]
    assert "did you mean 'message'?" in warnings["steps[0].params.message"]
    assert "is not upstream of this step" in warnings["steps[1].params.input"]
    assert "render it as empty" in warnings["steps[1].params.input"]
    assert files["routing.json"]["errors"] == []


def test_the_same_mistakes_in_a_conveyor_pipeline_are_errors(tmp_path: Path) -> None:
    strict = json.loads(json.dumps(BRANCHING))
    del strict["dialect"]
    strict["steps"][0]["params"]["message"] = "{{ params.mesage }}"
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(strict), encoding="utf-8")

    done = conveyor("validate", str(path))

    assert done.returncode == 1
    assert "params.mesage: not a declared pipeline parameter" in done.stdout + done.stderr
    assert "condition: is empty" in done.stdout + done.stderr


def test_an_unknown_dialect_is_named(tmp_path: Path) -> None:
    document = {**BRANCHING, "dialect": "airflow"}
    path = tmp_path / "airflow.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    done = conveyor("validate", str(path))

    assert done.returncode == 1
    assert "dialect: must be one of conveyor, budpipeline" in done.stdout + done.stderr
