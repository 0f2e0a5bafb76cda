"""Reading BudPipeline's DAG format: which documents are, and what they mean in a spec."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import RetryPolicy
from conveyor.pipeline import dump_pipeline, load_pipeline, resolve_pipeline_params
from conveyor.pipeline.budpipeline import dialect_of
from conveyor.pipeline.loading import spec_from_document
from conveyor.pipeline.templating import compile_value
from tests.support.budpipeline_dags import DAGS


def doc(**step: Any) -> dict[str, Any]:
    return {"name": "p", "steps": [{"id": "a", "action": "log", **step}]}


@pytest.mark.parametrize(
    "document",
    [
        {**doc(), "settings": {"retry_policy": {"max_attempts": 2}}},
        {**doc(), "parameters": [{"name": "m", "type": "model_ref"}]},
        doc(outputs=["message"]),
        doc(retry={"max_attempts": 2, "backoff_seconds": 5}),
        doc(on_failure="RETRY"),
        doc(action="conditional", params={"branches": [{"id": "x", "target_step": "b"}]}),
        {**doc(), "dialect": "budpipeline"},
    ],
)
def test_budpipeline_documents_are_recognised(document: dict[str, Any]) -> None:
    assert dialect_of(document) == "budpipeline"
    assert spec_from_document(document).dialect == "budpipeline"


@pytest.mark.parametrize(
    "document",
    [
        doc(),
        doc(condition=""),  # an error of Conveyor's, not a sign of BudPipeline
        {**doc(), "parameters": [{"name": "m", "type": "blob"}]},  # a typo, named as such
        {**doc(on_failure="RETRY"), "dialect": "conveyor"},
    ],
)
def test_other_documents_stay_conveyors(document: dict[str, Any]) -> None:
    assert dialect_of(document) == "conveyor"


def test_budpipelines_names_and_defaults_are_kept() -> None:
    spec = spec_from_document(
        {
            "name": "p",
            "extra_field": "ignored",
            "parameters": [
                {"name": "ratio", "type": "float"},
                {"name": "cluster", "type": "cluster_ref", "default": "c1"},
                {"name": "tag", "type": "label", "required": False},
            ],
            "settings": {"retry_policy": {"backoff_seconds": 5}},
            "steps": [
                {
                    "id": "a",
                    "name": "A",
                    "action": "log",
                    "on_failure": "Retry",
                    "retry": {"max_attempts": 4, "backoff_multiplier": 3},
                    "outputs": ["message"],
                    "condition": "no",
                    "ignored": True,
                },
                {"id": "b", "action": "log", "depends_on": "a", "condition": "  "},
            ],
        }
    )

    assert [(p.name, p.type.value, p.required) for p in spec.parameters] == [
        ("ratio", "number", True),
        ("cluster", "string", True),
        ("tag", "any", False),
    ]
    assert (spec.settings.timeout_seconds, spec.settings.max_parallel_steps) == (7200, 10)
    assert spec.settings.retry == RetryPolicy(
        max_attempts=3, initial_interval_seconds=5, backoff_coefficient=2, max_interval_seconds=3600
    )
    a, b = spec.steps
    assert a.on_failure == "retry"
    assert a.retry == RetryPolicy(
        max_attempts=4,
        initial_interval_seconds=60,
        backoff_coefficient=3,
        max_interval_seconds=3600,
    )
    assert a.outputs == ["message"]
    assert a.condition is False  # a literal, as BudPipeline reads it
    assert b.depends_on == ["a"] and b.condition is None
    assert a.allow_skipped_upstream and b.allow_skipped_upstream


@pytest.mark.parametrize("name", sorted(DAGS))
def test_a_stored_spec_reads_back_the_same(name: str) -> None:
    spec = spec_from_document(DAGS[name])

    assert load_pipeline(dump_pipeline(spec)) == spec
    assert spec_from_document(spec.model_dump(mode="json", exclude_none=True)) == spec


def test_unset_parameters_are_absent_only_in_budpipeline_pipelines() -> None:
    parameters = [{"name": "note", "type": "string", "required": False}]
    bud = spec_from_document({**doc(), "dialect": "budpipeline", "parameters": parameters})
    own = spec_from_document({**doc(), "parameters": parameters})

    assert resolve_pipeline_params(bud, {}) == {}
    assert resolve_pipeline_params(own, {}) == {"note": None}


def test_lenient_templates_read_undefined_as_empty() -> None:
    context: dict[str, Any] = {"params": {}, "steps": {}}

    assert compile_value("{{ params.missing }}", lenient=True)(context) == ""
    assert compile_value("x{{ steps.a.outputs.b.c }}y", lenient=True)(context) == "xy"
    assert compile_value("{{ params.n | default(3) }}", lenient=True)(context) == 3
