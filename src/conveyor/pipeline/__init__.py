"""Pipelines: the spec models, loading, validation and sandboxed templating."""

from conveyor.pipeline.spec import (
    ParameterSpec,
    PipelineParamType,
    PipelineSettings,
    PipelineSpec,
    StepSpec,
)
from conveyor.pipeline.templating import compile_value, is_template, render_value

__all__ = [
    "ParameterSpec",
    "PipelineParamType",
    "PipelineSettings",
    "PipelineSpec",
    "StepSpec",
    "compile_value",
    "is_template",
    "render_value",
]
