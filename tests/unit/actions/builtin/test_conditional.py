from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions.builtin.conditional import ConditionalAction, truthy
from tests.unit.actions.builtin.helpers import execute, execute_raw


async def choose(branches: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = await execute(ConditionalAction, branches=branches)
    assert outcome.success, outcome.error
    return outcome.outputs


async def test_first_true_branch_wins() -> None:
    outputs = await choose(
        [
            {"name": "huge", "condition": False},
            {"name": "large", "condition": "true"},
            {"name": "also", "condition": True},
        ]
    )

    assert outputs.items() >= {"branch": "large", "matched": True, "index": 1}.items()
    assert not outputs["is_default"]


async def test_default_is_taken_when_nothing_holds_wherever_it_stands() -> None:
    outputs = await choose(
        [{"name": "fallback"}, {"name": "a", "condition": "false"}, {"name": "b", "condition": "0"}]
    )

    assert outputs.items() >= {"branch": "fallback", "matched": True, "index": 0}.items()
    assert outputs["is_default"]


async def test_a_true_branch_after_the_default_still_wins() -> None:
    outputs = await choose([{"name": "fallback"}, {"name": "a", "condition": "yes"}])

    assert outputs["branch"] == "a"
    assert not outputs["is_default"]


async def test_nothing_holds_and_no_default() -> None:
    outputs = await choose([{"name": "a", "condition": "False"}, {"name": "b", "condition": ""}])

    assert outputs == {
        "branch": None,
        "matched": False,
        "index": None,
        "is_default": False,
        "matched_branch": None,
        "matched_label": "none",
        "target_step": None,
        "result": None,
    }


@pytest.mark.parametrize(
    "value", [True, "true", "yes", "1", "on", "anything", 1, 2.5, [0], {"a": 1}, " TRUE "]
)
def test_truthy_values(value: Any) -> None:
    assert truthy(value)


@pytest.mark.parametrize(
    "value", [False, "false", "False", "no", "off", "0", "", "  ", "none", "null", None, 0, 0.0, []]
)
def test_falsy_values(value: Any) -> None:
    assert not truthy(value)


async def test_an_unrendered_template_condition_fails_instead_of_counting_as_true() -> None:
    outcome = await execute_raw(
        ConditionalAction, {"branches": [{"name": "a", "condition": "{{ params.x > 1 }}"}]}
    )

    assert not outcome.success
    assert "branch 0 ('a')" in (outcome.error or "")
    assert "not rendered" in (outcome.error or "")


async def test_rendered_non_string_conditions_are_accepted() -> None:
    outcome = await execute_raw(
        ConditionalAction,
        {"branches": [{"name": "a", "condition": 0}, {"name": "b", "condition": [1]}]},
    )

    assert outcome.outputs["branch"] == "b"


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        ("nope", "got string"),
        ([{"condition": True}], "branch 0 must be an object with a string 'name'"),
    ],
)
async def test_malformed_branches_fail(branches: Any, message: str) -> None:
    outcome = await execute_raw(ConditionalAction, {"branches": branches})

    assert not outcome.success
    assert message in (outcome.error or "")


async def test_budpipeline_branches_give_its_outputs_and_target() -> None:
    outputs = await choose(
        [
            {"id": "urgent", "label": "Urgent", "condition": False, "target_step": "page"},
            {"id": "normal", "label": "Normal", "condition": True, "target_step": "queue"},
        ]
    )

    assert (
        outputs.items()
        >= {
            "matched_branch": "normal",
            "matched_label": "Normal",
            "target_step": "queue",
            "result": "Normal",
            "branch": "normal",
        }.items()
    )


async def test_a_budpipeline_branch_without_a_condition_holds_where_it_stands() -> None:
    outputs = await choose(
        [{"id": "first", "target_step": "a"}, {"id": "second", "condition": True}]
    )

    assert outputs["matched_branch"] == "first"
    assert outputs["matched_label"] == "first"


@pytest.mark.parametrize(
    ("params", "branch", "result"),
    [
        ({}, "true", {"branch": "true"}),
        ({"condition": False}, "false", {"branch": "false"}),
        ({"condition": True, "true_result": {"go": 1}}, "true", {"go": 1}),
        ({"branches": [], "condition": False, "false_result": "no"}, "false", "no"),
    ],
)
async def test_without_branches_the_condition_picks_a_result(
    params: dict[str, Any], branch: str, result: Any
) -> None:
    outcome = await execute_raw(ConditionalAction, params)

    assert outcome.success
    assert outcome.outputs["branch"] == branch
    assert outcome.outputs["matched_branch"] == branch
    assert outcome.outputs["result"] == result
    assert outcome.outputs["target_step"] is None
