"""Declarative action metadata: what an action is, takes and gives.

`ActionMeta` is the single source for the catalog, UI forms, server-side param validation and
docs, so it is checked when it is declared: a bad declaration fails at import time, naming the
action and the field, rather than at the first run.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from conveyor.errors import InvalidActionError

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Semantic Versioning 2.0.0, the grammar from semver.org.
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class ExecutionMode(StrEnum):
    """How an action completes."""

    SYNC = "sync"
    """`execute()` returns the final result."""
    EVENT_DRIVEN = "event_driven"
    """`execute()` starts work elsewhere and the step waits for events (`on_event`)."""


class ParamType(StrEnum):
    """The kinds of value a param holds."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    """A whole number (min/max apply): `2.5` is refused, `3.0` and `"3"` become 3."""
    BOOLEAN = "boolean"
    SELECT = "select"
    MULTISELECT = "multiselect"
    JSON = "json"
    TEMPLATE = "template"
    BRANCHES = "branches"
    RANGE = "range"
    MODEL_REF = "model_ref"
    CLUSTER_REF = "cluster_ref"
    ENDPOINT_REF = "endpoint_ref"
    PROJECT_REF = "project_ref"
    CREDENTIAL_REF = "credential_ref"
    PROVIDER_REF = "provider_ref"
    CLOUD_MODEL_REF = "cloud_model_ref"

    @property
    def is_reference(self) -> bool:
        """Whether the options of this type come from a reference resolver."""
        return self.value.endswith("_ref")


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SelectOption(BaseModel):
    """One choice of a SELECT or MULTISELECT param."""

    model_config = _FROZEN

    label: str
    value: Any
    description: str | None = None


class ValidationRules(BaseModel):
    """Rules a param value must satisfy, beyond its type."""

    model_config = _FROZEN

    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    pattern: str | None = None
    pattern_message: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidationRules:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError(
                f"min_length ({self.min_length}) is greater than max_length ({self.max_length})"
            )
        return self


class ShowWhen(BaseModel):
    """Show a param in forms only when another param has (or lacks) a value."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    param: str
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")


ConditionalVisibility = ShowWhen
"""BudPipeline's name for `ShowWhen`."""


class ParamDefinition(BaseModel):
    """One input of an action."""

    model_config = _FROZEN

    name: str
    label: str | None = None
    type: ParamType = ParamType.STRING
    required: bool = False
    default: Any = None
    description: str | None = None
    placeholder: str | None = None
    options: list[SelectOption] | None = None
    validation: ValidationRules | None = None
    group: str | None = None
    show_when: ShowWhen | None = None

    @property
    def display_label(self) -> str:
        """The label, or a readable form of the name."""
        return self.label or self.name.replace("_", " ").capitalize()


class OutputDefinition(BaseModel):
    """One output an action produces."""

    model_config = _FROZEN

    name: str
    type: str = "any"
    description: str | None = None


class RetryPolicy(BaseModel):
    """How often and how soon a failed step is tried again.

    Finite by default: an unbounded retry is a run that never ends. `backoff_multiplier`
    (BudPipeline's name) is accepted for `backoff_coefficient`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    max_attempts: int = Field(default=3, ge=1, le=1000)
    # Finite: `.inf` would retry forever, or never, and a NaN compares false to every bound.
    initial_interval_seconds: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    backoff_coefficient: float = Field(
        default=2.0,
        ge=1.0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("backoff_coefficient", "backoff_multiplier"),
    )
    max_interval_seconds: float = Field(default=60.0, ge=0, allow_inf_nan=False)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 for the first retry)."""
        try:
            raw = self.initial_interval_seconds * self.backoff_coefficient ** max(0, attempt - 2)
        except OverflowError:  # A large coefficient, many attempts: past any bound.
            return float(self.max_interval_seconds)
        return float(min(raw, self.max_interval_seconds))

    @property
    def backoff_multiplier(self) -> float:
        """BudPipeline's name for `backoff_coefficient`."""
        return self.backoff_coefficient


class ActionExample(BaseModel):
    """A worked use of an action, for the catalog and docs."""

    model_config = _FROZEN

    title: str
    params: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None


