"""Param values are coerced leniently in form, checked strictly in meaning, every problem named."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import (
    ActionMeta,
    ParamDefinition,
    ParamType,
    SelectOption,
    ValidationRules,
    coerce_value,
    validate_params,
    validated_params,
)
from conveyor.errors import ParamProblem, ParamValidationError

OPTIONS = [SelectOption(label=v.title(), value=v) for v in ("low", "mid", "high")]


def param(kind: ParamType, **fields: Any) -> ParamDefinition:
    if kind in (ParamType.SELECT, ParamType.MULTISELECT):
        fields.setdefault("options", OPTIONS)
    return ParamDefinition(name="p", type=kind, **fields)


def ok(kind: ParamType, value: Any, **fields: Any) -> Any:
    coerced, problem = coerce_value(param(kind, **fields), value)
    assert problem is None, problem
    return coerced


def problem(kind: ParamType, value: Any, **fields: Any) -> str:
    coerced, found = coerce_value(param(kind, **fields), value)
    assert found is not None, f"{value!r} was accepted as {coerced!r}"
    return found


@pytest.mark.parametrize("kind", [ParamType.STRING, ParamType.TEMPLATE])
@pytest.mark.parametrize(("value", "expected"), [("hi", "hi"), (5, "5"), (2.5, "2.5"), ("", "")])
def test_text_params_take_strings_and_numbers(kind: ParamType, value: Any, expected: str) -> None:
    assert ok(kind, value) == expected


@pytest.mark.parametrize("kind", [ParamType.STRING, ParamType.TEMPLATE])
@pytest.mark.parametrize(
    ("value", "message"),
    [(True, "must be a string, got boolean"), ([1], "must be a string, got list")],
)
def test_text_params_refuse_other_types(kind: ParamType, value: Any, message: str) -> None:
    assert problem(kind, value) == message


@pytest.mark.parametrize("kind", [t for t in ParamType if t.is_reference])
def test_reference_params_take_a_non_empty_id(kind: ParamType) -> None:
    assert ok(kind, "model-1") == "model-1"
    assert problem(kind, "  ") == "must be a non-empty reference id"
    assert problem(kind, {"id": 1}) == "must be a string, got object"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (2.5, 2.5), ("7", 7), (" 1.5 ", 1.5), ("1e3", 1000.0), (-4, -4)],
)
def test_number_params_coerce_numeric_text(value: Any, expected: float) -> None:
    coerced = ok(ParamType.NUMBER, value)
    assert coerced == expected
    assert type(coerced) is type(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "must be a number, got boolean True"),
        ("abc", "must be a number, got 'abc'"),
        ("nan", "must be a finite number, got 'nan'"),
        (float("inf"), "must be a finite number, got inf"),
        ([1], "must be a number, got list"),
    ],
)
def test_number_params_refuse_non_numbers(value: Any, message: str) -> None:
    assert problem(ParamType.NUMBER, value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("no", False),
        (" off ", False),
        (1, True),
        (0, False),
    ],
)
def test_boolean_params_coerce_common_spellings(value: Any, expected: bool) -> None:
    assert ok(ParamType.BOOLEAN, value) is expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", "must be a boolean, got string 'maybe'"),
        (2, "must be a boolean, got number 2"),
        (None, "must be a boolean, got null None"),
    ],
)
def test_boolean_params_refuse_anything_else(value: Any, message: str) -> None:
    assert problem(ParamType.BOOLEAN, value) == message


def test_select_params_take_one_of_their_options() -> None:
    assert ok(ParamType.SELECT, "mid") == "mid"
    assert (
        problem(ParamType.SELECT, "max") == "'max' is not one of the options ['low', 'mid', 'high']"
    )
    assert problem(ParamType.SELECT, ["low"]) == "must be a single option, got list"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["low", "high"], ["low", "high"]), ("low, mid", ["low", "mid"]), ('["high"]', ["high"])],
)
def test_multiselect_params_take_a_list_of_options(value: Any, expected: list[str]) -> None:
    assert ok(ParamType.MULTISELECT, value) == expected


def test_multiselect_params_refuse_unknown_options_and_non_lists() -> None:
    assert problem(ParamType.MULTISELECT, ["low", "max"]) == (
        "'max' is not one of the options ['low', 'mid', 'high']"
    )
    assert problem(ParamType.MULTISELECT, {"low": True}) == "must be a list of options, got object"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2]}, {"a": [1, 2]}),
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        # Any other text is a JSON string in its own right: a rendered template such as
        # "0:a" or "{{ raw }}" must reach the action unchanged.
        ("3", "3"),
        ('"text"', '"text"'),
        ("{oops}", "{oops}"),
        ("0:a", "0:a"),
    ],
)
def test_json_params_decode_objects_and_arrays_and_keep_other_text(
    value: Any, expected: Any
) -> None:
    assert ok(ParamType.JSON, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [([1, 5], [1, 5]), ("2,4.5", [2, 4.5]), ("[0, 0]", [0, 0]), ((1, 2), [1, 2])],
)
def test_range_params_take_a_low_high_pair(value: Any, expected: list[float]) -> None:
    assert ok(ParamType.RANGE, value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([5, 1], "low end 5 is greater than high end 1"),
        ([1], "must be a pair [low, high]"),
        ([1, 2, 3], "must be a pair [low, high]"),
        (["a", 2], "must be a number, got 'a'"),
    ],
)
def test_range_params_refuse_bad_pairs(value: Any, message: str) -> None:
    assert problem(ParamType.RANGE, value) == message


def test_branches_params_take_named_branches() -> None:
    branches = [{"name": "big", "condition": "{{ params.n > 5 }}"}, {"name": "else"}]
    assert ok(ParamType.BRANCHES, branches) == branches
    assert ok(ParamType.BRANCHES, '[{"name": "a", "condition": true}]') == [
        {"name": "a", "condition": True}
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "must be a list of branches {name, condition}"),
        (["a"], "branch 0 must be an object with a string 'name' (or 'id')"),
        ([{"condition": "x"}], "branch 0 must be an object with a string 'name' (or 'id')"),
        ([{"name": "a", "condition": 3}], "branch 0 ('a'): condition must be a string"),
        ([{"name": "a"}, {"name": "a"}], "branch name 'a' is used twice"),
        ([{"id": "a"}, {"id": "a"}], "branch name 'a' is used twice"),
    ],
)
def test_branches_params_refuse_malformed_branches(value: Any, message: str) -> None:
    assert problem(ParamType.BRANCHES, value) == message


def test_number_bounds_are_inclusive() -> None:
    rules = ValidationRules(min=1, max=10)
    assert ok(ParamType.NUMBER, 1, validation=rules) == 1
    assert ok(ParamType.NUMBER, "10", validation=rules) == 10
    assert problem(ParamType.NUMBER, 0, validation=rules) == "must be >= 1, got 0"
    assert problem(ParamType.NUMBER, 10.5, validation=rules) == "must be <= 10, got 10.5"


def test_range_bounds_apply_to_both_ends() -> None:
    rules = ValidationRules(min=0, max=100)
    assert ok(ParamType.RANGE, [0, 100], validation=rules) == [0, 100]
    assert problem(ParamType.RANGE, [-1, 5], validation=rules) == "must be >= 0, got -1"
    assert problem(ParamType.RANGE, [5, 101], validation=rules) == "must be <= 100, got 101"


def test_string_length_rules() -> None:
    rules = ValidationRules(min_length=2, max_length=4)
    assert ok(ParamType.STRING, "abc", validation=rules) == "abc"
    assert problem(ParamType.STRING, "a", validation=rules) == (
        "must have at least 2 characters, has 1"
    )
    assert problem(ParamType.STRING, "abcde", validation=rules) == (
        "must have at most 4 characters, has 5"
    )


def test_list_length_rules_count_items() -> None:
    rules = ValidationRules(min_length=1, max_length=2)
    assert problem(ParamType.MULTISELECT, [], validation=rules) == (
        "must have at least 1 items, has 0"
    )
    assert problem(ParamType.JSON, "[1, 2, 3]", validation=rules) == (
        "must have at most 2 items, has 3"
    )


def test_pattern_must_match_the_whole_value() -> None:
    rules = ValidationRules(pattern=r"[a-z]+")
    assert ok(ParamType.STRING, "abc", validation=rules) == "abc"
    assert problem(ParamType.STRING, "abc1", validation=rules) == "must match the pattern '[a-z]+'"


def test_pattern_message_replaces_the_default_one() -> None:
    rules = ValidationRules(pattern=r"v\d+", pattern_message="must look like v1, v2, ...")
    assert problem(ParamType.STRING, "x", validation=rules) == "must look like v1, v2, ..."


META = ActionMeta(
    type="sample",
    version="1.0.0",
    name="Sample",
    description="An action for tests",
    category="Testing",
    params=[
        ParamDefinition(name="url", type=ParamType.STRING, required=True),
        ParamDefinition(
            name="retries",
            type=ParamType.NUMBER,
            default="2",
            validation=ValidationRules(min=0, max=5),
        ),
        ParamDefinition(name="verbose", type=ParamType.BOOLEAN, default="yes"),
        ParamDefinition(name="level", type=ParamType.SELECT, options=OPTIONS, default="mid"),
        ParamDefinition(name="body", type=ParamType.JSON),
    ],
)


def test_validate_params_coerces_given_values_and_fills_defaults() -> None:
    clean, problems = validate_params(META, {"url": "http://x", "retries": "4", "body": "[1]"})
    assert problems == []
    assert clean == {"url": "http://x", "retries": 4, "verbose": True, "level": "mid", "body": [1]}


def test_defaults_written_loosely_reach_the_executor_typed() -> None:
    clean, _ = validate_params(META, {"url": "u"})
    assert clean["retries"] == 2
    assert clean["verbose"] is True


def test_none_counts_as_not_given() -> None:
    clean, problems = validate_params(META, {"url": "u", "retries": None, "body": None})
    assert problems == []
    assert clean["retries"] == 2
    assert "body" not in clean


def test_every_problem_is_reported_with_its_param_name() -> None:
    _, problems = validate_params(
        META, {"retries": "9", "verbose": "perhaps", "level": "max", "colour": "red"}
    )
    assert problems == [
        ParamProblem("colour", "unknown param (known: body, level, retries, url, verbose)"),
        ParamProblem("url", "is required"),
        ParamProblem("retries", "must be <= 5, got 9"),
        ParamProblem("verbose", "must be a boolean, got string 'perhaps'"),
        ParamProblem("level", "'max' is not one of the options ['low', 'mid', 'high']"),
    ]


def test_skipped_params_are_kept_as_given_and_not_checked() -> None:
    clean, problems = validate_params(
        META, {"url": "u", "retries": "{{ params.n }}"}, skip=frozenset({"retries"})
    )
    assert problems == []
    assert clean["retries"] == "{{ params.n }}"


def test_unknown_params_of_an_action_without_params_say_none_are_known() -> None:
    bare = META.model_copy(update={"params": []})
    _, problems = validate_params(bare, {"x": 1})
    assert problems == [ParamProblem("x", "unknown param (known: none)")]


def test_validated_params_raises_with_every_problem_and_the_action() -> None:
    with pytest.raises(ParamValidationError) as caught:
        validated_params(META, {"retries": -1})
    error = caught.value
    assert error.action_type == "sample"
    assert [p.name for p in error.problems] == ["url", "retries"]
    assert str(error) == "action 'sample': url: is required; retries: must be >= 0, got -1"


def test_validated_params_returns_the_clean_values() -> None:
    assert validated_params(META, {"url": "u"})["level"] == "mid"
