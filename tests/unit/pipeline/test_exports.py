"""The public surface of conveyor.pipeline is deliberate: adding or removing a name fails here."""

from __future__ import annotations

import conveyor.pipeline


def test_the_pipeline_package_exports_exactly_these_names() -> None:
    assert conveyor.pipeline.__all__ == [
        "ActionLookup",
        "ParameterSpec",
        "PipelineParamType",
        "PipelineSettings",
        "PipelineSpec",
        "StepGraph",
        "StepSpec",
        "ValidationIssue",
        "ValidationReport",
        "compile_value",
        "dump_pipeline",
        "is_template",
        "load_pipeline",
        "render_value",
        "resolve_pipeline_params",
        "validate_pipeline",
    ]


def test_every_exported_name_exists() -> None:
    for name in conveyor.pipeline.__all__:
        member = getattr(conveyor.pipeline, name)
        assert getattr(member, "__module__", "").startswith("conveyor.pipeline"), name
