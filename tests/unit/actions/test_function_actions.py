"""A typed async function between two Pydantic models becomes an action (the NOMAD shape)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from conveyor.actions import (
    ActionContext,
    ActionRegistry,
    ExecutionMode,
    ParamType,
    RetryPolicy,
    SelectOption,
    ValidationRules,
    action,
    definition_of,
    validate_params,
)
from conveyor.errors import InvalidActionError


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int


class Everything(BaseModel):
    """One field of every kind the mapping knows."""

    name: str = Field(description="Who to greet", min_length=1, max_length=20, title="Name")
    code: str = Field("ab-1", pattern=r"^[a-z]+-\d$")
    fragment: str = Field("xy", pattern=r"y")
    count: int = Field(3, ge=1, le=10)
    ratio: float = Field(gt=0, lt=1)
    loud: bool = False
    mode: Literal["fast", "slow"] = "fast"
    color: Color = Color.BLUE
    tags: list[Literal["a", "b", "c"]] = Field(default_factory=list, max_length=2)
    colors: set[Color] = Field(default_factory=set)
    extra: dict[str, Any] = Field(default_factory=dict)
    numbers: list[int] = [1, 2]
    point: Point | None = None
    when: datetime | None = None
    nickname: str | None = None
    either: int | str = 0


class Greeting(BaseModel):
    text: str = Field(description="The greeting")
    length: int
    loud: bool
    color: Color
    at: datetime | None = None
    parts: list[str] = []
    point: Point | None = None


class Numbers(BaseModel):
    a: int
    b: int = Field(0, ge=0)


class Sum(BaseModel):
    total: int


@action(type="greet", category="Demo", queue="cpu", idempotent=True, timeout_seconds=30)
async def greet(data: Everything) -> Greeting:
    """Greet someone by name.

    Longer documentation
    spread over lines.
    """
    text = f"hello {data.name}"
    return Greeting(
        text=text.upper() if data.loud else text,
        length=len(text),
        loud=data.loud,
        color=data.color,
        at=data.when,
        point=data.point,
    )


@action(type="add_numbers", version="2.1.0", description="Adds a and b")
async def add_numbers(data: Numbers, context: ActionContext) -> Sum:
    await context.report_progress(50, f"step {context.step_id}")
    return Sum(total=data.a + data.b)


def params_of(func: Any) -> dict[str, Any]:
    return {p.name: p for p in definition_of(func).meta.params}


def context(params: dict[str, Any], **fields: Any) -> ActionContext:
    return ActionContext(step_id="s1", execution_id="run-1", params=params, **fields)


# --- metadata -------------------------------------------------------------------------------


def test_the_decorator_declares_the_action_from_its_arguments_and_docstring() -> None:
    meta = definition_of(greet).meta
    assert meta.type == "greet"
    assert meta.version == "1.0.0"
    assert meta.name == "Greet"
    assert meta.description == "Greet someone by name."
    assert meta.documentation is not None
    assert "Longer documentation" in meta.documentation
    assert (meta.category, meta.queue, meta.idempotent) == ("Demo", "cpu", True)
    assert meta.timeout_seconds == 30
    assert meta.execution_mode is ExecutionMode.SYNC


def test_defaults_of_the_decorator() -> None:
    meta = definition_of(add_numbers).meta
    assert (meta.version, meta.category, meta.queue) == ("2.1.0", "General", "default")
    assert meta.description == "Adds a and b"
    assert meta.name == "Add numbers"
    assert meta.idempotent is False
    assert meta.retry_policy is None


def test_the_decorated_function_is_unchanged_and_carries_its_definition() -> None:
    definition = definition_of(greet)
    assert definition.source == f"{__name__}:greet"
    assert greet.__name__ == "greet"
    assert definition.executor_class.__name__ == "greet_executor"


async def test_the_function_stays_callable_as_it_was() -> None:
    result = await greet(Everything(name="ada", ratio=0.5))
    assert result == Greeting(text="hello ada", length=9, loud=False, color=Color.BLUE)


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("name", ParamType.STRING),
        ("code", ParamType.STRING),
        ("count", ParamType.INTEGER),
        ("ratio", ParamType.NUMBER),
        ("loud", ParamType.BOOLEAN),
        ("mode", ParamType.SELECT),
        ("color", ParamType.SELECT),
        ("tags", ParamType.MULTISELECT),
        ("colors", ParamType.MULTISELECT),
        ("extra", ParamType.JSON),
        ("numbers", ParamType.JSON),
        ("point", ParamType.JSON),
        ("when", ParamType.STRING),
        ("nickname", ParamType.STRING),
        ("either", ParamType.JSON),
    ],
)
def test_field_types_map_to_param_types(field: str, kind: ParamType) -> None:
    assert params_of(greet)[field].type is kind


def test_params_keep_the_model_order() -> None:
    assert list(params_of(greet)) == list(Everything.model_fields)


def test_required_default_description_and_label_come_from_the_field() -> None:
    params = params_of(greet)
    assert params["name"].required is True
    assert params["name"].description == "Who to greet"
    assert params["name"].label == "Name"
    assert params["ratio"].required is True
    assert params["count"].required is False
    assert params["count"].default == 3
    assert params["numbers"].default == [1, 2]
    assert params["nickname"].required is False
    assert params["nickname"].default is None
    # A default_factory is left to the model.
    assert params["tags"].default is None
    assert params["tags"].required is False


def test_literal_and_enum_fields_become_options() -> None:
    params = params_of(greet)
    assert params["mode"].options == [
        SelectOption(label="fast", value="fast"),
        SelectOption(label="slow", value="slow"),
    ]
    assert params["color"].options == [
        SelectOption(label="RED", value="red"),
        SelectOption(label="BLUE", value="blue"),
    ]
    assert params["color"].default == "blue"
    assert params["tags"].options is not None
    assert [o.value for o in params["tags"].options] == ["a", "b", "c"]
    assert params["colors"].options == params["color"].options


def test_constraints_become_validation_rules() -> None:
    params = params_of(greet)
    assert params["name"].validation == ValidationRules(min_length=1, max_length=20)
    assert params["count"].validation == ValidationRules(min=1, max=10)
    assert params["ratio"].validation == ValidationRules(min=0, max=1)
    assert params["tags"].validation == ValidationRules(max_length=2)
    assert params["loud"].validation is None


def test_an_anchored_pattern_is_kept_as_written() -> None:
    rules = params_of(greet)["code"].validation
    assert rules is not None
    assert rules.pattern == r"^[a-z]+-\d$"


@pytest.mark.parametrize("value", ["y", "xy", "yx", "xyz", "x", "", "ab\ny", "Y"])
def test_an_unanchored_pattern_means_what_it_meant_to_pydantic(value: str) -> None:
    # Pydantic searches for the pattern; ValidationRules matches the whole value.
    rules = params_of(greet)["fragment"].validation
    assert rules is not None
    assert rules.pattern is not None
    pydantic_accepts = True
    try:
        Everything(name="a", ratio=0.5, fragment=value)
    except ValidationError:
        pydantic_accepts = False
    assert (re.fullmatch(rules.pattern, value) is not None) is pydantic_accepts


def test_outputs_come_from_the_output_model() -> None:
    outputs = {o.name: o for o in definition_of(greet).meta.outputs}
    assert {name: o.type for name, o in outputs.items()} == {
        "text": "string",
        "length": "number",
        "loud": "boolean",
        "color": "string",
        "at": "string",
        "parts": "array",
        "point": "object",
    }
    assert outputs["text"].description == "The greeting"


def test_the_engine_side_validation_agrees_with_the_model() -> None:
    meta = definition_of(greet).meta
    _, problems = validate_params(meta, {"name": "", "ratio": 0.5, "count": 11, "mode": "warp"})
    assert [p.name for p in problems] == ["name", "count", "mode"]
    clean, problems = validate_params(meta, {"name": "ada", "ratio": "0.5", "tags": "a,b"})
    assert problems == []
    Everything.model_validate(clean)


def test_a_function_action_registers_like_any_action() -> None:
    registry = ActionRegistry([greet, add_numbers])
    assert registry.types() == ["add_numbers", "greet"]
    assert registry.get("greet") is definition_of(greet)


# --- execution ------------------------------------------------------------------------------


async def test_the_executor_validates_params_calls_the_function_and_dumps_outputs() -> None:
    executor = definition_of(greet).new_executor()
    result = await executor.execute(
        context(
            {
                "name": "ada",
                "ratio": "0.25",
                "loud": True,
                "color": "red",
                "when": "2024-05-01T12:00:00",
                "point": {"x": 1, "y": 2},
            }
        )
    )
    assert result.success, result.error
    assert result.outputs == {
        "text": "HELLO ADA",
        "length": 9,
        "loud": True,
        "color": "red",
        "at": "2024-05-01T12:00:00",
        "parts": [],
        "point": {"x": 1, "y": 2},
    }


async def test_invalid_params_are_a_failed_result_naming_each_field() -> None:
    executor = definition_of(greet).new_executor()
    result = await executor.execute(context({"count": 0, "point": {"x": "far"}}))
    assert result.success is False
    assert result.error is not None
    assert result.error.startswith("invalid params: ")
    for field in ("name: Field required", "ratio: Field required", "count: ", "point.x: "):
        assert field in result.error


async def test_a_function_can_take_the_context() -> None:
    seen: list[tuple[float, str | None]] = []

    async def sink(percent: float, message: str | None) -> None:
        seen.append((percent, message))

    executor = definition_of(add_numbers).new_executor()
    result = await executor.execute(context({"a": 2, "b": 3}, progress_sink=sink))
    assert result.outputs == {"total": 5}
    assert seen == [(50.0, "step s1")]


class Loose(BaseModel):
    value: Any = None


@action(type="returns_dict", description="Returns a dict")
async def returns_dict(data: Loose) -> Sum:
    return data.value  # type: ignore[no-any-return]


async def test_a_returned_mapping_is_validated_into_the_output_model() -> None:
    executor = definition_of(returns_dict).new_executor()
    result = await executor.execute(context({"value": {"total": "7"}}))
    assert result.outputs == {"total": 7}


@pytest.mark.parametrize(
    ("value", "returned"), [({"sum": 1}, "dict"), (None, "NoneType"), (["x"], "list")]
)
async def test_a_wrong_return_value_is_a_failed_result(value: Any, returned: str) -> None:
    executor = definition_of(returns_dict).new_executor()
    result = await executor.execute(context({"value": value}))
    assert result.success is False
    assert result.error is not None
    assert result.error.startswith(f"returns_dict returned {returned}, not a valid Sum: ")


class Boom(RuntimeError):
    pass


@action(type="explodes", description="Raises")
async def explodes(data: Numbers) -> Sum:
    raise Boom("no")


async def test_an_exception_from_the_function_propagates_for_the_engine_to_retry() -> None:
    with pytest.raises(Boom):
        await definition_of(explodes).new_executor().execute(context({"a": 1}))


# --- declaration errors ---------------------------------------------------------------------


def declaration_error(func: Any, **options: Any) -> str:
    options.setdefault("type", "bad")
    with pytest.raises(InvalidActionError) as caught:
        action(**options)(func)
    assert caught.value.action_type == options["type"]
    return str(caught.value)


def test_a_sync_function_is_refused() -> None:
    def run(data: Numbers) -> Sum:
        """Sync."""
        return Sum(total=0)

    assert "must be an async function (async def)" in declaration_error(run)


def test_a_class_is_refused_with_a_pointer_to_register_action() -> None:
    class Thing:
        pass

    assert "use @register_action" in declaration_error(Thing)


def test_a_missing_input_annotation_is_refused() -> None:
    async def run(data) -> Sum:  # type: ignore[no-untyped-def]
        """No annotation."""
        return Sum(total=0)

    message = declaration_error(run)
    assert "parameter 'data' needs a type annotation: a pydantic BaseModel subclass" in message


def test_a_missing_return_annotation_is_refused() -> None:
    async def run(data: Numbers):  # type: ignore[no-untyped-def]
        """No return annotation."""

    assert "the return value needs a type annotation" in declaration_error(run)


def test_types_that_are_not_models_are_refused_together() -> None:
    async def run(data: int) -> dict[str, int]:
        """Plain types."""
        return {}

    message = declaration_error(run)
    assert "parameter 'data' is annotated int, which is not a pydantic BaseModel" in message
    assert "the return value is annotated dict[str, int], which is not a pydantic BaseModel" in (
        message
    )


@pytest.mark.parametrize("shape", ["none", "three", "varargs", "keyword_only"])
def test_a_wrong_signature_is_refused(shape: str) -> None:
    async def none() -> Sum:
        """Nothing in."""
        return Sum(total=0)

    async def three(data: Numbers, context: ActionContext, more: int) -> Sum:
        """Too much in."""
        return Sum(total=0)

    async def varargs(*data: Numbers) -> Sum:
        """Varargs."""
        return Sum(total=0)

    async def keyword_only(*, data: Numbers) -> Sum:
        """Keyword only."""
        return Sum(total=0)

    functions = {"none": none, "three": three, "varargs": varargs, "keyword_only": keyword_only}
    assert "must take (data: InputModel) or (data: InputModel, context: ActionContext)" in (
        declaration_error(functions[shape])
    )


def test_a_second_parameter_must_be_the_context() -> None:
    async def run(data: Numbers, other: Numbers) -> Sum:
        """Two models."""
        return Sum(total=0)

    assert "the second parameter 'other' must be annotated ActionContext" in (
        declaration_error(run)
    )


def test_an_annotation_that_cannot_be_resolved_is_refused() -> None:
    class Local(BaseModel):
        a: int

    async def run(data: Local) -> Sum:
        """Refers to a class only this test's scope knows."""
        return Sum(total=0)

    message = declaration_error(run)
    assert "the annotations of " in message
    assert "cannot be resolved: name 'Local' is not defined" in message


