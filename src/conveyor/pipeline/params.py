"""Pipeline parameters: turn the values a run is started with into the declared types.

Values come from JSON bodies, Python callers and the CLI's ``-p key=value``, where everything
is a string, so coercion is lenient about form ("5" is a number, "true" a boolean, JSON text
an object) and strict about meaning ("5.5" is not an integer). Every problem is reported at
once, each naming its parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from conveyor.errors import ParamProblem, ParamValidationError
from conveyor.inputs import unstorable
from conveyor.pipeline.budpipeline import BUDPIPELINE
from conveyor.pipeline.spec import ParameterSpec, PipelineParamType, PipelineSpec

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def resolve_pipeline_params(spec: PipelineSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a run of `spec`: `given` coerced, defaults filled in.

    Every declared parameter is in the result; one that is neither given nor defaulted is
    None, so a template can test it (``params.x is none``) instead of failing on it. In a
    BudPipeline pipeline it is left out instead, as BudPipeline does, so ``default(...)`` and
    ``is defined`` see it as undefined.

    Args:
        spec: The pipeline whose parameters these are.
        given: Values by name, typed or as strings.

    Returns:
        The values by name, in declaration order.

    Raises:
        ParamValidationError: a parameter is unknown, missing or of the wrong type; the
            error lists every one.
    """
    problems: list[ParamProblem] = []
    declared = {parameter.name: parameter for parameter in spec.parameters}
    for name in given:
        if name not in declared:
            problems.append(ParamProblem(name, _unknown(name, declared)))
    resolved: dict[str, Any] = {}
    for parameter in spec.parameters:
        value = given.get(parameter.name)
        if value is None:
            if parameter.default is not None:
                value = parameter.default
            elif parameter.required:
                problems.append(ParamProblem(parameter.name, "is required"))
                continue
            else:
                if spec.dialect != BUDPIPELINE:
                    resolved[parameter.name] = None
                continue
        coerced, problem = coerce_parameter(parameter, value)
        if problem is None:
            unfit = unstorable(coerced)
            if unfit:
                where, message = unfit[0]
                problem = f"{where}: {message}" if where else message
        if problem is not None:
            problems.append(ParamProblem(parameter.name, problem))
        resolved[parameter.name] = coerced
    if problems:
        raise ParamValidationError(problems)
    return resolved


def coerce_parameter(parameter: ParameterSpec, value: Any) -> tuple[Any, str | None]:
    """Coerce `value` to the parameter's type.

    Returns:
        The coerced value and None, or `value` unchanged and a message naming the problem.
    """
    try:
        return _coerce(parameter.type, value), None
    except (TypeError, ValueError) as exc:
        return value, str(exc)


def _coerce(kind: PipelineParamType, value: Any) -> Any:
    if kind is PipelineParamType.ANY:
        return value
    if kind is PipelineParamType.STRING:
        # A YAML author writing `version: 1.2` means the text; a boolean never is.
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise TypeError(f"must be a string, got {_type_name(value)}")
    if kind is PipelineParamType.NUMBER:
        return _number(value)
    if kind is PipelineParamType.INTEGER:
        number = _number(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError(f"must be an integer, got {value!r}")
            return int(number)
        return number
    if kind is PipelineParamType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise TypeError(f"must be a boolean (true or false), got {value!r}")
    if kind is PipelineParamType.OBJECT:
        parsed = _json(value, "an object") if isinstance(value, str) else value
        if not isinstance(parsed, dict):
            raise TypeError(f"must be an object, got {_type_name(parsed)}")
        return parsed
    if kind is PipelineParamType.ARRAY:
        parsed = _json(value, "an array") if isinstance(value, str) else value
        if isinstance(parsed, tuple):
            parsed = list(parsed)
        if not isinstance(parsed, list):
            raise TypeError(f"must be an array, got {_type_name(parsed)}")
        return parsed
    raise TypeError(f"unsupported parameter type {kind!r}")  # pragma: no cover - closed enum


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError(f"must be a number, got boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise TypeError(f"must be a number, got {value!r}") from None
    else:
        raise TypeError(f"must be a number, got {_type_name(value)}")
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {value!r}")
    return number


def _json(text: str, expected: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"must be {expected} written as JSON: {exc.msg} at position {exc.pos}"
        ) from exc


def _unknown(name: str, declared: Mapping[str, ParameterSpec]) -> str:
    if not declared:
        return "unknown parameter (the pipeline declares none)"
    close = get_close_matches(name, list(declared), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown parameter{hint} (declared: {', '.join(declared)})"


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        tuple: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
