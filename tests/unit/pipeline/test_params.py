"""Resolving the parameters a run is started with."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.errors import ParamValidationError
from conveyor.pipeline import PipelineSpec, resolve_pipeline_params


def spec(*parameters: dict[str, Any]) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {"name": "p", "parameters": list(parameters), "steps": [{"id": "a", "action": "x"}]}
    )


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("string", "hello", "hello"),
        ("string", 1.5, "1.5"),
        ("number", "5", 5),
        ("number", "2.5", 2.5),
        ("number", 7, 7),
        ("integer", "5", 5),
        ("integer", 5.0, 5),
        ("integer", "6.0", 6),
        ("boolean", "true", True),
        ("boolean", "No", False),
        ("boolean", "1", True),
        ("boolean", False, False),
        ("object", '{"a": 1}', {"a": 1}),
        ("object", {"b": [1]}, {"b": [1]}),
        ("array", "[1, 2]", [1, 2]),
        ("array", ["x"], ["x"]),
        ("any", "5", "5"),
        ("any", {"k": None}, {"k": None}),
    ],
)
def test_values_are_coerced_to_the_declared_type(kind: str, given: Any, expected: Any) -> None:
    resolved = resolve_pipeline_params(spec({"name": "v", "type": kind}), {"v": given})
    assert resolved == {"v": expected}
    assert type(resolved["v"]) is type(expected)


@pytest.mark.parametrize(
    ("kind", "given", "fragment"),
    [
        ("string", True, "must be a string, got boolean"),
        ("number", "five", "must be a number, got 'five'"),
        ("number", "nan", "must be a finite number"),
        ("number", True, "must be a number, got boolean"),
        ("integer", "5.5", "must be an integer, got '5.5'"),
        ("boolean", "maybe", "must be a boolean (true or false), got 'maybe'"),
        ("object", "[1]", "must be an object, got array"),
        ("object", "{bad", "must be an object written as JSON"),
        ("array", '{"a": 1}', "must be an array, got object"),
        ("array", 3, "must be an array, got number"),
    ],
)
def test_a_wrong_type_names_the_parameter(kind: str, given: Any, fragment: str) -> None:
    with pytest.raises(ParamValidationError) as caught:
        resolve_pipeline_params(spec({"name": "v", "type": kind}), {"v": given})
    [problem] = caught.value.problems
    assert problem.name == "v"
    assert fragment in problem.message


def test_defaults_fill_in_and_undeclared_optional_values_are_none() -> None:
    s = spec(
        {"name": "size", "type": "integer", "default": 3},
        {"name": "label", "type": "string"},
        {"name": "flag", "type": "boolean", "default": "yes"},
    )
    assert resolve_pipeline_params(s, {}) == {"size": 3, "label": None, "flag": True}
    assert resolve_pipeline_params(s, {"size": "9"})["size"] == 9


def test_none_counts_as_not_given() -> None:
    s = spec({"name": "size", "type": "integer", "default": 3})
    assert resolve_pipeline_params(s, {"size": None}) == {"size": 3}


def test_every_problem_is_reported_at_once() -> None:
    s = spec(
        {"name": "count", "type": "integer", "required": True},
        {"name": "ratio", "type": "number"},
        {"name": "tags", "type": "array"},
    )
    with pytest.raises(ParamValidationError) as caught:
        resolve_pipeline_params(s, {"ratio": "lots", "tagz": "[]", "tags": "x"})
    problems = {p.name: p.message for p in caught.value.problems}
    assert problems.keys() == {"count", "ratio", "tags", "tagz"}
    assert problems["count"] == "is required"
    assert "must be a number" in problems["ratio"]
    assert "must be an array written as JSON" in problems["tags"]
    assert "unknown parameter; did you mean 'tags'?" in problems["tagz"]
    assert "(declared: count, ratio, tags)" in problems["tagz"]


def test_an_unknown_parameter_of_a_pipeline_without_any() -> None:
    with pytest.raises(ParamValidationError, match="declares none"):
        resolve_pipeline_params(spec(), {"x": "1"})


def test_result_follows_declaration_order() -> None:
    s = spec({"name": "b"}, {"name": "a"})
    assert list(resolve_pipeline_params(s, {"a": "1", "b": "2"})) == ["b", "a"]
