"""`stored`: what a run keeps of a value, the same on every backend."""

from __future__ import annotations

import math
from typing import Any

import pytest
from markupsafe import Markup

from conveyor.actions import EventAction, EventResult, StepStatus
from conveyor.engine.values import INT_MAX, INT_MIN, checked_event_result, stored
from conveyor.errors import UnstorableValueError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        ("text", "text"),
        (Markup("<b>"), "<b>"),
        (INT_MAX, INT_MAX),
        (INT_MIN, INT_MIN),
        (1.5, 1.5),
        ((1, (2, 3)), [1, [2, 3]]),
        (iter([1, 2]), [1, 2]),
        ((n * 2 for n in range(3)), [0, 2, 4]),
        (range(3), [0, 1, 2]),
        (
            {"a": (1,), 2: None, None: 1, False: 0, 1.5: "x"},
            {
                "a": [1],
                "2": None,
                "null": 1,
                "false": 0,
                "1.5": "x",
            },
        ),
    ],
)
def test_values_become_what_json_holds(value: Any, expected: Any) -> None:
    result = stored(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.inf, "params.x: inf is not a number a run can store (only finite numbers are)"),
        ([1, -math.inf], "params.x[1]: -inf is not a number a run can store"),
        ({"k": math.nan}, "params.x.k: nan is not a number a run can store"),
        (INT_MAX + 1, "params.x: the integer 9223372036854775808 is outside the 64-bit range"),
        (INT_MIN - 1, "params.x: the integer -9223372036854775809 is outside the 64-bit range"),
        (10**1300, "params.x: the integer of more than 1,000 digits is outside the 64-bit"),
        ({1, 2}, "params.x: a set has no order a run can store; use `| list | sort`"),
        (b"bytes", "params.x: a bytes is not a value a run can store"),
        (object(), "params.x: a object is not a value a run can store"),
        ({1: "a", "1": "b"}, "params.x: two keys are both '1' once stored as text"),
        ({(1, 2): "a"}, "params.x: a key of type tuple cannot be stored (keys are strings)"),
    ],
)
def test_what_json_cannot_hold_exactly_is_refused_by_path(value: Any, message: str) -> None:
    with pytest.raises(UnstorableValueError) as caught:
        stored(value, "params.x")
    assert str(caught.value).startswith(message)


def test_an_iterator_that_fails_while_read_is_the_values_error() -> None:
    def items() -> Any:
        yield 1
        raise KeyError("gone")

    with pytest.raises(UnstorableValueError, match=r"^outputs: the template failed while its "):
        stored(items(), "outputs")


def test_an_event_result_with_outputs_a_run_cannot_store_becomes_a_failure() -> None:
    good = EventResult(
        action=EventAction.COMPLETE, status=StepStatus.COMPLETED, outputs={"t": (1, 2)}
    )
    assert checked_event_result(good).outputs == {"t": [1, 2]}
    bad = EventResult(
        action=EventAction.COMPLETE, status=StepStatus.COMPLETED, outputs={"n": math.inf}
    )
    checked = checked_event_result(bad)
    assert checked.status is StepStatus.FAILED
    assert checked.error == (
        "on_event returned outputs a run cannot store: outputs.n: inf is not a number a run "
        "can store (only finite numbers are)"
    )
