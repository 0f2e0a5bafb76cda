from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import EventAction, StepStatus
from conveyor.actions.builtin.wait_for_event import WaitForEventAction
from conveyor.errors import ParamValidationError
from tests.unit.actions.builtin.helpers import deliver, execute, execute_raw, make_context


async def on(event: dict[str, Any], event_type: str = "", **params: Any) -> Any:
    return await deliver(
        WaitForEventAction,
        event,
        event_type=event_type,
        params={"correlation_id": "wf-1", **params},
    )


async def test_execute_waits_on_the_correlation_id() -> None:
    outcome = await execute(WaitForEventAction, correlation_id="wf-1", timeout_seconds=60)

    assert outcome.success
    assert outcome.awaiting_event
    assert outcome.external_workflow_id == "wf-1"
    assert outcome.timeout_seconds == 60
    assert outcome.outputs == {"correlation_id": "wf-1"}


async def test_timeout_defaults_to_an_hour() -> None:
    outcome = await execute(WaitForEventAction, correlation_id=42)

    assert outcome.external_workflow_id == "42"
    assert outcome.timeout_seconds == 3600


def test_correlation_id_is_required() -> None:
    with pytest.raises(ParamValidationError, match="correlation_id"):
        make_context(WaitForEventAction)


async def test_empty_correlation_id_past_validation_fails() -> None:
    outcome = await execute_raw(WaitForEventAction, {"correlation_id": "  "})

    assert not outcome.success
    assert "correlation_id" in (outcome.error or "")


async def test_match_that_is_not_an_object_fails() -> None:
    outcome = await execute(WaitForEventAction, correlation_id="x", match=[1])

    assert not outcome.success
    assert "match must be a JSON object" in (outcome.error or "")


@pytest.mark.parametrize(
    "event",
    [
        {"status": "FAILED", "message": "disk full"},
        {"payload": {"status": "failed", "message": "disk full"}},
        {"payload": {"content": {"status": "FAILED", "message": "disk full"}}},
        {"data": {"status": "error", "error": "disk full"}},
    ],
)
async def test_failure_status_fails_the_step_with_the_events_message(
    event: dict[str, Any],
) -> None:
    result = await on(event)

    assert result.action is EventAction.COMPLETE
    assert result.status is StepStatus.FAILED
    assert result.error == "disk full"


async def test_failure_without_message_says_so() -> None:
    result = await on({"status": "FAILED"})

    assert result.error == "the event reported status FAILED"


async def test_failure_wins_even_when_a_match_is_set() -> None:
    result = await on({"status": "FAILED"}, match={"payload.event": "results"})

    assert result.status is StepStatus.FAILED


@pytest.mark.parametrize(
    "event", [{"progress": 40, "message": "copying"}, {"payload": {"progress": 40.0}}]
)
async def test_progress_events_update_progress(event: dict[str, Any]) -> None:
    result = await on(event)

    assert result.action is EventAction.UPDATE_PROGRESS
    assert result.progress == 40


async def test_progress_is_clamped_to_0_100() -> None:
    assert (await on({"progress": 250})).progress == 100


async def test_match_completes_with_the_event() -> None:
    event = {"type": "approval", "payload": {"event": "results", "approved": True}}

    result = await on(event, "approval", match={"payload.event": "results"})

    assert result.action is EventAction.COMPLETE
    assert result.status is StepStatus.COMPLETED
    assert result.outputs["event"] == event
    assert result.outputs["event_type"] == "approval"
    assert result.outputs["correlation_id"] == "wf-1"


async def test_non_matching_events_are_ignored() -> None:
    result = await on({"payload": {"event": "started"}}, match={"payload.event": "results"})

    assert result.action is EventAction.IGNORE


async def test_without_match_a_plain_event_completes_and_a_running_one_is_ignored() -> None:
    done = await on({"approved": True, "by": "ada"})
    running = await on({"status": "RUNNING"})
    succeeded = await on({"payload": {"status": "COMPLETED", "progress": 100}})

    assert done.status is StepStatus.COMPLETED
    assert done.outputs["event"] == {"approved": True, "by": "ada"}
    assert running.action is EventAction.IGNORE
    assert succeeded.status is StepStatus.COMPLETED
    assert succeeded.outputs["status"] == "COMPLETED"


async def test_status_path_reads_the_status_elsewhere() -> None:
    result = await on({"result": {"state": "failed"}, "message": "no"}, status_path="result.state")
    ignored = await on({"status": "FAILED"}, status_path="result.state")

    assert result.status is StepStatus.FAILED
    assert ignored.status is StepStatus.COMPLETED  # its status is not where it was told to look


async def test_event_type_falls_back_to_the_events_own_type() -> None:
    result = await on({"type": "webhook"})

    assert result.outputs["event_type"] == "webhook"
