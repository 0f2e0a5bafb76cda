"""``transform``: reshape a JSON value with one operation.

Operations:

- ``template``: render the `template` param (Jinja2, in the sandbox) with ``input`` in scope; a
  template that is one expression keeps its type (``{{ input | length }}`` is a number);
- ``pick`` / ``omit``: keep / drop the keys in `fields` (of an object, or of each object of a
  list);
- ``rename``: rename keys by the `mapping` object ``{old: new}``;
- ``flatten``: an object's nested keys joined by `separator` (``{"a": {"b": 1}}`` →
  ``{"a.b": 1}``); a list's nested lists spliced into it, one level;
- ``map``: the value at `field` (a dotted path) of each item;
- ``filter``: the items whose `field` equals `value`;
- ``sort``: the items in order, by `field` when given, `descending` optionally;
- ``to_json`` / ``from_json``: encode to / decode from a JSON string;
- ``passthrough`` (the default), ``uppercase``, ``lowercase``, ``keys``, ``values``, ``count``,
  ``unique``, ``reverse``: on the whole value, giving it back when they do not apply to it
  (BudPipeline's operations, with its outputs `operation`, `input_type` and `output_type`).
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
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import MISSING, describe_type, get_path
from conveyor.actions.builtin._value_ops import WHOLE_VALUE_OPERATIONS, type_name
from conveyor.errors import TemplateError
from conveyor.pipeline.templating import render_value

DEFAULT_OPERATION = "passthrough"


class TransformFailed(Exception):
    """An operation cannot be applied to its input; the message says why."""


def _template(data: Any, params: dict[str, Any]) -> Any:
    template = params.get("template")
    if not isinstance(template, str) or not template:
        raise TransformFailed("operation 'template' needs the template param")
    try:
        return render_value(template, {"input": data})
    except TemplateError as exc:
        raise TransformFailed(str(exc)) from exc


def _fields(params: dict[str, Any], operation: str) -> list[str]:
    fields = params.get("fields")
    if isinstance(fields, str):
        fields = [part.strip() for part in fields.split(",") if part.strip()]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TransformFailed(f"operation {operation!r} needs fields: a list of key names")
    return fields


def _each_object(data: Any, operation: str, change: Callable[[dict[str, Any]], Any]) -> Any:
    if isinstance(data, dict):
        return change(data)
    if isinstance(data, list):
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise TransformFailed(
                    f"operation {operation!r}: item {index} is {describe_type(item)}, not an object"
                )
        return [change(item) for item in data]
    raise TransformFailed(
        f"operation {operation!r} needs an object or a list of objects, got {describe_type(data)}"
    )


def _pick(data: Any, params: dict[str, Any]) -> Any:
    keep = _fields(params, "pick")
    return _each_object(data, "pick", lambda obj: {k: obj[k] for k in keep if k in obj})


def _omit(data: Any, params: dict[str, Any]) -> Any:
    drop = set(_fields(params, "omit"))
    return _each_object(data, "omit", lambda obj: {k: v for k, v in obj.items() if k not in drop})


def _rename(data: Any, params: dict[str, Any]) -> Any:
    mapping = params.get("mapping")
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise TransformFailed("operation 'rename' needs mapping: an object of old to new key names")
    return _each_object(data, "rename", lambda obj: {mapping.get(k, k): v for k, v in obj.items()})


def _flatten(data: Any, params: dict[str, Any]) -> Any:
    separator = str(params.get("separator") or ".")
    if isinstance(data, list):
        flat: list[Any] = []
        for item in data:
            flat.extend(item if isinstance(item, list) else [item])
        return flat
    if isinstance(data, dict):
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, inner in value.items():
                    walk(f"{prefix}{separator}{key}" if prefix else str(key), inner)
            else:
                out[prefix] = value

        walk("", data)
        return out
    raise TransformFailed(
        f"operation 'flatten' needs an object or a list, got {describe_type(data)}"
    )


def _items(data: Any, operation: str) -> list[Any]:
    if not isinstance(data, list):
        raise TransformFailed(f"operation {operation!r} needs a list, got {describe_type(data)}")
    return data


def _optional_field(params: dict[str, Any]) -> str | None:
    field = params.get("field")
    return None if field in (None, "") else str(field)


def _field(params: dict[str, Any], operation: str) -> str:
    field = _optional_field(params)
    if field is None:
        raise TransformFailed(f"operation {operation!r} needs field: a key or dotted path")
    return field


def _map(data: Any, params: dict[str, Any]) -> Any:
    path = _field(params, "map")
    values = []
    for index, item in enumerate(_items(data, "map")):
        value = get_path(item, path)
        if value is MISSING:
            raise TransformFailed(f"operation 'map': item {index} has no field {path!r}")
        values.append(value)
    return values


def _filter(data: Any, params: dict[str, Any]) -> Any:
    path = _field(params, "filter")
    expected = params.get("value")
    return [item for item in _items(data, "filter") if get_path(item, path) == expected]


def _sort(data: Any, params: dict[str, Any]) -> Any:
    items = _items(data, "sort")
    path = _optional_field(params)
    keys = []
    for index, item in enumerate(items):
        key = item if path is None else get_path(item, path)
        if key is MISSING:
            raise TransformFailed(f"operation 'sort': item {index} has no field {path!r}")
        keys.append(key)
    order = sorted(range(len(items)), key=keys.__getitem__, reverse=bool(params.get("descending")))
    return [items[i] for i in order]


def _to_json(data: Any, params: dict[str, Any]) -> Any:
    indent = params.get("indent")
    return json.dumps(data, indent=int(indent) if indent else None, ensure_ascii=False)


def _from_json(data: Any, params: dict[str, Any]) -> Any:
    if not isinstance(data, str):
        # A JSON param decodes text that holds an object or an array before the action
        # sees it, so such a value arrives decoded already: nothing is left to do.
        return data
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise TransformFailed(
            f"operation 'from_json': input is not JSON: {exc.msg} at position {exc.pos}"
        ) from exc


OPERATIONS: dict[str, tuple[str, Callable[[Any, dict[str, Any]], Any]]] = {
    "template": ("Render a template", _template),
    "pick": ("Keep some keys", _pick),
    "omit": ("Drop some keys", _omit),
    "rename": ("Rename keys", _rename),
    "flatten": ("Flatten", _flatten),
    "map": ("Take one field of each item", _map),
    "filter": ("Keep items whose field equals a value", _filter),
    "sort": ("Sort", _sort),
    "to_json": ("Encode as a JSON string", _to_json),
    "from_json": ("Decode a JSON string", _from_json),
    **WHOLE_VALUE_OPERATIONS,
}


class TransformExecutor(BaseActionExecutor):
    """Applies one operation to `input`."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Apply the operation; a failed result names what does not fit."""
        params = context.params
        operation = params.get("operation") or DEFAULT_OPERATION
        if operation not in OPERATIONS:
            return ActionResult(
                success=False,
                error=f"unknown operation {operation!r} (one of: {', '.join(OPERATIONS)})",
            )
        _label, apply = OPERATIONS[operation]
        data = params.get("input")
        try:
            result = apply(data, params)
        except TransformFailed as exc:
            return ActionResult(success=False, error=str(exc))
        except TypeError as exc:
            # sort of values that cannot be compared (a number and a string), to_json of a
            # value JSON cannot hold.
            return ActionResult(success=False, error=f"operation {operation!r} failed: {exc}")
        return ActionResult(
            success=True,
            outputs={
                "result": result,
                "operation": operation,
                "input_type": type_name(data),
                "output_type": type_name(result),
            },
        )


