"""Pipelines written in BudPipeline's DAG format, with its built-ins and fields, as it runs them.

Each is a JSON document as a BudPipeline user has it: no ``dialect`` field unless said, step
names, its parameter types, its retry names and its built-ins' params. The CLI and HTTP tests
run them and check the results BudPipeline gives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The if/else-and-merge pattern: `transform` runs only when asked; `set_result` depends on it
# and runs either way (BudPipeline does not propagate skips), reading its output with
# default(). `suffix` is optional and unset unless given: absent, so default() applies.
BRANCHING: dict[str, Any] = {
    "name": "branching",
    "version": "1.0.0",
    "dialect": "budpipeline",
    "parameters": [
        {"name": "message", "type": "string", "default": "Hello World"},
        {"name": "run_transform", "type": "boolean", "default": True},
        {"name": "suffix", "type": "string", "required": False},
    ],
    "steps": [
        {
            "id": "log_start",
            "name": "Log Start",
            "action": "log",
            "params": {"message": "Starting with {{ params.message }}", "level": "info"},
        },
        {
            "id": "transform",
            "name": "Transform Message",
            "action": "transform",
            "depends_on": ["log_start"],
            "condition": "{{ params.run_transform }}",
            "params": {"input": "{{ params.message }}", "operation": "uppercase"},
        },
        {
            "id": "set_result",
            "name": "Set Result",
            "action": "set_output",
            "depends_on": ["transform"],
            "condition": "",
            "params": {
                "outputs": {
                    "result": "{{ steps.transform.outputs.result | default(params.message) }}",
                    "transformed": "{{ steps.transform.outputs.result is defined }}",
                    "suffix": "{{ params.suffix | default('none') }}",
                    "has_suffix": "{{ params.suffix is defined }}",
                }
            },
        },
    ],
    "outputs": {
        "final_result": "{{ steps.set_result.outputs.result }}",
        "was_transformed": "{{ steps.set_result.outputs.transformed }}",
        "suffix": "{{ steps.set_result.outputs.suffix }}",
        "has_suffix": "{{ steps.set_result.outputs.has_suffix }}",
    },
}

# A step retried with BudPipeline's names (and an upper-case on_failure): `fail` fails every
# attempt, so it ends failed after max_attempts, and CONTINUE lets the report run.
RETRYING: dict[str, Any] = {
    "name": "retrying",
    "version": "1.0",
    "settings": {"fail_fast": False},
    "steps": [
        {
            "id": "flaky",
            "name": "Flaky call",
            "action": "fail",
            "outputs": ["error_code", "message"],
            "params": {"message": "service unavailable", "error_code": "UPSTREAM_DOWN"},
            "on_failure": "CONTINUE",
            "retry": {
                "max_attempts": 3,
                "backoff_seconds": 1,
                "backoff_multiplier": 1.0,
                "max_backoff_seconds": 1,
            },
        },
        {
            "id": "report",
            "name": "Report",
            "action": "aggregate",
            "depends_on": ["flaky"],
            "params": {
                "inputs": [
                    "{{ steps.flaky.outputs.error_code }}",
                    "{{ steps.flaky.outputs.message }}",
                ],
                "operation": "join",
                "separator": ": ",
            },
        },
    ],
    "outputs": {"report": "{{ steps.report.outputs.result }}"},
}

# A conditional with target steps: the branch's target runs, the other target is skipped, and
# the step that merges them runs either way. `wait_until` pauses on a durable timer first.
ROUTING: dict[str, Any] = {
    "name": "routing",
    "version": "1.0",
    "parameters": [{"name": "size", "type": "float", "default": 12}],
    "steps": [
        {
            "id": "pause",
            "name": "Pause",
            "action": "wait_until",
            "params": {"duration_hours": 0.0003},
        },
        {
            "id": "route",
            "name": "Route",
            "action": "conditional",
            "depends_on": ["pause"],
            "params": {
                "branches": [
                    {
                        "id": "big",
                        "label": "Big order",
                        "condition": "{{ params.size > 10 }}",
                        "target_step": "ship_freight",
                    },
                    {
                        "id": "small",
                        "label": "Small order",
                        "condition": "true",
                        "target_step": "ship_parcel",
                    },
                ]
            },
        },
        {
            "id": "ship_freight",
            "name": "Ship by freight",
            "action": "log",
            "depends_on": ["route"],
            "params": {"message": "freight for {{ params.size }}"},
        },
        {
            "id": "ship_parcel",
            "name": "Ship as a parcel",
            "action": "log",
            "depends_on": ["route"],
            "params": {"message": "parcel for {{ params.size }}"},
        },
        {
            "id": "confirm",
            "name": "Confirm",
            "action": "set_output",
            "depends_on": ["ship_freight", "ship_parcel"],
            "params": {
                "outputs": {
                    "label": "{{ steps.route.outputs.matched_label }}",
                    "waited": "{{ steps.pause.outputs.waited }}",
                }
            },
        },
    ],
    "outputs": {
        "matched_branch": "{{ steps.route.outputs.matched_branch }}",
        "target_step": "{{ steps.route.outputs.target_step }}",
        "label": "{{ steps.confirm.outputs.label }}",
        "waited": "{{ steps.confirm.outputs.waited }}",
    },
}

DAGS = {"branching": BRANCHING, "retrying": RETRYING, "routing": ROUTING}


def write_dag(directory: Path, name: str) -> Path:
    """Write the DAG `name` as ``name.json`` in `directory`, as BudPipeline users keep them."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps(DAGS[name], indent=2), encoding="utf-8")
    return path


def step_statuses(run: dict[str, Any]) -> dict[str, str]:
    """Each step's status in a run as the CLI's ``--json`` and the HTTP API show it."""
    return {step["step_id"]: step["status"] for step in run["steps"]}
