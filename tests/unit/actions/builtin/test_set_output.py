from __future__ import annotations

from conveyor.actions.builtin.set_output import SetOutputAction
from tests.unit.actions.builtin.helpers import execute, execute_raw


async def test_values_become_the_outputs() -> None:
    result = await execute(SetOutputAction, values={"total": 3, "names": ["a"], "none": None})

    assert result.success
    assert result.outputs == {"total": 3, "names": ["a"], "none": None}


async def test_values_given_as_json_text_are_parsed() -> None:
    result = await execute(SetOutputAction, values='{"a": 1}')

    assert result.outputs == {"a": 1}


def test_declares_dynamic_outputs() -> None:
    assert SetOutputAction.meta.dynamic_outputs


async def test_values_that_are_not_an_object_fail() -> None:
    result = await execute(SetOutputAction, values=[1, 2])

    assert not result.success
    assert "JSON object" in (result.error or "")
    assert "list" in (result.error or "")


async def test_empty_output_name_fails() -> None:
    result = await execute_raw(SetOutputAction, {"values": {"": 1}})

    assert not result.success
    assert "non-empty" in (result.error or "")
