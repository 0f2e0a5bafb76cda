"""ActionResult and EventResult refuse combinations the engine could not act on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.actions import ActionResult, EventAction, EventResult, StepStatus


def test_a_plain_success_and_a_failure_are_valid() -> None:
    assert ActionResult(success=True, outputs={"x": 1}).outputs == {"x": 1}
    failed = ActionResult(success=False, error="boom")
    assert (failed.success, failed.error, failed.outputs) == (False, "boom", {})


def test_waiting_for_an_event_with_its_correlation_id_is_valid() -> None:
    result = ActionResult(
        success=True, awaiting_event=True, external_workflow_id="wf-1", timeout_seconds=300
    )
    assert result.external_workflow_id == "wf-1"


@pytest.mark.parametrize("missing", [None, ""])
def test_waiting_needs_the_id_events_will_carry(missing: str | None) -> None:
    with pytest.raises(ValidationError, match="awaiting_event=True needs external_workflow_id"):
        ActionResult(success=True, awaiting_event=True, external_workflow_id=missing)


def test_a_failure_cannot_wait() -> None:
    with pytest.raises(ValidationError, match="awaiting_event=True needs success=True"):
        ActionResult(success=False, awaiting_event=True, external_workflow_id="wf-1")


def test_a_durable_sleep_needs_success_and_excludes_waiting() -> None:
    assert ActionResult(success=True, sleep_seconds=0).sleep_seconds == 0
    with pytest.raises(ValidationError, match="sleep_seconds needs success=True"):
        ActionResult(success=False, sleep_seconds=5)
    with pytest.raises(ValidationError, match="cannot be combined"):
        ActionResult(success=True, sleep_seconds=5, awaiting_event=True, external_workflow_id="w")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"sleep_seconds": -1}, "sleep_seconds"),
        ({"output": {}}, "output"),
    ],
)
def test_action_result_fields_are_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ActionResult(success=True, **fields)


@pytest.mark.parametrize("status", [StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.TIMEOUT])
def test_complete_takes_a_final_status(status: StepStatus) -> None:
    assert EventResult(action=EventAction.COMPLETE, status=status).status is status


def test_complete_needs_a_status() -> None:
    with pytest.raises(ValidationError, match="action COMPLETE needs a status"):
        EventResult(action=EventAction.COMPLETE)


@pytest.mark.parametrize(
    "status", [StepStatus.RUNNING, StepStatus.WAITING, StepStatus.SKIPPED, StepStatus.PENDING]
)
def test_complete_refuses_a_status_that_does_not_finish_the_step(status: StepStatus) -> None:
    with pytest.raises(ValidationError, match=f"not {status.name}"):
        EventResult(action=EventAction.COMPLETE, status=status)


def test_update_progress_needs_a_progress_between_0_and_100() -> None:
    assert EventResult(action=EventAction.UPDATE_PROGRESS, progress=40).progress == 40
    with pytest.raises(ValidationError, match="UPDATE_PROGRESS needs progress"):
        EventResult(action=EventAction.UPDATE_PROGRESS, message="half way")
    with pytest.raises(ValidationError, match="progress"):
        EventResult(action=EventAction.UPDATE_PROGRESS, progress=101)


def test_ignore_needs_nothing_else() -> None:
    result = EventResult(action=EventAction.IGNORE)
    assert (result.status, result.outputs, result.error) == (None, {}, None)


def test_event_results_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        EventResult(action=EventAction.IGNORE, state="x")  # type: ignore[call-arg]


def test_event_actions_parse_from_their_values() -> None:
    assert EventResult.model_validate({"action": "complete", "status": "failed"}).status is (
        StepStatus.FAILED
    )


def test_terminal_statuses() -> None:
    terminal = {s for s in StepStatus if s.is_terminal}
    assert terminal == {
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
