"""BudPipeline's DAG format: which documents are written in it, and reading them as specs.

A document says it is BudPipeline's with ``dialect: budpipeline`` at its top. Without that
field, it is read as BudPipeline's when it uses something only BudPipeline's format has
(`is_budpipeline`); otherwise it is Conveyor's own, whose stricter rules stay the default.

Reading one (`from_budpipeline`) gives the document Conveyor's spec takes, with BudPipeline's
meaning kept: its retry names and defaults, its settings defaults, ``on_failure`` in any case,
free parameter types, parameters required unless they say otherwise, an empty condition that
always runs, a literal condition read as BudPipeline reads it, and every step running after a
skipped upstream step (its if/else-and-merge pattern). Fields BudPipeline ignores are dropped.
The spec carries ``dialect: budpipeline``, which the engine reads for what the document itself
cannot say: a parameter that was not given is absent (so ``default()`` and ``is defined``
work) and templates read an undefined name as empty instead of failing.

Reading is idempotent: a stored spec (Conveyor's field names, ``dialect: budpipeline``) reads
back to the same spec, because Conveyor's names win over BudPipeline's when both are present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.pipeline.templating import is_template

CONVEYOR = "conveyor"
BUDPIPELINE = "budpipeline"
DIALECTS = (CONVEYOR, BUDPIPELINE)
"""The values of a document's ``dialect`` field."""

# BudPipeline's defaults where they differ from Conveyor's (its engine/schemas.py).
SETTINGS_DEFAULTS = {"timeout_seconds": 7200, "max_parallel_steps": 10, "fail_fast": True}
RETRY_DEFAULTS = {
    "max_attempts": 3,
    "backoff_seconds": 60,
    "backoff_multiplier": 2.0,
    "max_backoff_seconds": 3600,
}
# BudPipeline's retry names and the Conveyor names they become.
RETRY_NAMES = {
    "max_attempts": "max_attempts",
    "backoff_seconds": "initial_interval_seconds",
    "backoff_multiplier": "backoff_coefficient",
    "max_backoff_seconds": "max_interval_seconds",
}
_CONVEYOR_PARAM_TYPES = frozenset(
    {"string", "number", "integer", "boolean", "object", "array", "any"}
)
# The types BudPipeline documents that Conveyor has not: a document using one is BudPipeline's.
# Any other unknown type is more likely a typo in a Conveyor document, which its validation
# names, than a sign of the dialect.
_BUDPIPELINE_PARAM_TYPES = frozenset(
    {
        "float",
        "model_ref",
        "cluster_ref",
        "endpoint_ref",
        "project_ref",
        "credential_ref",
        "provider_ref",
        "cloud_model_ref",
    }
)
# BudPipeline's parameter types are free strings; these read as a Conveyor type, any other as
# "any" (no coercion), and references (model_ref, cluster_ref, ...) as the id string they hold.
_PARAM_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
_TOP_FIELDS = ("name", "version", "description", "parameters", "settings", "steps", "outputs")
_PARAMETER_FIELDS = ("name", "type", "required", "default", "description")
_SETTINGS_FIELDS = ("timeout_seconds", "max_parallel_steps", "fail_fast", "retry")
_STEP_FIELDS = (
    "id",
    "name",
    "action",
    "params",
    "depends_on",
    "outputs",
    "condition",
    "on_failure",
    "timeout_seconds",
    "retry",
    # Conveyor's own step fields, kept so a stored spec reads back unchanged.
    "queue",
    "for_each",
    "max_parallel",
)
_FALSE_LITERALS = frozenset({"false", "0", "no", ""})


def dialect_of(document: Mapping[str, Any]) -> str:
    """The dialect `document` is written in: its ``dialect`` field, else detected.

    A ``dialect`` that is not a string of `DIALECTS` is returned as it is, for the spec's own
    validation to report with its path.
    """
    declared = document.get("dialect")
    if declared is not None:
        return declared if isinstance(declared, str) else repr(declared)
    return BUDPIPELINE if is_budpipeline(document) else CONVEYOR