def _when(*operations: str) -> ShowWhen:
    return ShowWhen.model_validate({"param": "operation", "in": list(operations)})


META = ActionMeta(
    type="transform",
    version="1.0.0",
    name="Transform",
    description="Reshapes a JSON value: template, pick, omit, rename, flatten, map, filter, "
    "sort, to_json, from_json, or passthrough, uppercase, lowercase, keys, values, count, "
    "unique, reverse.",
    category="Data",
    icon="🔀",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=60,
    params=[
        ParamDefinition(
            name="input",
            label="Input",
            type=ParamType.JSON,
            description="The value to transform, usually an earlier step's output.",
            placeholder="{{ steps.fetch.outputs.body }}",
        ),
        ParamDefinition(
            name="operation",
            label="Operation",
            type=ParamType.SELECT,
            default=DEFAULT_OPERATION,
            description="What to do with the input.",
            options=[
                SelectOption(label=label, value=name) for name, (label, _) in OPERATIONS.items()
            ],
        ),
        ParamDefinition(
            name="template",
            label="Template",
            type=ParamType.TEMPLATE,
            description="For template: a Jinja2 template with `input` in scope, rendered in the "
            "sandbox. One {{ expression }} keeps its type.",
            placeholder="{{ input.items | map(attribute='id') | list }}",
            show_when=_when("template"),
        ),
        ParamDefinition(
            name="fields",
            label="Fields",
            type=ParamType.JSON,
            description="For pick and omit: the key names, a list (or a comma-separated string).",
            placeholder='["id", "name"]',
            show_when=_when("pick", "omit"),
        ),
        ParamDefinition(
            name="mapping",
            label="Mapping",
            type=ParamType.JSON,
            description="For rename: an object of old key to new key.",
            placeholder='{"old_name": "new_name"}',
            show_when=_when("rename"),
        ),
        ParamDefinition(
            name="field",
            label="Field",
            type=ParamType.STRING,
            description="For map, filter and sort: a key or dotted path of each item "
            "(sort without it compares the items themselves).",
            placeholder="user.id",
            show_when=_when("map", "filter", "sort"),
        ),
        ParamDefinition(
            name="value",
            label="Value",
            type=ParamType.JSON,
            description="For filter: the value the field must equal.",
            show_when=_when("filter"),
        ),
        ParamDefinition(
            name="descending",
            label="Descending",
            type=ParamType.BOOLEAN,
            default=False,
            description="For sort: largest first.",
            show_when=_when("sort"),
        ),
        ParamDefinition(
            name="separator",
            label="Separator",
            type=ParamType.STRING,
            default=".",
            description="For flatten: what joins nested keys.",
            validation=ValidationRules(min_length=1),
            show_when=_when("flatten"),
        ),
        ParamDefinition(
            name="indent",
            label="Indent",
            type=ParamType.NUMBER,
            description="For to_json: spaces of indentation (compact when empty).",
            validation=ValidationRules(min=0, max=8),
            show_when=_when("to_json"),
        ),
    ],
    outputs=[
        OutputDefinition(name="result", type="any", description="The transformed value."),
        OutputDefinition(name="operation", type="string", description="The operation applied."),
        OutputDefinition(
            name="input_type", type="string", description="The input's type (dict, list, str...)."
        ),
        OutputDefinition(
            name="output_type", type="string", description="The result's type (dict, list, ...)."
        ),
    ],
)


@register_action(META)
class TransformAction:
    """The ``transform`` action."""

    meta = META
    executor_class = TransformExecutor
