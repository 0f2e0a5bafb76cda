"""Check a whole pipeline against the action registry, reporting every problem at once.

The spec models check each field on its own; this module checks what needs the registry or
the whole document: actions and their params, the dependency graph, and what every template
reads. Each problem is a `ValidationIssue` whose path points into the document
(``steps[2].params.count: must be <= 10``). Errors stop a pipeline from running; warnings point
at something that runs but is probably not what the author meant.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Literal, Protocol

from conveyor.actions import (
    ActionDefinition,
    ActionMeta,
    ExecutionMode,
    ParamType,
    validate_params,
)
from conveyor.errors import PipelineValidationError, UnknownActionError
from conveyor.pipeline.graph import StepGraph, format_cycle
from conveyor.pipeline.params import coerce_parameter
from conveyor.pipeline.references import (
    Reference,
    TemplateAnalysis,
    analyse_condition,
    analyse_template,
    iter_templates,
    join_path,
)
from conveyor.pipeline.spec import PipelineSpec, StepSpec
from conveyor.pipeline.templating import contains_template, is_template

Severity = Literal["error", "warning"]

_STEP_FIELDS = ("outputs", "status", "error")
_RUN_FIELDS = ("id", "pipeline")
_ROOTS = ("params", "steps", "run")
_LENIENT_NOTE = "; BudPipeline's semantics render it as empty instead of failing"
_LOOP_ROOTS = ("item", "index")


class ActionLookup(Protocol):
    """What validation needs of an action registry."""

    def get(self, action_type: str, /) -> ActionDefinition:
        """The definition of `action_type`; raises `UnknownActionError` when there is none."""

    def types(self) -> Iterable[str]:
        """Every registered action type."""


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, with the path of what it is about (``steps[1].depends_on[0]``)."""

    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class ValidationReport:
    """Every problem of one pipeline, errors apart from warnings."""

    errors: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the pipeline can run (warnings do not count)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise `PipelineValidationError` listing the errors, if there are any."""
        if self.errors:
            raise PipelineValidationError(self.errors)


def validate_pipeline(
    pipeline: PipelineSpec | Mapping[str, Any], registry: ActionLookup
) -> ValidationReport:
    """Every problem of `pipeline`, checked against the actions in `registry`.

    Args:
        pipeline: A spec, or a document (a mapping) not turned into one yet; a document that
            does not fit the spec's shape gets those problems reported and no further checks.
        registry: Where the actions the steps name are looked up.
    """
    if isinstance(pipeline, PipelineSpec):
        spec = pipeline
    else:
        # Imported here: loading imports this module for ValidationIssue.
        from conveyor.pipeline.loading import load_pipeline

        try:
            spec = load_pipeline(pipeline)
        except PipelineValidationError as exc:
            return _report([i for i in exc.issues if isinstance(i, ValidationIssue)])
    return _report(_Validator(spec, registry).run())


def _report(issues: Iterable[ValidationIssue]) -> ValidationReport:
    unique = list(dict.fromkeys(issues))
    return ValidationReport(
        errors=[i for i in unique if i.severity == "error"],
        warnings=[i for i in unique if i.severity == "warning"],
    )


@dataclass(frozen=True)
class _Scope:
    """What a template may read, by where it is."""

    upstream: Container[str] | None
    """The steps it may read; None for any (pipeline outputs)."""
    loop: bool = False
    """Whether `item` and `index` are defined (params of a for_each step)."""
    own_id: str | None = None


class _Validator:
    def __init__(self, spec: PipelineSpec, registry: ActionLookup) -> None:
        self.spec = spec
        self.registry = registry
        self.graph = StepGraph.of(spec)
        self.issues: list[ValidationIssue] = []
        self.parameters = {p.name for p in spec.parameters}
        self.used_parameters: set[str] = set()
        self.steps: dict[str, tuple[int, StepSpec]] = {}
        for index, step in enumerate(spec.steps):
            self.steps.setdefault(step.id, (index, step))
        self.actions: dict[str, ActionDefinition | None] = {}
        self.lenient = spec.dialect == "budpipeline"

    def run(self) -> list[ValidationIssue]:
        self._check_parameters()
        for index, step in enumerate(self.spec.steps):
            self._check_step(index, step)
        self._check_cycles()
        scope = _Scope(upstream=None)
        for path, text in iter_templates(self.spec.outputs, "outputs"):
            self._check_template(path, analyse_template(text), scope)
        self._check_unused_parameters()
        return self.issues

    # ------------------------------------------------------------------ helpers

    def _error(self, path: str, message: str) -> None:
        self.issues.append(ValidationIssue(path, message))

    def _warn(self, path: str, message: str) -> None:
        self.issues.append(ValidationIssue(path, message, "warning"))

    def _action(self, action_type: str) -> ActionDefinition | None:
        if action_type not in self.actions:
            try:
                self.actions[action_type] = self.registry.get(action_type)
            except UnknownActionError:
                self.actions[action_type] = None
        return self.actions[action_type]

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self) -> None:
        seen: set[str] = set()
        for index, parameter in enumerate(self.spec.parameters):
            where = f"parameters[{index}]"
            if parameter.name in seen:
                self._error(f"{where}.name", f"parameter {parameter.name!r} is declared twice")
            seen.add(parameter.name)
            if parameter.default is not None:
                _, problem = coerce_parameter(parameter, parameter.default)
                if problem is not None:
                    self._error(f"{where}.default", problem)

    def _check_unused_parameters(self) -> None:
        for index, parameter in enumerate(self.spec.parameters):
            if parameter.name not in self.used_parameters:
                self._warn(
                    f"parameters[{index}]",
                    f"parameter {parameter.name!r} is declared but no template uses it",
                )

    # ------------------------------------------------------------------ steps

    def _check_step(self, index: int, step: StepSpec) -> None:
        where = f"steps[{index}]"
        first, _ = self.steps[step.id]
        if first != index:
            self._error(f"{where}.id", f"duplicate step id {step.id!r} (also steps[{first}])")
        for position, dep in enumerate(step.depends_on):
            if dep not in self.steps:
                hint = _suggest(dep, self.steps)
                self._error(f"{where}.depends_on[{position}]", f"unknown step {dep!r}{hint}")
        definition = self._action(step.action)
        if definition is None:
            known = sorted(self.registry.types())
            hint = _suggest(step.action, known)
            self._error(
                f"{where}.action",
                f"unknown action {step.action!r}{hint} (known: {', '.join(known) or 'none'})",
            )
        else:
            self._check_params(where, step, definition)
            self._check_policies(where, step, definition)
        # From its own depends_on rather than the graph's node, so a step with a repeated id
        # is checked against what it declares.
        upstream = self.graph.ancestry(step.depends_on)
        template_params = _template_params(definition)
        loop_scope = _Scope(upstream, loop=step.for_each is not None, own_id=step.id)
        for name, value in step.params.items():
            for path, text in iter_templates(value, join_path(f"{where}.params", name)):
                analysis = analyse_template(text)
                if name in template_params:
                    # The action renders these itself, with a context of its own: only what
                    # would fail anywhere (syntax, the sandbox) is known here.
                    self._template_problems(path, analysis)
                    self._note_parameters(analysis.references)
                else:
                    self._check_template(path, analysis, loop_scope)
        self._check_condition_and_items(where, step, _Scope(upstream, own_id=step.id))
        self._check_targets(where, step)
        if step.max_parallel is not None and step.for_each is None:
            self._warn(f"{where}.max_parallel", "has no effect without for_each")

    def _check_params(self, where: str, step: StepSpec, definition: ActionDefinition) -> None:
        meta = definition.meta
        template_params = _template_params(definition)
        # Templated values are only known at run time; TEMPLATE params stay strings, so
        # those are checked like any literal.
        skip = frozenset(
            name
            for name, value in step.params.items()
            if contains_template(value) and name not in template_params
        )
        _, problems = validate_params(meta, step.params, skip=skip)
        declared = [p.name for p in meta.params]
        for problem in problems:
            message = problem.message
            if problem.name not in declared:
                hint = _suggest(problem.name, declared)
                message = (
                    f"unknown param of action {meta.type!r}{hint} "
                    f"(known: {', '.join(sorted(declared)) or 'none'})"
                )
            self._error(join_path(f"{where}.params", problem.name), message)

    def _check_policies(self, where: str, step: StepSpec, definition: ActionDefinition) -> None:
        meta = definition.meta
        if meta.execution_mode is ExecutionMode.EVENT_DRIVEN and not _has_timeout(step, meta):
            self._warn(
                f"{where}.timeout_seconds",
                f"action {meta.type!r} waits for an event and has no timeout: the step can "
                "wait forever",
            )
        if step.on_failure == "retry" and not (
            step.retry or self.spec.settings.retry or meta.retry_policy
        ):
            self._warn(
                f"{where}.on_failure",
                "retry without a retry policy (step retry, settings.retry or the action's): "
                "the default policy is used",
            )

    def _check_targets(self, where: str, step: StepSpec) -> None:
        """The steps a `conditional` routes to must exist and depend on it to be skipped."""
        branches = step.params.get("branches")
        if not isinstance(branches, list):
            return
        for position, branch in enumerate(branches):
            target = branch.get("target_step") if isinstance(branch, dict) else None
            if not isinstance(target, str) or is_template(target):
                continue
            path = f"{where}.params.branches[{position}].target_step"
            if target not in self.steps:
                self._warn(path, f"unknown step {target!r}{_suggest(target, self.steps)}")
            elif step.id not in self.steps[target][1].depends_on:
                self._warn(
                    path,
                    f"step {target!r} does not depend on {step.id!r}, so it runs whichever "
                    f"branch is chosen: add {step.id!r} to its depends_on",
                )

    def _check_condition_and_items(self, where: str, step: StepSpec, scope: _Scope) -> None:
        if isinstance(step.condition, str):
            if step.condition.strip():
                self._check_template(f"{where}.condition", analyse_condition(step.condition), scope)
            else:
                self._error(
                    f"{where}.condition",
                    "is empty (in a BudPipeline document, which says dialect: budpipeline, an "
                    "empty condition always runs)",
                )
        if isinstance(step.for_each, str):
            if is_template(step.for_each):
                self._check_template(f"{where}.for_each", analyse_template(step.for_each), scope)
            else:
                self._error(
                    f"{where}.for_each", "must be a list or a template giving one, got a string"
                )
        elif step.for_each is not None:
            for path, text in iter_templates(step.for_each, f"{where}.for_each"):
                self._check_template(path, analyse_template(text), scope)

    def _check_cycles(self) -> None:
        for cycle in self.graph.find_cycles():
            index, _ = self.steps[cycle[0]]
            self._error(
                f"steps[{index}].depends_on",
                f"dependency cycle: {format_cycle(cycle)} (each step depends on the next)",
            )

    # ------------------------------------------------------------------ templates

    def _template_problems(self, path: str, analysis: TemplateAnalysis) -> None:
        for problem in analysis.problems:
            self._error(path, str(problem))

    def _check_template(self, path: str, analysis: TemplateAnalysis, scope: _Scope) -> None:
        self._template_problems(path, analysis)
        self._note_parameters(analysis.references)
        multiline = "\n" in analysis.text.strip()
        for reference in analysis.references:
            message = self._reference_problem(reference, scope)
            if message is not None:
                at = f" (at line {reference.line})" if multiline else ""
                if self.lenient:
                    # BudPipeline renders such a reference as empty rather than failing, so
                    # the pipeline runs; it is still most likely a mistake.
                    self._warn(path, f"{reference}: {message}{at}{_LENIENT_NOTE}")
                else:
                    self._error(path, f"{reference}: {message}{at}")

    def _note_parameters(self, references: Iterable[Reference]) -> None:
        for reference in references:
            if reference.root != "params":
                continue
            if reference.parts and isinstance(reference.parts[0], str):
                self.used_parameters.add(reference.parts[0])
            else:
                # `params[name]` or `params` whole may read any of them.
                self.used_parameters.update(self.parameters)

    def _reference_problem(self, reference: Reference, scope: _Scope) -> str | None:
        root, parts = reference.root, reference.parts
        if root == "steps":
            return self._step_reference_problem(parts, scope)
        if root == "params":
            if parts and parts[0] not in self.parameters:
                hint = _suggest(str(parts[0]), self.parameters)
                declared = ", ".join(sorted(self.parameters)) or "none"
                return f"not a declared pipeline parameter{hint} (declared: {declared})"
            return None
        if root == "run":
            if parts and parts[0] not in _RUN_FIELDS:
                return f"run has {' and '.join(_RUN_FIELDS)}, not {parts[0]!r}"
            return None
        if root in _LOOP_ROOTS:
            if not scope.loop:
                return f"{root!r} is only defined in the params of a step with for_each"
            return None
        allowed = [*_ROOTS, *(_LOOP_ROOTS if scope.loop else ())]
        hint = _suggest(root, allowed)
        return f"undefined name {root!r}{hint} (templates can read {', '.join(allowed)})"

    def _step_reference_problem(self, parts: tuple[str | int, ...], scope: _Scope) -> str | None:
        if not parts:
            return None
        step_id = parts[0]
        if not isinstance(step_id, str) or step_id not in self.steps:
            return f"unknown step {step_id!r}{_suggest(str(step_id), self.steps)}"
        if step_id == scope.own_id:
            return "a step cannot read its own outputs"
        if scope.upstream is not None and step_id not in scope.upstream:
            return (
                f"step {step_id!r} is not upstream of this step: add {step_id!r} to "
                "depends_on so it has finished before this step renders"
            )
        if len(parts) < 2:
            return None
        if parts[1] not in _STEP_FIELDS:
            fields = ", ".join(_STEP_FIELDS)
            return f"a step has {fields}; not {parts[1]!r}"
        if parts[1] != "outputs" or len(parts) < 3:
            return None
        _, step = self.steps[step_id]
        name = parts[2]
        if step.for_each is not None:
            if not isinstance(name, int):
                return (
                    f"step {step_id!r} runs for_each, so its outputs are a list (one entry "
                    f"per item): read steps.{step_id}.outputs[0].{name} or use a filter"
                )
            if len(parts) < 4:
                return None
            name = parts[3]
        definition = self._action(step.action)
        if definition is None or definition.meta.dynamic_outputs or not isinstance(name, str):
            return None
        declared = definition.meta.output_names
        if name in declared:
            return None
        hint = _suggest(name, declared)
        return (
            f"action {definition.type!r} does not declare output {name!r}{hint} "
            f"(outputs: {', '.join(sorted(declared)) or 'none'})"
        )


def _has_timeout(step: StepSpec, meta: ActionMeta) -> bool:
    if step.timeout_seconds or meta.timeout_seconds:
        return True
    # An action that bounds its own wait takes the bound as a param (wait_for_event does).
    own = meta.param("timeout_seconds")
    return own is not None and (
        own.default is not None or step.params.get("timeout_seconds") is not None
    )


def _template_params(definition: ActionDefinition | None) -> frozenset[str]:
    if definition is None:
        return frozenset()
    return frozenset(p.name for p in definition.meta.params if p.type is ParamType.TEMPLATE)


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
