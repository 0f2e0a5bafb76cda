"""Pipelines: the spec models, loading, validation and sandboxed templating."""

from conveyor.pipeline.graph import StepGraph
from conveyor.pipeline.loading import dump_pipeline, load_pipeline
from conveyor.pipeline.params import resolve_pipeline_params
from conveyor.pipeline.spec import (
    ParameterSpec,
    PipelineParamType,
    PipelineSettings,
    PipelineSpec,
    StepSpec,
)
from conveyor.pipeline.templating import compile_value, is_template, render_value
from conveyor.pipeline.validation import (
    ActionLookup,
    ValidationIssue,
    ValidationReport,
    validate_pipeline,
)

__all__ = [
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
