from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.actions.builtin.wait_until import WaitUntilAction, WaitUntilFailed, wake_time
from tests.unit.actions.builtin.helpers import execute, execute_raw

NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def test_hours_from_now() -> None:
    assert wake_time(2.5, None, "UTC", NOW) == NOW + timedelta(hours=2.5)


def test_a_time_of_day_is_its_next_occurrence_in_the_zone() -> None:
    # 10:30 UTC is 11:30 in Paris (winter): 12:00 is later today, 09:00 is tomorrow.
    assert wake_time(None, "12:00", "Europe/Paris", NOW) == datetime(2026, 3, 2, 11, tzinfo=UTC)
    assert wake_time(None, "09:00", "Europe/Paris", NOW) == datetime(2026, 3, 3, 8, tzinfo=UTC)


def test_a_date_time_without_offset_is_read_in_the_zone() -> None:
    assert wake_time(None, "2026-03-03T09:00:00", "UTC", NOW) == datetime(2026, 3, 3, 9, tzinfo=UTC)
    assert wake_time(None, "2026-03-02T12:00:00Z", "Asia/Tokyo", NOW) == datetime(
        2026, 3, 2, 12, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("hours", "until", "zone", "message"),
    [
        (None, None, "UTC", "give either duration_hours or until_time"),
        (1, "09:00", "UTC", "not both or neither"),
        (200, None, "UTC", "between 0 and 168"),
        ("soon", None, "UTC", "duration_hours must be a number, got string"),
        (None, "2026-03-01T09:00:00", "UTC", "is in the past"),
        (None, "2026-04-01T09:00:00", "UTC", "more than 168 hours away"),
        (None, "9 o'clock", "UTC", "neither an ISO 8601 date-time"),
        (None, "09:00", "Mars/Olympus", "not an IANA time zone name"),
    ],
)
def test_what_cannot_be_waited_for_is_named(
    hours: Any, until: Any, zone: str, message: str
) -> None:
    with pytest.raises(WaitUntilFailed, match=message):
        wake_time(hours, until, zone, NOW)


async def test_the_step_sleeps_on_a_durable_timer_with_budpipelines_outputs() -> None:
    result = await execute(WaitUntilAction, duration_hours=0.5)

    assert result.success
    assert result.sleep_seconds == pytest.approx(1800, abs=5)
    assert result.outputs["waited"] is True
    assert result.outputs["wait_duration_seconds"] == pytest.approx(1800, abs=5)
    assert result.outputs["scheduled_wake_time"] == result.outputs["actual_wake_time"]


async def test_a_bad_param_fails_the_step_with_the_reason() -> None:
    result = await execute_raw(WaitUntilAction, {"until_time": "noon"})

    assert not result.success
    assert "neither an ISO 8601 date-time" in (result.error or "")
