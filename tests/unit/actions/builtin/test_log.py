from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from conveyor.actions.builtin.log import LogAction
from conveyor.errors import ParamValidationError
from tests.unit.actions.builtin.helpers import execute, execute_raw, make_context


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
async def test_logs_through_the_step_logger_at_the_level(level: str) -> None:
    with capture_logs() as logs:
        result = await execute(LogAction, message="hello", level=level)

    assert result.success
    assert result.outputs == {"logged": True, "message": "hello", "level": level}
    (entry,) = [e for e in logs if e["event"] == "pipeline_log"]
    assert entry["log_level"] == level
    assert entry["message"] == "hello"
    assert entry["run_id"] == "run-1"
    assert entry["step_id"] == "step"


async def test_level_defaults_to_info() -> None:
    with capture_logs() as logs:
        result = await execute(LogAction, message="m")

    assert result.outputs["level"] == "info"
    assert logs[0]["log_level"] == "info"


def test_validation_refuses_an_unknown_level() -> None:
    with pytest.raises(ParamValidationError, match="level"):
        make_context(LogAction, message="m", level="loud")


async def test_unknown_level_past_validation_is_a_failed_result() -> None:
    result = await execute_raw(LogAction, {"message": "m", "level": "loud"})

    assert not result.success
    assert "'loud'" in (result.error or "")
    assert result.outputs["logged"] is False
