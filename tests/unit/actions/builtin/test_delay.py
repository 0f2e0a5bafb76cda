from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import EventAction
from conveyor.actions.builtin.delay import MAX_SECONDS, DelayAction
from conveyor.errors import ParamValidationError
from tests.unit.actions.builtin.helpers import deliver, execute, execute_raw, make_context


@pytest.mark.parametrize("seconds", [0, 0.5, 90, MAX_SECONDS])
async def test_returns_a_durable_sleep(seconds: float) -> None:
    outcome = await execute(DelayAction, seconds=seconds)

    assert outcome.success
    assert outcome.sleep_seconds == seconds
    assert not outcome.awaiting_event
    assert outcome.outputs == {"delayed_seconds": seconds}


async def test_seconds_given_as_text_are_coerced() -> None:
    outcome = await execute(DelayAction, seconds="2.5")

    assert outcome.sleep_seconds == 2.5


@pytest.mark.parametrize("seconds", [-1, MAX_SECONDS + 1])
def test_validation_refuses_out_of_range(seconds: float) -> None:
    with pytest.raises(ParamValidationError, match="seconds"):
        make_context(DelayAction, seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-1, "between 0 and"),
        (float("inf"), "between 0 and"),
        ("soon", "must be a number"),
        (True, "must be a number"),
    ],
)
async def test_bad_seconds_past_validation_fail(seconds: Any, message: str) -> None:
    outcome = await execute_raw(DelayAction, {"seconds": seconds})

    assert not outcome.success
    assert message in (outcome.error or "")


async def test_events_are_ignored() -> None:
    result = await deliver(DelayAction, {"status": "COMPLETED"})

    assert result.action is EventAction.IGNORE
