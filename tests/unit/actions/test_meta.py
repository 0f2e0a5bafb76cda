"""ActionMeta and its parts are checked when declared, naming the action and the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.actions import (
    ActionMeta,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    RetryPolicy,
    SelectOption,
    ShowWhen,
    ValidationRules,
)
from conveyor.errors import InvalidActionError


def meta(**overrides: Any) -> ActionMeta:
    fields: dict[str, Any] = {
        "type": "sample",
        "version": "1.0.0",
        "name": "Sample",
        "description": "An action for tests",
        "category": "Testing",
    }
    fields.update(overrides)
    return ActionMeta(**fields)


def problems_of(**overrides: Any) -> list[str]:
    with pytest.raises(InvalidActionError) as caught:
        meta(**overrides)
    return caught.value.problems


COLORS = [SelectOption(label="Red", value="red"), SelectOption(label="Blue", value="blue")]


def test_a_valid_declaration_keeps_its_fields() -> None:
    declared = meta(
        params=[ParamDefinition(name="count", type=ParamType.NUMBER, default=3)],
        outputs=[OutputDefinition(name="total", type="number")],
        execution_mode=ExecutionMode.EVENT_DRIVEN,
        queue="gpu-large",
    )
    assert declared.param("count") is not None
    assert declared.param("missing") is None
    assert declared.output_names == frozenset({"total"})
    assert declared.queue == "gpu-large"


@pytest.mark.parametrize("bad", ["Bad", "my-action", "1st", "", "with space", "_private"])
def test_type_must_be_a_lowercase_identifier(bad: str) -> None:
    with pytest.raises(InvalidActionError) as caught:
        meta(type=bad)
    assert caught.value.action_type == bad
    assert f"action {bad!r}" in str(caught.value)
    assert any(p.startswith("type: ") for p in caught.value.problems)


@pytest.mark.parametrize("good", ["a", "log", "http_request", "step2"])
def test_lowercase_identifiers_are_valid_types(good: str) -> None:
    assert meta(type=good).type == good


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "1.0.x", "latest", ""])
def test_version_must_be_semantic(bad: str) -> None:
    assert problems_of(version=bad) == [f"version: {bad!r} is not a semantic version like 1.0.0"]


@pytest.mark.parametrize("good", ["0.1.0", "1.0.0", "10.20.30", "1.0.0-alpha.1", "1.0.0+build.7"])
def test_semantic_versions_with_prerelease_and_build_are_valid(good: str) -> None:
    assert meta(version=good).version == good


@pytest.mark.parametrize("bad", ["GPU", "my queue", "-gpu"])
def test_queue_must_be_a_lowercase_name(bad: str) -> None:
    assert problems_of(queue=bad) == [f"queue: {bad!r} must be a lowercase identifier"]


@pytest.mark.parametrize("field", ["name", "description", "category"])
def test_name_description_and_category_must_not_be_blank(field: str) -> None:
    assert problems_of(**{field: "  "}) == [f"{field}: must not be empty"]


def test_a_param_name_must_be_an_identifier() -> None:
    assert problems_of(params=[ParamDefinition(name="not valid")]) == [
        "params[0].name: 'not valid' is not an identifier"
    ]


def test_a_duplicate_param_name_is_reported_once_at_its_first_place() -> None:
    params = [ParamDefinition(name="a"), ParamDefinition(name="b"), ParamDefinition(name="a")]
    assert problems_of(params=params) == ["params[0].name: 'a' is declared more than once"]


def test_a_duplicate_output_name_is_reported() -> None:
    outputs = [OutputDefinition(name="x"), OutputDefinition(name="x")]
    assert problems_of(outputs=outputs) == ["outputs[0].name: 'x' is declared more than once"]


@pytest.mark.parametrize("kind", [ParamType.SELECT, ParamType.MULTISELECT])
def test_a_select_param_needs_options(kind: ParamType) -> None:
    for options in (None, []):
        assert problems_of(params=[ParamDefinition(name="c", type=kind, options=options)]) == [
            f"params[0].options: a {kind.value} param needs options"
        ]


def test_show_when_must_name_a_param_of_the_action() -> None:
    params = [
        ParamDefinition(name="mode"),
        ParamDefinition(name="url", show_when=ShowWhen(param="mdoe", equals="http")),
    ]
    assert problems_of(params=params) == [
        "params[1].show_when.param: 'mdoe' is not a param of this action"
    ]


def test_show_when_accepts_in_by_its_alias() -> None:
    condition = ShowWhen.model_validate({"param": "mode", "in": ["a", "b"]})
    declared = meta(
        params=[ParamDefinition(name="mode"), ParamDefinition(name="x", show_when=condition)]
    )
    assert declared.params[1].show_when is not None
    assert declared.params[1].show_when.in_ == ["a", "b"]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            ParamDefinition(name="n", type=ParamType.NUMBER, default="many"),
            "params[0].default: must be a number, got 'many'",
        ),
        (
            ParamDefinition(name="flag", type=ParamType.BOOLEAN, default="maybe"),
            "params[0].default: must be a boolean, got string 'maybe'",
        ),
        (
            ParamDefinition(name="c", type=ParamType.SELECT, options=COLORS, default="green"),
            "params[0].default: 'green' is not one of the options ['red', 'blue']",
        ),
        (
            ParamDefinition(
                name="n",
                type=ParamType.NUMBER,
                default=50,
                validation=ValidationRules(min=1, max=10),
            ),
            "params[0].default: must be <= 10, got 50",
        ),
        (
            ParamDefinition(name="s", type=ParamType.STRING, default=["a"]),
            "params[0].default: must be a string, got list",
        ),
    ],
)
def test_a_default_must_match_its_param(definition: ParamDefinition, message: str) -> None:
    assert problems_of(params=[definition]) == [message]


def test_defaults_that_fit_are_accepted() -> None:
    declared = meta(
        params=[
            ParamDefinition(name="n", type=ParamType.NUMBER, default=5),
            ParamDefinition(name="c", type=ParamType.SELECT, options=COLORS, default="red"),
            ParamDefinition(name="m", type=ParamType.MULTISELECT, options=COLORS, default=["blue"]),
            ParamDefinition(name="j", type=ParamType.JSON, default={"a": 1}),
        ]
    )
    assert [p.default for p in declared.params] == [5, "red", ["blue"], {"a": 1}]


def test_every_problem_is_reported_at_once_and_names_the_action() -> None:
    with pytest.raises(InvalidActionError) as caught:
        meta(
            type="Bad",
            version="1",
            params=[ParamDefinition(name="s", type=ParamType.SELECT)],
            outputs=[OutputDefinition(name="o"), OutputDefinition(name="o")],
        )
    assert len(caught.value.problems) == 4
    assert str(caught.value).startswith("action 'Bad': type: ")
    assert "params[0].options" in str(caught.value)
    assert "outputs[0].name" in str(caught.value)


def test_the_declaration_error_is_not_wrapped_by_pydantic() -> None:
    # Raised from a model validator, it must reach the caller as itself, not as a
    # ValidationError that hides which action it is about.
    with pytest.raises(InvalidActionError):
        meta(version="x")


def test_meta_is_frozen_and_refuses_unknown_fields() -> None:
    declared = meta()
    with pytest.raises(ValidationError, match="frozen"):
        declared.type = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        meta(colour="red")


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="timeout_seconds"):
        meta(timeout_seconds=0)


def test_validation_rules_check_themselves() -> None:
    with pytest.raises(ValidationError, match=r"min \(5.0\) is greater than max \(1.0\)"):
        ValidationRules(min=5, max=1)
    with pytest.raises(ValidationError, match=r"min_length \(3\) is greater than max_length \(2\)"):
        ValidationRules(min_length=3, max_length=2)
    with pytest.raises(ValidationError, match="pattern does not compile"):
        ValidationRules(pattern="(unclosed")
    with pytest.raises(ValidationError, match="min_length"):
        ValidationRules(min_length=-1)


def test_param_type_knows_its_reference_kinds() -> None:
    references = {t for t in ParamType if t.is_reference}
    assert references == {
        ParamType.MODEL_REF,
        ParamType.CLUSTER_REF,
        ParamType.ENDPOINT_REF,
        ParamType.PROJECT_REF,
        ParamType.CREDENTIAL_REF,
        ParamType.PROVIDER_REF,
        ParamType.CLOUD_MODEL_REF,
    }


def test_display_label_falls_back_to_a_readable_name() -> None:
    assert ParamDefinition(name="max_tokens").display_label == "Max tokens"
    assert ParamDefinition(name="n", label="Count").display_label == "Count"


def test_retry_policy_backs_off_exponentially_up_to_its_cap() -> None:
    policy = RetryPolicy(initial_interval_seconds=1, backoff_coefficient=2, max_interval_seconds=5)
    assert [policy.delay_before(attempt) for attempt in (2, 3, 4, 5, 6)] == [1, 2, 4, 5, 5]


def test_retry_policy_is_finite() -> None:
    assert RetryPolicy().max_attempts == 3
    with pytest.raises(ValidationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValidationError, match="backoff_coefficient"):
        RetryPolicy(backoff_coefficient=0.5)
