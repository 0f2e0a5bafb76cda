"""A pipeline compiled for execution: the graph, effective policies and compiled templates.

Compiled once per pipeline version and shared by all its runs, because the engine renders
params on its hot path. Built from the spec plus the metadata of the actions it uses, so it
needs no registry and can be rebuilt anywhere the same inputs are available (a Temporal
workflow, for instance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.actions import ActionMeta, ParamType, RetryPolicy
from conveyor.pipeline.graph import StepGraph
from conveyor.pipeline.spec import PipelineSpec, StepSpec
from conveyor.pipeline.templating import Renderer, compile_value, is_template

NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_MAX_FOR_EACH_ITEMS = 10_000
DEFAULT_RETRY = RetryPolicy()


@dataclass
class StepPlan:
    """One step, ready to run."""

    spec: StepSpec
    meta: ActionMeta
    deps: tuple[str, ...]
    dependents: list[str] = field(default_factory=list)
    queue: str = "default"
    timeout_seconds: float | None = None
    retry: RetryPolicy = NO_RETRY
    params: Renderer | None = None
    raw_params: dict[str, Any] = field(default_factory=dict)
    """Params passed through unrendered (TEMPLATE-type: the action renders them)."""
    condition: Renderer | None = None
    for_each: Renderer | None = None

    @property
    def id(self) -> str:
        """The step's id."""
        return self.spec.id


@dataclass
class Plan:
    """A pipeline ready to run."""

    spec: PipelineSpec
    steps: dict[str, StepPlan]
    roots: list[str]
    outputs: Renderer
    rank: dict[str, int] = field(default_factory=dict)
    """Each step's position in a topological order (upstream steps first)."""
    max_for_each_items: int = DEFAULT_MAX_FOR_EACH_ITEMS
    """The most items a step's `for_each` may run over (`Settings.max_for_each_items`)."""

    @classmethod
    def compile(
        cls,
        spec: PipelineSpec,
        metas: Mapping[str, ActionMeta],
        *,
        max_for_each_items: int = DEFAULT_MAX_FOR_EACH_ITEMS,
    ) -> Plan:
        """Compile `spec`; `metas` maps each action type it uses to its metadata.

        Raises:
            KeyError: an action type missing from `metas` (validate the pipeline first).
            TemplateError: a template that does not compile.
        """
        steps: dict[str, StepPlan] = {}
        lenient = spec.dialect == "budpipeline"
        for step in spec.steps:
            meta = metas[step.action]
            template_params = {p.name for p in meta.params if p.type is ParamType.TEMPLATE}
            rendered = {k: v for k, v in step.params.items() if k not in template_params}
            steps[step.id] = StepPlan(
                spec=step,
                meta=meta,
                deps=tuple(step.depends_on),
                queue=step.queue or meta.queue,
                timeout_seconds=step.timeout_seconds or meta.timeout_seconds,
                retry=_retry_policy(spec, step, meta),
                params=compile_value(rendered, lenient=lenient),
                raw_params={k: v for k, v in step.params.items() if k in template_params},
                condition=_condition(step.condition, lenient=lenient),
                for_each=(
                    compile_value(step.for_each, lenient=lenient)
                    if step.for_each is not None
                    else None
                ),
            )
        for plan in steps.values():
            for dep in plan.deps:
                steps[dep].dependents.append(plan.id)
        roots = [plan.id for plan in steps.values() if not plan.deps]
        order = StepGraph.of(spec).topological_order()
        return cls(
            spec=spec,
            steps=steps,
            roots=roots,
            outputs=compile_value(spec.outputs, lenient=lenient),
            rank={step_id: position for position, step_id in enumerate(order)},
            max_for_each_items=max_for_each_items,
        )


def _retry_policy(spec: PipelineSpec, step: StepSpec, meta: ActionMeta) -> RetryPolicy:
    explicit = step.retry or spec.settings.retry or meta.retry_policy
    if explicit is not None:
        return explicit
    return DEFAULT_RETRY if step.on_failure == "retry" else NO_RETRY


def _condition(condition: str | bool | None, *, lenient: bool) -> Renderer | None:
    if condition is None:
        return None
    if isinstance(condition, str) and not is_template(condition):
        # A bare expression such as `params.deploy` reads as the template of it.
        return compile_value("{{ " + condition + " }}", lenient=lenient)
    return compile_value(condition, lenient=lenient)
