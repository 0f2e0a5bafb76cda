"""The `approval` action, the form checks and `conveyor.human`'s requests and decision events.

The last test runs approvals on a real embedded engine (a SQLite file), across a restart.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import conveyor.human
from conveyor.actions import (
    ActionContext,
    ActionRegistry,
    EventAction,
    EventContext,
    EventResult,
    StepStatus,
    definition_of,
    validated_params,
)
from conveyor.actions.builtin.approval import (
    ApprovalAction,
    correlation_id,
    form_problems,
    schema_problem,
)
from conveyor.backends.local import LocalBackend
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.errors import ParamValidationError
from conveyor.events import RouteStatus
from conveyor.human import (
    Decision,
    InputRequest,
    Submission,
    decision_event,
    open_requests,
    step_actions,
    submission_problems,
)
from conveyor.pipeline import PipelineSpec
from conveyor.runs import ItemView, RunView, StepView

FORM = {
    "type": "object",
    "required": ["ticket", "reviewers"],
    "properties": {
        "ticket": {"type": "string"},
        "reviewers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "weight": {"type": "number"}},
            },
        },
    },
}

DEFINITION = definition_of(ApprovalAction)


def _context(index: int | None = None, attempt: int = 1, **params: Any) -> ActionContext:
    return ActionContext(
        step_id="ask",
        execution_id="run-1",
        params=validated_params(DEFINITION.meta, {"title": "Ship?", **params}),
        attempt=attempt,
        item_index=index,
    )


async def _on(event: dict[str, Any], **params: Any) -> EventResult:
    context = EventContext(
        step_execution_id="ask",
        execution_id="run-1",
        external_workflow_id=correlation_id("run-1", "ask", None, 1),
        event_data=event,
        step_id="ask",
        params=validated_params(DEFINITION.meta, {"title": "Ship?", **params}),
    )
    return await DEFINITION.new_executor().on_event(context)


# ---------------------------------------------------------------- execute


async def test_execute_opens_a_request_on_the_units_own_correlation_id() -> None:
    before = datetime.now(UTC)
    outcome = await DEFINITION.new_executor().execute(
        _context(description="Prod", form=FORM, timeout_seconds=60)
    )

    assert outcome.success and outcome.awaiting_event
    assert outcome.external_workflow_id == "human:run-1:ask:1"
    assert outcome.timeout_seconds == 60
    request = outcome.outputs["request"]
    assert {k: request[k] for k in ("title", "description", "form", "approvers")} == {
        "title": "Ship?",
        "description": "Prod",
        "form": FORM,
        "approvers": [],
    }
    opened = datetime.fromisoformat(request["opened_at"])
    expires = datetime.fromisoformat(request["expires_at"])
    assert opened >= before
    assert (expires - opened).total_seconds() == 60


async def test_items_and_attempts_wait_on_ids_of_their_own() -> None:
    item = await DEFINITION.new_executor().execute(_context(index=3, attempt=2))

    assert item.external_workflow_id == "human:run-1:ask[3]:2"
    assert item.timeout_seconds == 7 * 24 * 3600


async def test_a_form_that_is_not_a_json_schema_fails_the_step() -> None:
    outcome = await DEFINITION.new_executor().execute(
        _context(form={"type": "object", "properties": {"n": {"type": "nonsense"}}})
    )

    assert not outcome.success
    assert (outcome.error or "").startswith("form is not a valid JSON schema")
    assert "properties.n.type" in (outcome.error or "")


async def test_approvers_must_be_a_list_of_names() -> None:
    outcome = await DEFINITION.new_executor().execute(_context(approvers={"a": 1}))

    assert not outcome.success
    assert "approvers must be a list of non-empty strings" in (outcome.error or "")


def test_params_are_checked_when_declared() -> None:
    with pytest.raises(ParamValidationError, match="title"):
        validated_params(DEFINITION.meta, {})
    with pytest.raises(ParamValidationError, match="on_reject"):
        validated_params(DEFINITION.meta, {"title": "x", "on_reject": "shrug"})
    with pytest.raises(ParamValidationError, match="timeout_seconds"):
        validated_params(DEFINITION.meta, {"title": "x", "timeout_seconds": 0})


# ---------------------------------------------------------------- on_event


async def test_an_approval_that_fits_the_form_completes_with_the_decision() -> None:
    data = {"ticket": "T-1", "reviewers": [{"name": "ann"}]}
    result = await _on(
        {"decision": "approve", "data": data, "decided_by": "ann", "comment": "ok"}, form=FORM
    )

    assert result.action is EventAction.COMPLETE
    assert result.status is StepStatus.COMPLETED
    assert result.outputs == {
        "decision": "approve",
        "data": data,
        "decided_by": "ann",
        "comment": "ok",
    }


@pytest.mark.parametrize(
    "event",
    [
        {"decision": "approve", "data": {"ticket": "T-1"}},
        {"decision": "maybe"},
        {"status": "COMPLETED"},
        {},
    ],
    ids=["data-misses-the-form", "unknown-decision", "no-decision", "empty"],
)
async def test_an_event_that_is_not_a_valid_decision_leaves_the_request_open(
    event: dict[str, Any],
) -> None:
    assert (await _on(event, form=FORM)).action is EventAction.IGNORE


async def test_a_rejection_fails_the_step_by_default() -> None:
    result = await _on({"decision": "reject", "decided_by": "ann", "comment": "no"})

    assert result.status is StepStatus.FAILED
    assert result.error == "rejected by ann: no"
    assert result.outputs["decision"] == "reject"


async def test_a_rejection_completes_the_step_with_on_reject_complete() -> None:
    result = await _on({"decision": "reject", "data": {"why": 1}}, on_reject="complete", form=FORM)

    assert result.status is StepStatus.COMPLETED
    assert result.outputs == {
        "decision": "reject",
        "data": {"why": 1},
        "decided_by": None,
        "comment": None,
    }


async def test_only_approvers_decide() -> None:
    outsider = await _on({"decision": "approve", "decided_by": "eve"}, approvers=["ann"])
    insider = await _on({"decision": "approve", "decided_by": "ann"}, approvers=["ann"])

    assert outsider.action is EventAction.IGNORE
    assert insider.status is StepStatus.COMPLETED


# ---------------------------------------------------------------- forms


def test_form_problems_name_each_field_by_its_path() -> None:
    data = {"reviewers": [{"name": "a"}, {"weight": "heavy"}]}

    assert form_problems(FORM, data) == [
        ("data.ticket", "'ticket' is a required property"),
        ("data.reviewers[1].name", "'name' is a required property"),
        ("data.reviewers[1].weight", "'heavy' is not of type 'number'"),
    ]
    assert form_problems(FORM, {"ticket": "T", "reviewers": []}) == []
    assert form_problems(None, {"anything": 1}) == []


def test_formats_are_checked() -> None:
    form = {"type": "object", "properties": {"mail": {"type": "string", "format": "email"}}}

    assert [p for p, _ in form_problems(form, {"mail": "nobody"})] == ["data.mail"]


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ([1], "must be a JSON schema object, got list"),
        ({"type": 5}, "is not a valid JSON schema"),
        ({"required": "x"}, "is not a valid JSON schema"),
    ],
)
def test_schema_problems(schema: Any, words: str) -> None:
    assert words in (schema_problem(schema) or "")


def test_a_valid_schema_has_no_problem() -> None:
    assert schema_problem(FORM) is None


# ---------------------------------------------------------------- conveyor.human


def _view(*steps: StepView) -> RunView:
    return RunView(
        run_id="r1", pipeline="p", status=RunStatus.RUNNING, params={}, steps=list(steps)
    )


def _request_outputs(title: str) -> dict[str, Any]:
    return {"request": {"title": title, "form": FORM, "approvers": ["ann"]}}


def test_open_requests_are_the_waiting_units_of_human_steps() -> None:
    view = _view(
        StepView(
            step_id="ask",
            status=StepStatus.WAITING,
            attempt=1,
            external_id="human:r1:ask:1",
            outputs=_request_outputs("Ship?"),
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            next_timer_at=datetime(2026, 1, 2, tzinfo=UTC),
        ),
        StepView(
            step_id="each",
            status=StepStatus.RUNNING,
            attempt=1,
            items=[
                ItemView(index=0, status=StepStatus.COMPLETED, attempt=1),
                ItemView(
                    index=1,
                    status=StepStatus.WAITING,
                    attempt=2,
                    external_id="human:r1:each[1]:2",
                    outputs=_request_outputs("Item 1?"),
                ),
            ],
        ),
        StepView(
            step_id="hook",
            status=StepStatus.WAITING,
            attempt=1,
            external_id="wf-9",
            params={"correlation_id": "wf-9", "form": {"type": "object"}},
        ),
        StepView(step_id="plain", status=StepStatus.WAITING, attempt=1, external_id="wf-8"),
        StepView(step_id="later", status=StepStatus.PENDING, attempt=0),
    )
    actions = step_actions(
        {
            "steps": [
                {"id": "ask", "action": "approval"},
                {"id": "each", "action": "approval"},
                {"id": "hook", "action": "wait_for_event"},
                {"id": "plain", "action": "wait_for_event"},
                {"id": "later", "action": "approval"},
            ]
        }
    )

    found = open_requests(view, actions)

    assert [(r.key, r.title, r.attempt, r.correlation_id) for r in found] == [
        ("ask", "Ship?", 1, "human:r1:ask:1"),
        ("each[1]", "Item 1?", 2, "human:r1:each[1]:2"),
        ("hook", "Input for step hook", 1, "wf-9"),
    ]
    assert found[0].approvers == ["ann"]
    assert found[0].expires_at == datetime(2026, 1, 2, tzinfo=UTC)
    assert found[2].form == {"type": "object"}


def _request() -> InputRequest:
    return InputRequest(
        step_id="ask", action="approval", title="t", form=FORM, attempt=1, correlation_id="c-1"
    )


def test_a_rejection_need_not_fill_in_the_form() -> None:
    request = _request()

    assert submission_problems(request, Submission(decision=Decision.REJECT)) == []
    assert [p for p, _ in submission_problems(request, Submission(decision=Decision.APPROVE))] == [
        "data.ticket",
        "data.reviewers",
    ]


def test_the_same_answer_makes_the_same_event_and_another_a_new_one() -> None:
    request = _request()
    yes = Submission(decision=Decision.APPROVE, data={"ticket": "T"}, comment="ok")

    first = decision_event(request.correlation_id, yes, decided_by="ann")
    again = decision_event(request.correlation_id, yes, decided_by="ann")
    other = decision_event(request.correlation_id, yes, decided_by="bob")
    no = decision_event(
        request.correlation_id, Submission(decision=Decision.REJECT, comment="x"), "ann"
    )

    assert first.id == again.id != other.id
    assert first.correlation_id == "c-1"
    assert first.data["status"] == "COMPLETED"
    assert no.data["status"] == "FAILED"
    assert no.data["message"] == "rejected by ann: x"


# ---------------------------------------------------------------- on the engine


async def test_a_decision_survives_a_restart_and_is_applied_once(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "conveyor.db")
    registry = ActionRegistry.default()
    spec = PipelineSpec.model_validate(
        {
            "name": "approve",
            "steps": [
                {"id": "ask", "action": "approval", "params": {"title": "Go?", "form": FORM}}
            ],
        }
    )
    async with LocalBackend(registry, settings) as backend:
        run_id = await backend.start_run(spec)
        await _until_waiting(backend, run_id)

    async with LocalBackend(registry, settings) as backend:
        [request] = open_requests(backend.view(run_id), {"ask": "approval"})
        yes = Submission(decision=Decision.APPROVE, data={"ticket": "T-2", "reviewers": []})
        event = decision_event(request.correlation_id, yes, decided_by="ann")
        first = await backend.send_event(event)
        second = await backend.send_event(event)
        run = await backend.wait(run_id, timeout=15)

    assert first.status is RouteStatus.ROUTED
    assert second.status is RouteStatus.DUPLICATE
    assert run.status is RunStatus.COMPLETED
    assert run.step("ask").outputs["data"] == {"ticket": "T-2", "reviewers": []}
    assert run.step("ask").outputs["decided_by"] == "ann"


async def _until_waiting(backend: LocalBackend, run_id: str) -> None:
    async with asyncio.timeout(15):
        while True:
            if backend.view(run_id).step("ask").status is StepStatus.WAITING:
                return
            await asyncio.sleep(0.01)


def test_the_human_module_exports_exactly_these_names() -> None:
    assert conveyor.human.__all__ == [
        "APPROVAL",
        "WAIT_FOR_EVENT",
        "Decision",
        "InputRequest",
        "Submission",
        "asks_for_input",
        "decision_event",
        "is_same_decision",
        "named_approvers",
        "open_requests",
        "recorded_decision",
        "request_of",
        "reserved_problems",
        "step_actions",
        "step_params",
        "submission_problems",
    ]
