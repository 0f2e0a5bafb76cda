from __future__ import annotations

from conveyor.actions.builtin.fail import FailAction
from tests.unit.actions.builtin.helpers import execute, execute_raw


async def test_fails_with_the_message() -> None:
    result = await execute(FailAction, message="quota exceeded for team-a")

    assert not result.success
    assert result.error == "quota exceeded for team-a"
    assert result.outputs == {
        "message": "quota exceeded for team-a",
        "error_code": "INTENTIONAL_FAILURE",
    }


async def test_the_error_code_is_an_output() -> None:
    result = await execute(FailAction, message="bad input", error_code="VALIDATION_ERROR")

    assert result.outputs == {"message": "bad input", "error_code": "VALIDATION_ERROR"}


async def test_without_a_message_it_still_fails_with_the_default() -> None:
    result = await execute_raw(FailAction, {})

    assert not result.success
    assert result.error == "Intentional failure"
