"""NOMAD's synchronous action functions: from plain code and from inside a running loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from conveyor.backends.temporal.connection import TemporalConnectionError
from conveyor.backends.temporal.nomad import utils
from conveyor.config import Settings
from conveyor.errors import UnknownActionError

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


def wait_for_end(workflow_id: str, settings: Settings) -> str:
    deadline = time.monotonic() + 60
    status = utils.get_action_status(workflow_id, settings=settings)
    while status.name == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = utils.get_action_status(workflow_id, settings=settings)
    return status.name


async def test_the_functions_work_inside_a_running_event_loop(
    temporal_settings: Settings, temporal_workers: object
) -> None:
    asyncio.get_running_loop()  # This test body runs on a loop, as async NOMAD code would.
    try:
        workflow_id = utils.start_action(
            "log", {"message": "from a loop"}, owner="ada", settings=temporal_settings
        )
        assert await asyncio.to_thread(wait_for_end, workflow_id, temporal_settings) == (
            "COMPLETED"
        )
        result = utils.get_action_result(workflow_id, settings=temporal_settings)
        assert result["message"] == "from a loop"
        assert utils.stop_action("conveyor-run-never", settings=temporal_settings).name == (
            "UNKNOWN"
        )
    finally:
        utils.close()


def test_the_functions_work_from_plain_code_on_the_embedded_engine(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "conveyor.db")
    try:
        workflow_id = utils.start_action("log", {"message": "plain"}, settings=settings)
        assert wait_for_end(workflow_id, settings) == "COMPLETED"
        assert utils.get_action_result(workflow_id, settings=settings)["message"] == "plain"
        with pytest.raises(UnknownActionError):
            utils.start_action("no_such_action", {}, settings=settings)
    finally:
        utils.close()


def test_an_unreachable_cluster_is_one_line() -> None:
    settings = Settings(backend="temporal", temporal_address="127.0.0.1:1")
    try:
        with pytest.raises(TemporalConnectionError) as raised:
            utils.get_action_status("x", settings=settings)
    finally:
        utils.close()
    assert str(raised.value) == "cannot connect to Temporal at 127.0.0.1:1: connection refused"