class ActionMeta(BaseModel):
    """The declaration of an action; checked in full when it is created."""

    model_config = _FROZEN

    type: str
    version: str = "1.0.0"
    name: str
    description: str
    category: str
    icon: str | None = None
    color: str | None = None
    execution_mode: ExecutionMode = ExecutionMode.SYNC
    timeout_seconds: float | None = Field(default=None, gt=0)
    idempotent: bool = True
    """Whether running it twice is safe. True by default, as in BudPipeline: a step that was
    running when the engine stopped is run again on recovery; declare False for an action
    whose side effect must not happen twice, and such a step fails as interrupted instead."""
    required_services: list[str] = Field(default_factory=list)
    required_permissions: list[str] = Field(default_factory=list)
    params: list[ParamDefinition] = Field(default_factory=list)
    outputs: list[OutputDefinition] = Field(default_factory=list)
    dynamic_outputs: bool = False
    """Outputs beyond the declared ones may appear (e.g. `set_output`); references to
    undeclared outputs of this action are then not validation errors."""
    retry_policy: RetryPolicy | None = None
    queue: str = "default"
    documentation: str | None = None
    docs_url: str | None = None
    examples: list[ActionExample] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_declaration(self) -> ActionMeta:
        problems = _declaration_problems(self)
        if problems:
            # Not a ValueError on purpose: pydantic lets it through unwrapped, so the caller
            # sees which action is wrong rather than a generic model error.
            raise InvalidActionError(self.type, problems)
        return self

    def param(self, name: str) -> ParamDefinition | None:
        """The definition of param `name`, if declared."""
        for definition in self.params:
            if definition.name == name:
                return definition
        return None

    def get_param(self, name: str) -> ParamDefinition | None:
        """BudPipeline's name for `param`."""
        return self.param(name)

    def get_output(self, name: str) -> OutputDefinition | None:
        """The definition of output `name`, if declared."""
        for output in self.outputs:
            if output.name == name:
                return output
        return None

    def validate(self) -> list[str]:  # type: ignore[override]
        """The problems of this declaration: always none.

        BudPipeline's registry calls it before registering; here a declaration with problems
        cannot be created at all (`InvalidActionError`), so one that exists has none.
        """
        return []

    @property
    def output_names(self) -> frozenset[str]:
        """The names of the declared outputs."""
        return frozenset(o.name for o in self.outputs)


def _declaration_problems(meta: ActionMeta) -> list[str]:
    # Imported here: _params imports this module for the model types.
    from conveyor.actions._params import check_value

    problems: list[str] = []
    if not _TYPE_RE.match(meta.type):
        problems.append(f"type: {meta.type!r} must be a lowercase identifier ([a-z][a-z0-9_]*)")
    if not _SEMVER_RE.match(meta.version):
        problems.append(f"version: {meta.version!r} is not a semantic version like 1.0.0")
    if not _TYPE_RE.match(meta.queue.replace("-", "_")):
        problems.append(f"queue: {meta.queue!r} must be a lowercase identifier")
    for field in ("name", "description", "category"):
        if not getattr(meta, field).strip():
            problems.append(f"{field}: must not be empty")

    names = [p.name for p in meta.params]
    for index, definition in enumerate(meta.params):
        where = f"params[{index}]"
        if not definition.name.isidentifier():
            problems.append(f"{where}.name: {definition.name!r} is not an identifier")
        if names.count(definition.name) > 1 and names.index(definition.name) == index:
            problems.append(f"{where}.name: {definition.name!r} is declared more than once")
        if definition.type in (ParamType.SELECT, ParamType.MULTISELECT) and not definition.options:
            problems.append(f"{where}.options: a {definition.type.value} param needs options")
        if definition.show_when is not None and definition.show_when.param not in names:
            problems.append(
                f"{where}.show_when.param: {definition.show_when.param!r} is not a param "
                "of this action"
            )
        if definition.default is not None:
            problem = check_value(definition, definition.default)
            if problem is not None:
                problems.append(f"{where}.default: {problem}")

    outputs = [o.name for o in meta.outputs]
    for index, output in enumerate(meta.outputs):
        if outputs.count(output.name) > 1 and outputs.index(output.name) == index:
            problems.append(f"outputs[{index}].name: {output.name!r} is declared more than once")
    return problems