def test_a_description_is_required() -> None:
    async def run(data: Numbers) -> Sum:
        return Sum(total=0)

    assert "needs a docstring or description=... to describe it" in declaration_error(run)


def test_metadata_rules_apply_to_function_actions() -> None:
    async def run(data: Numbers) -> Sum:
        """Fine."""
        return Sum(total=0)

    message = declaration_error(run, type="Bad-Type", version="1.0")
    assert "type: 'Bad-Type' must be a lowercase identifier" in message
    assert "version: '1.0' is not a semantic version" in message


def test_other_bad_options_are_reported_by_field() -> None:
    async def run(data: Numbers) -> Sum:
        """Fine."""
        return Sum(total=0)

    assert "timeout_seconds: Input should be greater than 0" in declaration_error(
        run, timeout_seconds=-1
    )
    assert "retry_policy: Input should be a valid dictionary or instance of RetryPolicy" in (
        declaration_error(run, retry_policy="often")
    )


class BadDefault(BaseModel):
    count: int = Field(5, ge=10)


class Contradiction(BaseModel):
    count: int = Field(ge=10, le=1)


def test_a_default_that_breaks_its_own_constraint_names_the_field() -> None:
    async def run(data: BadDefault) -> Sum:
        """Bad default."""
        return Sum(total=0)

    assert "params[0].default: must be >= 10, got 5" in declaration_error(run)


def test_contradictory_constraints_name_the_model_and_field() -> None:
    async def run(data: Contradiction) -> Sum:
        """Contradiction."""
        return Sum(total=0)

    assert "Contradiction.count: " in declaration_error(run)
    assert "min (10.0) is greater than max (1.0)" in declaration_error(run)


def test_a_retry_policy_is_kept() -> None:
    policy = RetryPolicy(max_attempts=5)

    @action(type="retried", description="Retried", retry_policy=policy)
    async def run(data: Numbers) -> Sum:
        return Sum(total=0)

    assert definition_of(run).meta.retry_policy == policy


class Aliased(BaseModel):
    max_tokens: int = Field(alias="maxTokens", ge=1)


@action(type="aliased", description="Takes an aliased field")
async def aliased(data: Aliased) -> Sum:
    return Sum(total=data.max_tokens)


async def test_a_field_with_an_alias_is_a_param_named_by_its_alias() -> None:
    # The executor validates params into the model by alias, so the param must carry it.
    definition = definition_of(aliased)
    assert [p.name for p in definition.meta.params] == ["maxTokens"]
    result = await definition.new_executor().execute(context({"maxTokens": 3}))
    assert result.outputs == {"total": 3}
