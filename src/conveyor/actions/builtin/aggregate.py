"""``aggregate``: reduce a list to one value.

Operations work on the items themselves, or on the value at `field` (a dotted path) of each:

- ``count``: how many items there are;
- ``sum``, ``avg``, ``min``, ``max``: of numbers (``avg``, ``min`` and ``max`` of no items are
  null);
- ``concat``: lists spliced together, or strings joined with `separator`;
- ``merge``: objects merged into one, later keys winning;
- ``unique``: the distinct values, in first-seen order;
- ``group_by``: an object of each distinct `field` value to the items that have it;
- ``list`` (the default), ``join`` (as text, with `separator`, ", " unless set), ``first``,
  ``last``, ``average`` (``avg``) and ``flatten`` (lists spliced in, one level), with `inputs`
  as another name for `items`: BudPipeline's operations and param.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    SelectOption,
    ShowWhen,
    register_action,
)
from conveyor.actions.builtin._paths import MISSING, describe_type, get_path
from conveyor.actions.builtin._value_ops import unique

DEFAULT_OPERATION = "list"
JOIN_SEPARATOR = ", "


class AggregateFailed(Exception):
    """The items do not fit the operation; the message names the first that does not."""


def _numbers(values: list[Any], what: str, operation: str) -> list[int | float]:
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AggregateFailed(
                f"operation {operation!r}: {what} {index} is {describe_type(value)} "
                f"{_short(value)}, not a number"
            )
    return values


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:60] + "..."


def _sum(values: list[Any], what: str, _params: dict[str, Any]) -> Any:
    return sum(_numbers(values, what, "sum"))


def _avg(values: list[Any], what: str, _params: dict[str, Any]) -> Any:
    numbers = _numbers(values, what, "avg")
    return sum(numbers) / len(numbers) if numbers else None


def _min(values: list[Any], what: str, _params: dict[str, Any]) -> Any:
    return min(_numbers(values, what, "min"), default=None)


def _max(values: list[Any], what: str, _params: dict[str, Any]) -> Any:
    return max(_numbers(values, what, "max"), default=None)


def _count(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    return len(values)


def _concat(values: list[Any], what: str, params: dict[str, Any]) -> Any:
    if all(isinstance(value, str) for value in values):
        return str(params.get("separator") or "").join(values)
    joined: list[Any] = []
    for index, value in enumerate(values):
        if not isinstance(value, list):
            raise AggregateFailed(
                f"operation 'concat': {what} {index} is {describe_type(value)}; concat needs "
                "all lists or all strings"
            )
        joined.extend(value)
    return joined


def _merge(values: list[Any], what: str, _params: dict[str, Any]) -> Any:
    merged: dict[str, Any] = {}
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise AggregateFailed(
                f"operation 'merge': {what} {index} is {describe_type(value)}, not an object"
            )
        merged.update(value)
    return merged


def _unique(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    return unique(values)


def _list(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    return list(values)


def _join(values: list[Any], _what: str, params: dict[str, Any]) -> Any:
    separator = params.get("separator")
    return (JOIN_SEPARATOR if separator is None else str(separator)).join(
        v if isinstance(v, str) else json.dumps(v) for v in values
    )


def _first(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    return values[0] if values else None


def _last(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    return values[-1] if values else None


def _flatten(values: list[Any], _what: str, _params: dict[str, Any]) -> Any:
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


OPERATIONS = {
    "count": "Count",
    "sum": "Sum",
    "avg": "Average",
    "min": "Minimum",
    "max": "Maximum",
    "concat": "Concatenate",
    "merge": "Merge objects",
    "unique": "Distinct values",
    "group_by": "Group by a field",
    "list": "Collect into a list",
    "join": "Join as text",
    "first": "First",
    "last": "Last",
    "average": "Average (same as avg)",
    "flatten": "Flatten lists one level",
}
"""Each operation and its label in forms."""

# Reducers of the values (the items, or their fields); group_by needs the whole items instead.
_REDUCERS: dict[str, Callable[[list[Any], str, dict[str, Any]], Any]] = {
    "count": _count,
    "sum": _sum,
    "avg": _avg,
    "min": _min,
    "max": _max,
    "concat": _concat,
    "merge": _merge,
    "unique": _unique,
    "list": _list,
    "join": _join,
    "first": _first,
    "last": _last,
    "average": _avg,
    "flatten": _flatten,
}


def _group_by(items: list[Any], path: str | None) -> dict[str, list[Any]]:
    if path is None:
        raise AggregateFailed(
            "operation 'group_by' needs field: the key or dotted path to group by"
        )
    groups: dict[str, list[Any]] = {}
    for index, item in enumerate(items):
        key = get_path(item, path)
        if key is MISSING:
            raise AggregateFailed(f"operation 'group_by': item {index} has no field {path!r}")
        # Object keys are strings in JSON; other values are grouped under their JSON text.
        name = key if isinstance(key, str) else json.dumps(key, sort_keys=True)
        groups.setdefault(name, []).append(item)
    return groups


def _values(items: list[Any], path: str | None, operation: str) -> tuple[list[Any], str]:
    if path is None:
        return items, "item"
    values = []
    for index, item in enumerate(items):
        value = get_path(item, path)
        if value is MISSING:
            raise AggregateFailed(f"operation {operation!r}: item {index} has no field {path!r}")
        values.append(value)
    return values, f"the {path!r} of item"


class AggregateExecutor(BaseActionExecutor):
    """Reduces `items` with one operation."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Apply the operation; a failed result names the item that does not fit."""
        params = context.params
        items = params.get("items", params.get("inputs"))
        operation = params.get("operation") or DEFAULT_OPERATION
        if not isinstance(items, list):
            return ActionResult(
                success=False,
                error=f"items (or inputs) must be a JSON list, got {describe_type(items)}",
            )
        if operation not in OPERATIONS:
            return ActionResult(
                success=False,
                error=f"unknown operation {operation!r} (one of: {', '.join(OPERATIONS)})",
            )
        field = params.get("field") or None
        path = str(field) if field is not None else None
        try:
            if operation == "group_by":
                result: Any = _group_by(items, path)
            else:
                values, what = _values(items, path, operation)
                result = _REDUCERS[operation](values, what, params)
        except AggregateFailed as exc:
            return ActionResult(
                success=False,
                error=str(exc),
                outputs={"count": len(items), "operation": operation},
            )
        return ActionResult(
            success=True,
            outputs={"result": result, "count": len(items), "operation": operation},
        )