def is_budpipeline(document: Mapping[str, Any]) -> bool:
    """Whether `document` uses something only BudPipeline's format has.

    Those are: ``settings.retry_policy``; a parameter type of BudPipeline's that Conveyor does
    not have (``float``, ``model_ref``, ``cluster_ref``, ...); a step's ``outputs`` list; a
    step retry with ``backoff_seconds``, ``backoff_multiplier`` or ``max_backoff_seconds``; an
    ``on_failure`` not in lowercase; a ``conditional`` branch with an ``id`` or a
    ``target_step``. A document with none of them reads as Conveyor's unless it declares
    ``dialect: budpipeline``.
    """
    settings = document.get("settings")
    if isinstance(settings, Mapping) and "retry_policy" in settings:
        return True
    for parameter in _mappings(document.get("parameters")):
        if parameter.get("type") in _BUDPIPELINE_PARAM_TYPES:
            return True
    return any(_budpipeline_step(step) for step in _mappings(document.get("steps")))


def _budpipeline_step(step: Mapping[str, Any]) -> bool:
    if isinstance(step.get("outputs"), list):
        return True
    retry = step.get("retry")
    if isinstance(retry, Mapping) and any(
        name in retry for name in ("backoff_seconds", "max_backoff_seconds", "backoff_multiplier")
    ):
        return True
    on_failure = step.get("on_failure")
    if isinstance(on_failure, str) and on_failure != on_failure.lower():
        return True
    params = step.get("params")
    if step.get("action") == "conditional" and isinstance(params, Mapping):
        for branch in _mappings(params.get("branches")):
            if "target_step" in branch or ("id" in branch and "name" not in branch):
                return True
    return False


def from_budpipeline(document: Mapping[str, Any]) -> dict[str, Any]:
    """The Conveyor document of a BudPipeline `document` (see the module docstring).

    Values of the wrong shape are passed on unchanged, for the spec's validation to report
    with their paths.
    """
    out: dict[str, Any] = {key: document[key] for key in _TOP_FIELDS if key in document}
    out["dialect"] = BUDPIPELINE
    if isinstance(document.get("parameters"), list):
        out["parameters"] = [_parameter(p) for p in document["parameters"]]
    out["settings"] = _settings(document.get("settings", {}))
    if isinstance(document.get("steps"), list):
        out["steps"] = [_step(s) for s in document["steps"]]
    return out


def _parameter(parameter: Any) -> Any:
    if not isinstance(parameter, Mapping):
        return parameter
    out = {key: parameter[key] for key in _PARAMETER_FIELDS if key in parameter}
    kind = out.get("type", "string")
    if isinstance(kind, str) and kind not in _CONVEYOR_PARAM_TYPES:
        mapped = _PARAM_TYPES.get(kind.lower())
        out["type"] = mapped or ("string" if kind.lower().endswith("_ref") else "any")
    # BudPipeline's parameters are required unless they say otherwise; a default fills one in.
    out.setdefault("required", True)
    return out


def _settings(settings: Any) -> Any:
    if not isinstance(settings, Mapping):
        return settings
    out = {key: settings[key] for key in _SETTINGS_FIELDS if key in settings}
    if "retry" not in out and settings.get("retry_policy") is not None:
        out["retry"] = settings["retry_policy"]
    if "retry" in out:
        out["retry"] = _retry(out["retry"])
    for key, value in SETTINGS_DEFAULTS.items():
        out.setdefault(key, value)
    return out


def _retry(retry: Any) -> Any:
    if not isinstance(retry, Mapping):
        return retry
    out: dict[str, Any] = {}
    for bud_name, name in RETRY_NAMES.items():
        if name in retry:
            out[name] = retry[name]
        elif bud_name in retry:
            out[name] = retry[bud_name]
        else:
            out[name] = RETRY_DEFAULTS[bud_name]
    return out


def _step(step: Any) -> Any:
    if not isinstance(step, Mapping):
        return step
    out = {key: step[key] for key in _STEP_FIELDS if key in step}
    if isinstance(out.get("depends_on"), str):
        out["depends_on"] = [out["depends_on"]]
    if isinstance(out.get("on_failure"), str):
        out["on_failure"] = out["on_failure"].lower()
    if "retry" in out and out["retry"] is not None:
        out["retry"] = _retry(out["retry"])
    condition = out.get("condition")
    if isinstance(condition, str):
        text = condition.strip()
        if not text:
            del out["condition"]  # BudPipeline runs a step whose condition is empty.
        elif not is_template(text):
            # BudPipeline reads a condition without {{ }} as a literal, not an expression.
            out["condition"] = text.lower() not in _FALSE_LITERALS
    # Dependents of a skipped step still run in BudPipeline: its if/else branches each have
    # a condition, and the step that merges them depends on both.
    out["allow_skipped_upstream"] = True
    return out


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
