from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions.builtin.transform import TransformAction
from tests.unit.actions.builtin.helpers import execute, execute_raw

PEOPLE = [
    {"name": "ada", "age": 36, "team": {"id": 1}},
    {"name": "bob", "age": 25, "team": {"id": 2}},
    {"name": "cy", "age": 41, "team": {"id": 1}},
]


async def result_of(**params: Any) -> Any:
    outcome = await execute(TransformAction, **params)
    assert outcome.success, outcome.error
    return outcome.outputs["result"]


async def error_of(**params: Any) -> str:
    outcome = await execute(TransformAction, **params)
    assert not outcome.success
    assert outcome.error
    return outcome.error


async def test_template_renders_in_the_sandbox_with_input_in_scope() -> None:
    text = await result_of(
        input={"name": "ada"}, operation="template", template="Hello {{ input.name }}!"
    )

    assert text == "Hello ada!"


async def test_template_of_one_expression_keeps_its_type() -> None:
    names = await result_of(
        input=PEOPLE, operation="template", template="{{ input | map(attribute='name') | list }}"
    )

    assert names == ["ada", "bob", "cy"]


async def test_template_without_template_param_fails() -> None:
    assert "needs the template param" in await error_of(input=1, operation="template")


async def test_template_with_an_undefined_name_fails() -> None:
    assert "undefined" in await error_of(input=1, operation="template", template="{{ nope }}")


async def test_template_refused_by_the_sandbox_fails() -> None:
    error = await error_of(input={}, operation="template", template="{{ input.__class__.__mro__ }}")

    assert "sandbox" in error or "unsafe" in error or "undefined" in error


async def test_pick_and_omit_on_an_object_and_on_a_list() -> None:
    assert await result_of(
        input={"a": 1, "b": 2, "c": 3}, operation="pick", fields=["a", "c", "z"]
    ) == {
        "a": 1,
        "c": 3,
    }
    assert await result_of(input=PEOPLE, operation="omit", fields="age, team") == [
        {"name": "ada"},
        {"name": "bob"},
        {"name": "cy"},
    ]


async def test_pick_without_fields_fails() -> None:
    assert "needs fields" in await error_of(input={"a": 1}, operation="pick")


async def test_pick_of_a_list_with_a_non_object_names_the_item() -> None:
    assert "item 1 is number" in await error_of(input=[{}, 5], operation="pick", fields=["a"])


async def test_rename() -> None:
    renamed = await result_of(
        input={"id": 1, "nm": "x"}, operation="rename", mapping={"nm": "name"}
    )

    assert renamed == {"id": 1, "name": "x"}
    assert "mapping" in await error_of(input={}, operation="rename", mapping=["x"])


async def test_flatten_object_and_list() -> None:
    flat = await result_of(input={"a": {"b": {"c": 1}, "d": [1]}, "e": {}}, operation="flatten")

    assert flat == {"a.b.c": 1, "a.d": [1], "e": {}}
    assert await result_of(input={"a": {"b": 1}}, operation="flatten", separator="/") == {"a/b": 1}
    assert await result_of(input=[1, [2, [3]], 4], operation="flatten") == [1, 2, [3], 4]
    assert "object or a list" in await error_of(input="text", operation="flatten")


async def test_map_plucks_a_dotted_field() -> None:
    assert await result_of(input=PEOPLE, operation="map", field="team.id") == [1, 2, 1]


async def test_map_names_the_item_missing_the_field() -> None:
    error = await error_of(input=[{"a": 1}, {"b": 2}], operation="map", field="a")

    assert "item 1 has no field 'a'" in error


async def test_map_needs_a_list_and_a_field() -> None:
    assert "needs a list, got object" in await error_of(input={}, operation="map", field="a")
    assert "needs field" in await error_of(input=[], operation="map")


async def test_filter_keeps_items_whose_field_equals_the_value() -> None:
    kept = await result_of(input=PEOPLE, operation="filter", field="team.id", value=1)

    assert [p["name"] for p in kept] == ["ada", "cy"]


async def test_sort_by_field_and_descending() -> None:
    by_age = await result_of(input=PEOPLE, operation="sort", field="age")
    oldest_first = await result_of(input=PEOPLE, operation="sort", field="age", descending=True)

    assert [p["name"] for p in by_age] == ["bob", "ada", "cy"]
    assert [p["name"] for p in oldest_first] == ["cy", "ada", "bob"]
    assert await result_of(input=[3, 1, 2], operation="sort") == [1, 2, 3]


async def test_sort_of_values_that_cannot_be_compared_fails() -> None:
    assert "failed" in await error_of(input=[1, "a"], operation="sort")


async def test_to_json_and_from_json() -> None:
    assert await result_of(input={"a": [1, "é"]}, operation="to_json") == '{"a": [1, "é"]}'
    assert await result_of(input={"a": 1}, operation="to_json", indent=2) == '{\n  "a": 1\n}'
    assert await result_of(input="5", operation="from_json") == 5
    assert await result_of(input='"quoted"', operation="from_json") == "quoted"
    # Text holding an object or array is decoded by the JSON param on the way in already.
    assert await result_of(input='{"already": "decoded"}', operation="from_json") == {
        "already": "decoded"
    }


async def test_from_json_of_bad_text_fails_with_the_position() -> None:
    error = await error_of(input="{oops", operation="from_json")

    assert "not JSON" in error
    assert "position" in error


async def test_unknown_operation_names_the_known_ones() -> None:
    outcome = await execute_raw(TransformAction, {"input": 1, "operation": "explode"})

    assert not outcome.success
    assert "'explode'" in (outcome.error or "")
    assert "from_json" in (outcome.error or "")


@pytest.mark.parametrize("operation", ["pick", "omit", "rename"])
async def test_object_operations_refuse_scalars(operation: str) -> None:
    error = await error_of(input=5, operation=operation, fields=["a"], mapping={"a": "b"})

    assert "got number" in error