META = ActionMeta(
    type="aggregate",
    version="1.0.0",
    name="Aggregate",
    description="Reduces a list: count, sum, avg (average), min, max, concat, join, merge, "
    "unique, group_by, list, first, last or flatten, of the items or of one field of each.",
    category="Data",
    icon="∑",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=60,
    params=[
        ParamDefinition(
            name="items",
            label="Items",
            type=ParamType.JSON,
            description="The list to reduce, usually an earlier step's output.",
            placeholder="{{ steps.fetch.outputs.body.results }}",
        ),
        ParamDefinition(
            name="inputs",
            label="Inputs",
            type=ParamType.JSON,
            description="Another name for items (BudPipeline's); items wins when both are set.",
        ),
        ParamDefinition(
            name="operation",
            label="Operation",
            type=ParamType.SELECT,
            default=DEFAULT_OPERATION,
            description="How to reduce the items.",
            options=[SelectOption(label=label, value=name) for name, label in OPERATIONS.items()],
        ),
        ParamDefinition(
            name="field",
            label="Field",
            type=ParamType.STRING,
            description="Reduce this key (or dotted path) of each item instead of the items; "
            "required for group_by.",
            placeholder="price.amount",
        ),
        ParamDefinition(
            name="separator",
            label="Separator",
            type=ParamType.STRING,
            description='For concat of strings (default none) and join (default ", "): '
            "what goes between them.",
            show_when=ShowWhen.model_validate({"param": "operation", "in": ["concat", "join"]}),
        ),
    ],
    outputs=[
        OutputDefinition(
            name="result",
            type="any",
            description="The reduced value: a number, a list, an object, or null for the "
            "avg, min or max of no items.",
        ),
        OutputDefinition(name="count", type="number", description="How many items there were."),
        OutputDefinition(name="operation", type="string", description="The operation applied."),
    ],
)


@register_action(META)
class AggregateAction:
    """The ``aggregate`` action."""

    meta = META
    executor_class = AggregateExecutor
