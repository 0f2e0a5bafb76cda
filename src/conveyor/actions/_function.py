"""Function actions: an async function from one Pydantic model to another becomes an action.

This is the NOMAD shape of an action::

    class FetchInput(BaseModel):
        cid: int = Field(ge=1, description="PubChem compound id")

    class FetchOutput(BaseModel):
        title: str

    @action(type="pubchem_fetch", category="Chemistry", queue="cpu")
    async def fetch(data: FetchInput) -> FetchOutput:
        \"\"\"Fetch a compound's title from PubChem.\"\"\"
        ...

The params of the action are derived from the input model's fields and its outputs from the
output model's fields, so the catalog, forms and server-side validation see a function action
exactly like a class action. The function itself stays callable as it was.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from conveyor.actions._context import ActionContext
from conveyor.actions._declare import _ATTR
from conveyor.actions._executor import ActionDefinition, BaseActionExecutor
from conveyor.actions._meta import (
    ActionMeta,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    RetryPolicy,
    SelectOption,
    ValidationRules,
)
from conveyor.actions._results import ActionResult
from conveyor.errors import InvalidActionError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Scalars pydantic parses from a string: a text field is the natural form for them.
_STRING_LIKE: tuple[type, ...] = (str, datetime, date, time, UUID, Path)
_SEQUENCES: tuple[type, ...] = (list, tuple, set, frozenset)


def action(
    *,
    type: str,
    version: str = "1.0.0",
    name: str | None = None,
    description: str | None = None,
    category: str = "General",
    queue: str = "default",
    idempotent: bool = False,
    timeout_seconds: float | None = None,
    retry_policy: RetryPolicy | None = None,
    icon: str | None = None,
    color: str | None = None,
    required_services: list[str] | None = None,
    documentation: str | None = None,
) -> Callable[[F], F]:
    """Declare an async function ``f(data: InModel[, context: ActionContext]) -> OutModel``.

    Args:
        type: The action's unique type, a lowercase identifier.
        version: Its semantic version.
        name: A readable name; defaults to the function's name, capitalised.
        description: What it does; defaults to the first paragraph of the docstring.
        category: The catalog group it is listed under.
        queue: The queue (Temporal task queue) it runs on.
        idempotent: Whether running it twice is safe (a step interrupted by a restart is re-run).
        timeout_seconds: The default timeout of one attempt.
        retry_policy: The default retry policy of its steps.
        icon: An icon for the UI.
        color: A hex color for the UI.
        required_services: App ids of the services it calls.
        documentation: Longer documentation; defaults to the whole docstring.

    Returns:
        A decorator that attaches the `ActionDefinition` to the function and returns the
        function unchanged.

    Raises:
        InvalidActionError: when decorating, if the function is not async, an annotation is
            missing or not a Pydantic model, or the derived metadata breaks a rule.
    """

    def decorate(func: F) -> F:
        definition = _function_definition(
            func,
            type,
            version=version,
            name=name,
            description=description,
            category=category,
            queue=queue,
            idempotent=idempotent,
            timeout_seconds=timeout_seconds,
            retry_policy=retry_policy,
            icon=icon,
            color=color,
            required_services=required_services,
            documentation=documentation,
        )
        setattr(func, _ATTR, definition)
        return func

    return decorate


def _function_definition(
    func: Callable[..., Awaitable[Any]],
    action_type: str,
    *,
    name: str | None,
    description: str | None,
    documentation: str | None,
    required_services: list[str] | None,
    **fields: Any,
) -> ActionDefinition:
    spec = _inspect_function(action_type, func)
    doc = inspect.getdoc(func)
    # The first paragraph of the docstring, its lines joined: a one-line catalog entry.
    summary = description or (" ".join(doc.split("\n\n", 1)[0].split()) if doc else None)
    if not summary:
        raise InvalidActionError(
            action_type, [f"{spec.qualname} needs a docstring or description=... to describe it"]
        )
    params, problems = _params_of(spec.input_model)
    if problems:
        raise InvalidActionError(action_type, problems)
    try:
        meta = ActionMeta(
            type=action_type,
            name=name or func.__name__.replace("_", " ").strip().capitalize(),
            description=summary,
            documentation=documentation if documentation is not None else doc,
            execution_mode=ExecutionMode.SYNC,
            required_services=list(required_services or []),
            params=params,
            outputs=_outputs_of(spec.output_model),
            **fields,
        )
    except ValidationError as exc:
        raise InvalidActionError(action_type, _describe(exc)) from exc
    # One executor class per function: the engine instantiates executors without arguments.
    executor = types.new_class(
        f"{func.__name__}_executor",
        (FunctionActionExecutor,),
        exec_body=lambda ns: ns.update(spec=spec, __module__=spec.module),
    )
    return ActionDefinition(meta=meta, executor_class=executor, source=spec.source)


class _FunctionSpec:
    """What the executor needs to call a function action."""

    __slots__ = (
        "function",
        "input_model",
        "module",
        "output_model",
        "qualname",
        "source",
        "wants_context",
    )

    def __init__(
        self,
        function: Callable[..., Awaitable[Any]],
        input_model: type[BaseModel],
        output_model: type[BaseModel],
        wants_context: bool,
    ) -> None:
        self.function = function
        self.input_model = input_model
        self.output_model = output_model
        self.wants_context = wants_context
        self.qualname: str = getattr(function, "__qualname__", repr(function))
        self.module: str = getattr(function, "__module__", "?")
        self.source = f"{self.module}:{self.qualname}"


class FunctionActionExecutor(BaseActionExecutor):
    """Runs a function action: params into the input model, the function, the output dumped.

    `action` makes one subclass per function, with `spec` set.
    """

    spec: ClassVar[_FunctionSpec]

    async def execute(self, context: ActionContext) -> ActionResult:
        """Validate the params into the input model, await the function, return its outputs.

        Invalid params and an output that is not the declared model are failed results naming
        the fields; an exception raised by the function propagates, like any executor's, so the
        engine can retry it.
        """
        spec = self.spec
        try:
            data = spec.input_model.model_validate(context.params)
        except ValidationError as exc:
            return ActionResult(success=False, error=f"invalid params: {'; '.join(_describe(exc))}")
        if spec.wants_context:
            returned = await spec.function(data, context)
        else:
            returned = await spec.function(data)
        if not isinstance(returned, spec.output_model):
            try:
                returned = spec.output_model.model_validate(returned)
            except ValidationError as exc:
                return ActionResult(
                    success=False,
                    error=(
                        f"{spec.qualname} returned {type(returned).__name__}, not a "
                        f"valid {spec.output_model.__name__}: {'; '.join(_describe(exc))}"
                    ),
                )
        return ActionResult(success=True, outputs=returned.model_dump(mode="json"))


def _inspect_function(action_type: str, func: Any) -> _FunctionSpec:
    """Check the function's shape and resolve its models, or say what is wrong."""
    label = getattr(func, "__qualname__", repr(func))
    if isinstance(func, type):
        raise InvalidActionError(
            action_type,
            [f"@action decorates async functions; for the class {label}, use @register_action"],
        )
    if not inspect.iscoroutinefunction(func):
        raise InvalidActionError(
            action_type, [f"{label} must be an async function (async def) to be an action"]
        )
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # NameError for a forward reference, TypeError for a bad one
        raise InvalidActionError(
            action_type, [f"the annotations of {label} cannot be resolved: {exc}"]
        ) from exc
    parameters = list(inspect.signature(func).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not 1 <= len(parameters) <= 2 or any(p.kind not in positional for p in parameters):
        raise InvalidActionError(
            action_type,
            [
                f"{label} must take (data: InputModel) or (data: InputModel, context: "
                f"ActionContext), not {inspect.signature(func)}"
            ],
        )
    problems: list[str] = []
    input_model = _model_hint(hints, parameters[0].name, f"parameter {parameters[0].name!r}")
    output_model = _model_hint(hints, "return", "the return value")
    problems.extend(f"{label}: {p}" for p in (input_model, output_model) if isinstance(p, str))
    if len(parameters) == 2:
        hint = hints.get(parameters[1].name)
        if not (isinstance(hint, type) and issubclass(hint, ActionContext)):
            problems.append(
                f"{label}: the second parameter {parameters[1].name!r} must be annotated "
                "ActionContext"
            )
    if problems or isinstance(input_model, str) or isinstance(output_model, str):
        raise InvalidActionError(action_type, problems)
    return _FunctionSpec(
        function=func,
        input_model=input_model,
        output_model=output_model,
        wants_context=len(parameters) == 2,
    )


def _model_hint(hints: dict[str, Any], key: str, what: str) -> type[BaseModel] | str:
    """The model annotated at `key`, or the problem with its annotation."""
    if key not in hints:
        return f"{what} needs a type annotation: a pydantic BaseModel subclass"
    hint = hints[key]
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    return f"{what} is annotated {_type_label(hint)}, which is not a pydantic BaseModel"


def _params_of(model: type[BaseModel]) -> tuple[list[ParamDefinition], list[str]]:
    params: list[ParamDefinition] = []
    problems: list[str] = []
    for field_name, field in model.model_fields.items():
        # Params are validated into the model by alias when one is set, so that is their name.
        name = field.validation_alias if isinstance(field.validation_alias, str) else None
        name = name or field.alias or field_name
        kind, options = _param_type(field.annotation)
        try:
            params.append(
                ParamDefinition(
                    name=name,
                    label=field.title,
                    type=kind,
                    required=field.is_required(),
                    default=_default_of(field),
                    description=field.description,
                    options=options,
                    validation=_rules_of(field, kind),
                )
            )
        except ValidationError as exc:
            problems.extend(f"{model.__name__}.{field_name}: {p}" for p in _describe(exc))
    return params, problems


def _outputs_of(model: type[BaseModel]) -> list[OutputDefinition]:
    # model_dump() keys are the field names (not aliases), so the outputs are named after them.
    return [
        OutputDefinition(
            name=field_name,
            type=_output_type(field.annotation),
            description=field.description,
        )
        for field_name, field in model.model_fields.items()
    ]


def _param_type(annotation: Any) -> tuple[ParamType, list[SelectOption] | None]:
    inner = _strip_none(annotation)
    choices = _choices(inner)
    if choices is not None:
        return ParamType.SELECT, choices
    origin = typing.get_origin(inner) or inner
    if isinstance(origin, type) and issubclass(origin, _SEQUENCES):
        args = [a for a in typing.get_args(inner) if a is not Ellipsis]
        item_choices = _choices(args[0]) if len(args) == 1 else None
        if item_choices is not None:
            return ParamType.MULTISELECT, item_choices
        return ParamType.JSON, None
    if inner is bool:
        return ParamType.BOOLEAN, None
    if isinstance(inner, type) and issubclass(inner, int):
        return ParamType.INTEGER, None
    if isinstance(inner, type) and issubclass(inner, int | float | Decimal):
        return ParamType.NUMBER, None
    if isinstance(inner, type) and issubclass(inner, _STRING_LIKE):
        return ParamType.STRING, None
    # dict, nested models, unions of several types, Any: an object the model validates.
    return ParamType.JSON, None


def _output_type(annotation: Any) -> str:
    inner = _strip_none(annotation)
    choices = _choices(inner)
    if choices is not None:
        values = {type(option.value) for option in choices}
        return "string" if values == {str} else "any"
    origin = typing.get_origin(inner) or inner
    if not isinstance(origin, type):
        return "any"
    if issubclass(origin, _SEQUENCES):
        return "array"
    if issubclass(origin, dict | BaseModel):
        return "object"
    if origin is bool:
        return "boolean"
    if issubclass(origin, int | float | Decimal):
        return "number"
    if issubclass(origin, _STRING_LIKE):
        return "string"
    return "any"


def _strip_none(annotation: Any) -> Any:
    """`X | None` is an optional X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _choices(annotation: Any) -> list[SelectOption] | None:
    if typing.get_origin(annotation) is Literal:
        return [
            SelectOption(label=str(to_jsonable_python(v)), value=to_jsonable_python(v))
            for v in typing.get_args(annotation)
        ]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [SelectOption(label=member.name, value=member.value) for member in annotation]
    return None


def _default_of(field: FieldInfo) -> Any:
    # A default_factory is left to the model: calling it here could have side effects.
    if field.default is PydanticUndefined or field.default is None:
        return None
    return to_jsonable_python(field.default)


def _rules_of(field: FieldInfo, kind: ParamType) -> ValidationRules | None:
    found: dict[str, Any] = {}
    for constraint in field.metadata:
        for attr, rule in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max")):
            bound = getattr(constraint, attr, None)
            # gt/lt become inclusive bounds: ValidationRules has no exclusive ones, and the
            # model still enforces the exact bound when the function is called.
            numeric = kind in (ParamType.NUMBER, ParamType.INTEGER)
            if numeric and isinstance(bound, int | float | Decimal):
                found[rule] = float(bound)
        for attr in ("min_length", "max_length"):
            size = getattr(constraint, attr, None)
            if isinstance(size, int):
                found[attr] = size
        pattern = getattr(constraint, "pattern", None)
        if kind is ParamType.STRING and isinstance(pattern, str):
            found["pattern"] = _as_full_match(pattern)
    return ValidationRules(**found) if found else None


def _as_full_match(pattern: str) -> str:
    """The pattern pydantic searches for, as one ValidationRules matches in full.

    Pydantic finds a pattern anywhere in the value; ValidationRules matches the whole value.
    An anchored pattern means the same to both and is kept as written, so the catalog shows
    what the author wrote.
    """
    if pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern
    return f"(?s:.*?)(?:{pattern})(?s:.*)"


def _describe(exc: ValidationError) -> list[str]:
    """One line per pydantic error, led by the dotted path of the field it is about."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"{where}: {error['msg']}" if where else error["msg"])
    return lines


def _type_label(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else re.sub(r"\btyping\.", "", repr(hint))
