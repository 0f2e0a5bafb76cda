"""The pipeline document: parameters, settings, steps and outputs.

These models check shape and local rules only (ids, names, enums, bounds). Rules that need the
action registry or the whole graph (unknown actions, cycles, references) live in `validation`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.actions import RetryPolicy

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

OnFailure = Literal["fail", "continue", "retry"]
Dialect = Literal["conveyor", "budpipeline"]


class PipelineParamType(StrEnum):
    """The type of a pipeline parameter."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    ANY = "any"


class ParameterSpec(BaseModel):
    """An input a pipeline takes when it is started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: PipelineParamType = PipelineParamType.STRING
    required: bool = False
    default: Any = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"{value!r} must be an identifier (letters, digits, _)")
        return value


class PipelineSettings(BaseModel):
    """Run-wide settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """The whole run ends TIMED_OUT past this."""
    max_parallel_steps: int = Field(default=64, ge=1, le=100_000)
    """How many steps of one run execute at once (waiting steps do not count)."""
    fail_fast: bool = True
    """On a failed step, cancel the running siblings and end the run at once."""
    retry: RetryPolicy | None = None
    """The retry policy of steps that do not set their own."""


class StepSpec(BaseModel):
    """One node of the graph: an action with templated params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str | None = None
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    condition: str | bool | None = None
    """A template; the step is SKIPPED when it renders falsy."""
    on_failure: OnFailure = "fail"
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    queue: str | None = None
    for_each: str | list[Any] | None = None
    """Run the action once per item of this list (a template or a literal list)."""
    max_parallel: int | None = Field(default=None, ge=1)
    """With `for_each`: how many items run at once."""
    allow_skipped_upstream: bool = False
    """Run even when an upstream step was skipped (skips propagate otherwise)."""
    outputs: list[str] = Field(default_factory=list)
    """The outputs later steps read (BudPipeline's field; documentation only)."""

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"{value!r} must be an identifier (letters, digits, _)")
        return value

    @property
    def title(self) -> str:
        """The name, or the id."""
        return self.name or self.id


class PipelineSpec(BaseModel):
    """A named, versioned DAG of steps with its inputs and outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    dialect: Dialect = "conveyor"
    """Whose semantics the pipeline runs with: Conveyor's, or BudPipeline's (see
    `conveyor.pipeline.budpipeline`)."""
    version: str = "1"
    description: str | None = None
    parameters: list[ParameterSpec] = Field(default_factory=list)
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    steps: list[StepSpec] = Field(min_length=1)
    outputs: dict[str, Any] = Field(default_factory=dict)

    def step(self, step_id: str) -> StepSpec:
        """The step with id `step_id`."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
