"""Coerce param values to their declared types and check them against their rules.

Values arrive as YAML literals, JSON, rendered templates or `key=value` strings from the CLI, so
coercion is lenient about form ("5" is a number, "true" a boolean) and strict about meaning.
Every problem is reported with the param's name; nothing stops at the first one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from conveyor.actions._meta import ActionMeta, ParamDefinition, ParamType
from conveyor.errors import ParamProblem, ParamValidationError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_value(definition: ParamDefinition, value: Any) -> tuple[Any, str | None]:
    """Coerce `value` to the param's type and check its rules.

    Returns:
        The coerced value and None, or the value unchanged and a message naming the problem.
    """
    try:
        coerced = _coerce(definition.type, value)
    except (TypeError, ValueError) as exc:
        return value, str(exc)
    # The rules are checked on the coerced value as it is: coercing it a second time would
    # parse a JSON param's string value ('"abc"' -> "abc") again and reject it.
    return coerced, _check_rules(definition, coerced)


def check_value(definition: ParamDefinition, value: Any) -> str | None:
    """The problem with an already typed `value`, or None when it satisfies the definition."""
    try:
        value = _coerce(definition.type, value)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return _check_rules(definition, value)


def _check_rules(definition: ParamDefinition, value: Any) -> str | None:
    kind = definition.type
    if kind in (ParamType.SELECT, ParamType.MULTISELECT) and definition.options:
        allowed = [option.value for option in definition.options]
        chosen = value if kind is ParamType.MULTISELECT else [value]
        for item in chosen:
            if item not in allowed:
                return f"{item!r} is not one of the options {allowed!r}"
    rules = definition.validation
    if rules is None:
        return None
    if kind in (ParamType.NUMBER, ParamType.INTEGER):
        return _check_bounds(value, rules.min, rules.max)
    if kind is ParamType.RANGE:
        return _check_bounds(value[0], rules.min, rules.max) or _check_bounds(
            value[1], rules.min, rules.max
        )
    if isinstance(value, str | list):
        size = len(value)
        unit = "characters" if isinstance(value, str) else "items"
        if rules.min_length is not None and size < rules.min_length:
            return f"must have at least {rules.min_length} {unit}, has {size}"
        if rules.max_length is not None and size > rules.max_length:
            return f"must have at most {rules.max_length} {unit}, has {size}"
    if (
        rules.pattern is not None
        and isinstance(value, str)
        and not re.fullmatch(rules.pattern, value)
    ):
        return rules.pattern_message or f"must match the pattern {rules.pattern!r}"
    return None


def validate_params(
    meta: ActionMeta, values: Mapping[str, Any], *, skip: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Coerce and check every param of `values` against `meta`, filling in defaults.

    Args:
        meta: The action whose params these are.
        values: The given values by name.
        skip: Names whose values are not known yet (templates): present, not checked.

    Returns:
        The coerced values and every problem found, each naming its param.
    """
    problems: list[ParamProblem] = []
    clean: dict[str, Any] = {}
    declared = {definition.name for definition in meta.params}
    for name in values:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(ParamProblem(name, f"unknown param (known: {known})"))
    for definition in meta.params:
        name = definition.name
        if name in values and values[name] is not None:
            if name in skip:
                clean[name] = values[name]
                continue
            coerced, problem = coerce_value(definition, values[name])
            if problem is not None:
                problems.append(ParamProblem(name, problem))
            clean[name] = coerced
        elif definition.default is not None:
            # Declared defaults were checked against the type but may be written loosely
            # ("5" for a number): the executor gets them coerced like any given value.
            clean[name], _ = coerce_value(definition, definition.default)
        elif definition.required:
            problems.append(ParamProblem(name, "is required"))
    return clean, problems


def validated_params(meta: ActionMeta, values: Mapping[str, Any]) -> dict[str, Any]:
    """Like `validate_params`, raising `ParamValidationError` when anything is wrong."""
    clean, problems = validate_params(meta, values)
    if problems:
        raise ParamValidationError(problems, meta.type)
    return clean


def _check_bounds(value: float, low: float | None, high: float | None) -> str | None:
    if low is not None and value < low:
        return f"must be >= {_fmt(low)}, got {_fmt(value)}"
    if high is not None and value > high:
        return f"must be <= {_fmt(high)}, got {_fmt(value)}"
    return None


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _coerce(kind: ParamType, value: Any) -> Any:
    if kind in (ParamType.STRING, ParamType.TEMPLATE) or kind.is_reference:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(f"must be a string, got {_type_name(value)}")
        text = str(value)
        if kind.is_reference and not text.strip():
            raise ValueError("must be a non-empty reference id")
        return text
    if kind is ParamType.NUMBER:
        return _number(value)
    if kind is ParamType.INTEGER:
        return _integer(value)
    if kind is ParamType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise TypeError(f"must be a boolean, got {_type_name(value)} {value!r}")
    if kind is ParamType.SELECT:
        if isinstance(value, list | dict):
            raise TypeError(f"must be a single option, got {_type_name(value)}")
        return value
    if kind is ParamType.MULTISELECT:
        if isinstance(value, str):
            value = _json_or(value, [part.strip() for part in value.split(",") if part.strip()])
        if not isinstance(value, list):
            raise TypeError(f"must be a list of options, got {_type_name(value)}")
        return value
    if kind is ParamType.JSON:
        if isinstance(value, str):
            # Text holding a JSON object or array (from a CLI or a form) is decoded; any other
            # text is a JSON string in its own right and stays as it is.
            decoded = _json_or(value, value)
            return decoded if isinstance(decoded, dict | list) else value
        return value
    if kind is ParamType.RANGE:
        if isinstance(value, str):
            value = _json_or(value, value.split(","))
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise TypeError("must be a pair [low, high]")
        low, high = _number(value[0]), _number(value[1])
        if low > high:
            raise ValueError(f"low end {low} is greater than high end {high}")
        return [low, high]
    if kind is ParamType.BRANCHES:
        if isinstance(value, str):
            value = _json_or(value, value)
        # An empty list is allowed: BudPipeline's conditional then reads its older form.
        if not isinstance(value, list):
            raise TypeError("must be a list of branches {name, condition}")
        names: set[str] = set()
        for index, branch in enumerate(value):
            # `id` is BudPipeline's name for it ({id, label, condition, target_step}).
            name = branch.get("name", branch.get("id")) if isinstance(branch, dict) else None
            if not isinstance(name, str):
                raise TypeError(f"branch {index} must be an object with a string 'name' (or 'id')")
            if "condition" in branch and not isinstance(branch["condition"], str | bool):
                raise TypeError(f"branch {index} ('{name}'): condition must be a string")
            if name in names:
                raise ValueError(f"branch name {name!r} is used twice")
            names.add(name)
        return value
    raise TypeError(f"unsupported param type {kind!r}")  # pragma: no cover - enum is closed


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        # 3.0 is the number 3 as JSON and YAML may write it; 2.5 is no count of anything.
        if not number.is_integer():
            raise ValueError(f"must be an integer, got {value!r}")
        return int(number)
    return number


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError(f"must be a number, got boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise TypeError(f"must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number, got {value!r}")
        return number
    raise TypeError(f"must be a number, got {_type_name(value)}")


def _json_or(text: str, fallback: Any) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return fallback


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "list",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
