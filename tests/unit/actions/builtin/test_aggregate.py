from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions.builtin.aggregate import AggregateAction
from tests.unit.actions.builtin.helpers import execute, execute_raw

ORDERS = [
    {"id": 1, "total": 10, "tags": ["a"], "region": "eu"},
    {"id": 2, "total": 2.5, "tags": ["b", "a"], "region": "us"},
    {"id": 3, "total": 7, "tags": [], "region": "eu"},
]


async def result_of(**params: Any) -> Any:
    outcome = await execute(AggregateAction, **params)
    assert outcome.success, outcome.error
    assert outcome.outputs["count"] == len(params["items"])
    return outcome.outputs["result"]


@pytest.mark.parametrize(
    ("operation", "expected"),
    [("count", 3), ("sum", 19.5), ("avg", 6.5), ("min", 2.5), ("max", 10)],
)
async def test_numeric_operations_on_a_field(operation: str, expected: float) -> None:
    assert await result_of(items=ORDERS, operation=operation, field="total") == expected


async def test_numeric_operations_on_the_items() -> None:
    assert await result_of(items=[1, 2, 3], operation="sum") == 6
    assert await result_of(items=[4, 2], operation="avg") == 3


async def test_empty_lists() -> None:
    assert await result_of(items=[], operation="sum") == 0
    assert await result_of(items=[], operation="avg") is None
    assert await result_of(items=[], operation="max") is None
    assert await result_of(items=[], operation="count") == 0


async def test_sum_of_a_non_number_names_the_index() -> None:
    outcome = await execute(AggregateAction, items=[1, 2, "3"], operation="sum")

    assert not outcome.success
    assert "item 2 is string" in (outcome.error or "")
    assert outcome.outputs == {"count": 3, "operation": "sum"}


async def test_sum_of_a_field_names_the_index_and_field() -> None:
    outcome = await execute(
        AggregateAction, items=[{"n": 1}, {"n": True}], operation="sum", field="n"
    )

    assert not outcome.success
    assert "the 'n' of item 1 is boolean" in (outcome.error or "")


async def test_missing_field_names_the_item() -> None:
    outcome = await execute(AggregateAction, items=[{"n": 1}, {}], operation="max", field="n")

    assert not outcome.success
    assert "item 1 has no field 'n'" in (outcome.error or "")


async def test_concat_lists_and_strings() -> None:
    assert await result_of(items=ORDERS, operation="concat", field="tags") == ["a", "b", "a"]
    assert await result_of(items=["a", "b"], operation="concat", separator=", ") == "a, b"


async def test_concat_of_mixed_values_fails() -> None:
    outcome = await execute(AggregateAction, items=[[1], "x"], operation="concat")

    assert not outcome.success
    assert "item 1 is string" in (outcome.error or "")


async def test_merge_objects_later_wins() -> None:
    merged = await result_of(items=[{"a": 1, "b": 1}, {"b": 2}], operation="merge")

    assert merged == {"a": 1, "b": 2}
    outcome = await execute(AggregateAction, items=[{}, [1]], operation="merge")
    assert "item 1 is list, not an object" in (outcome.error or "")


async def test_unique_keeps_first_seen_order_also_for_objects() -> None:
    assert await result_of(items=ORDERS, operation="unique", field="region") == ["eu", "us"]
    assert await result_of(items=[{"a": 1}, {"a": 1}, [1]], operation="unique") == [
        {"a": 1},
        [1],
    ]


async def test_group_by() -> None:
    groups = await result_of(items=ORDERS, operation="group_by", field="region")

    assert {key: [o["id"] for o in value] for key, value in groups.items()} == {
        "eu": [1, 3],
        "us": [2],
    }
    by_number = await result_of(items=[{"k": 1}, {"k": 1}], operation="group_by", field="k")
    assert list(by_number) == ["1"]


async def test_group_by_needs_a_field() -> None:
    outcome = await execute(AggregateAction, items=[1], operation="group_by")

    assert not outcome.success
    assert "needs field" in (outcome.error or "")


async def test_items_must_be_a_list() -> None:
    outcome = await execute(AggregateAction, items={"a": 1}, operation="count")

    assert not outcome.success
    assert "got object" in (outcome.error or "")


async def test_unknown_operation_fails() -> None:
    outcome = await execute_raw(AggregateAction, {"items": [], "operation": "median"})

    assert not outcome.success
    assert "'median'" in (outcome.error or "")
