"""BudPipeline actions run on Conveyor after changing their imports only.

The first part is the unit-test template of BudPipeline's guide, verbatim except its imports
(it patches `invoke_service`, as the guide does). The rest runs the same examples for real: the
log action with a real context and structlog, the delete action against an HTTP service on
loopback, both through a registry.
"""

from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from structlog.testing import capture_logs

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
    ActionMeta,
    ActionRegistry,
    EventAction,
    EventContext,
    ExecutionMode,
    ParamDefinition,
    ParamType,
    StepStatus,
    validated_params,
)
from conveyor.errors import ParamValidationError
from tests.seed.commons import CALLBACK_TOPIC
from tests.seed.deployment_delete import DeploymentDeleteExecutor
from tests.seed.log_action import META as LOG_META
from tests.seed.log_action import LogAction, LogExecutor
from tests.support.http_server import HttpTestServer, Reply

# --- The guide's unit-test template -----------------------------------------------------------


@pytest.fixture
def context():
    return ActionContext(
        step_id="step_1",
        execution_id="exec_1",
        params={"endpoint_id": "endpoint-123"},
        workflow_params={"user_id": "user-123"},
        step_outputs={},
    )


@pytest.mark.asyncio
async def test_execute_returns_awaiting_event(context):
    """Test that execute returns awaiting_event for async operations."""
    executor = DeploymentDeleteExecutor()

    with patch.object(context, "invoke_service", new_callable=AsyncMock) as mock_invoke:
        mock_invoke.return_value = {"workflow_id": "wf-123", "code": 200}

        result = await executor.execute(context)

        assert result.success is True
        assert result.awaiting_event is True
        assert result.external_workflow_id == "wf-123"


@pytest.mark.asyncio
async def test_on_event_completes_on_success():
    """Test that on_event completes the step on success event."""
    executor = DeploymentDeleteExecutor()
    event_context = EventContext(
        step_execution_id="step-exec-1",
        execution_id="exec-1",
        external_workflow_id="wf-123",
        event_type="notification",
        event_data={
            "type": "notification",
            "payload": {
                "event": "results",
                "content": {"status": "COMPLETED", "message": "Deleted"},
            },
        },
        step_outputs={"endpoint_id": "endpoint-123"},
    )

    result = await executor.on_event(event_context)

    assert result.action == EventAction.COMPLETE
    assert result.status == StepStatus.COMPLETED
    assert result.outputs["success"] is True


# --- The same examples, run for real -----------------------------------------------------------

# The delete example comes without its ActionMeta; this is the one a pipeline would use.
DELETE_META = ActionMeta(
    type="deployment_delete",
    version="1.0.0",
    name="Delete Deployment",
    description="Deletes a deployment and waits for the service to confirm",
    category="Deployment",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    required_services=["budapp"],
    params=[ParamDefinition(name="endpoint_id", type=ParamType.STRING, required=True)],
)


@pytest.fixture
def registry() -> ActionRegistry:
    return ActionRegistry(
        [LogAction, ActionDefinition(meta=DELETE_META, executor_class=DeploymentDeleteExecutor)]
    )


def test_the_ported_actions_register(registry: ActionRegistry) -> None:
    log = registry.get("log")
    assert log.meta is LOG_META
    assert log.executor_class is LogExecutor
    assert log.source == "tests.seed.log_action:LogAction"
    assert [p.name for p in log.meta.params] == ["message", "level"]
    assert registry.get("deployment_delete").meta.execution_mode is ExecutionMode.EVENT_DRIVEN


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
async def test_the_log_executor_runs_with_a_real_context(
    registry: ActionRegistry, level: str
) -> None:
    definition = registry.get("log")
    context = ActionContext(
        step_id="announce",
        execution_id="run-7",
        params=validated_params(definition.meta, {"message": "deploy started", "level": level}),
    )
    with capture_logs() as logs:
        result = await definition.new_executor().execute(context)
    assert result.success is True
    assert result.outputs == {"logged": True, "message": "deploy started", "level": level}
    assert {
        "event": "pipeline_log",
        "message": "deploy started",
        "step_id": "announce",
        "log_level": level,
    } in logs


async def test_the_log_level_defaults_to_info(registry: ActionRegistry) -> None:
    meta = registry.get("log").meta
    context = ActionContext(
        step_id="s", execution_id="r", params=validated_params(meta, {"message": "hi"})
    )
    with capture_logs() as logs:
        result = await LogExecutor().execute(context)
    assert result.outputs["level"] == "info"
    assert [entry["log_level"] for entry in logs] == ["info"]


def test_the_log_params_are_validated_by_its_meta(registry: ActionRegistry) -> None:
    with pytest.raises(ParamValidationError) as caught:
        validated_params(registry.get("log").meta, {"level": "loud"})
    assert [p.name for p in caught.value.problems] == ["message", "level"]
    assert "'loud' is not one of the options ['debug', 'info', 'warning', 'error']" in str(
        caught.value
    )


async def run_delete(server: HttpTestServer, reply: Reply) -> Any:
    invokers = pytest.importorskip("conveyor.actions.invokers")
    server.route("POST", "/endpoints/endpoint-123/delete-workflow", reply)
    async with invokers.DirectHttpInvoker({"budapp": server.url}) as invoker:
        context = ActionContext(
            step_id="delete",
            execution_id="run-1",
            params={"endpoint_id": "endpoint-123"},
            services=invoker,
        )
        return await DeploymentDeleteExecutor().execute(context)


async def test_the_delete_executor_calls_the_service_and_waits_for_its_events(
    http_server: HttpTestServer,
) -> None:
    result = await run_delete(http_server, Reply(200, {"workflow_id": "wf-9", "code": 200}))
    assert result.success is True
    assert result.awaiting_event is True
    assert result.external_workflow_id == "wf-9"
    assert result.timeout_seconds == 300
    assert result.outputs == {
        "endpoint_id": "endpoint-123",
        "workflow_id": "wf-9",
        "status": "deleting",
    }
    [request] = http_server.requests
    assert request.method == "POST"
    assert request.path == "/endpoints/endpoint-123/delete-workflow"
    assert request.json == {"callback_topic": CALLBACK_TOPIC}


async def test_the_delete_executor_completes_at_once_without_a_workflow(
    http_server: HttpTestServer,
) -> None:
    result = await run_delete(http_server, Reply(200, {"code": 200}))
    assert (result.success, result.awaiting_event) == (True, False)
    assert result.outputs == {"endpoint_id": "endpoint-123", "status": "deleted"}


async def test_a_service_error_becomes_a_failed_result(http_server: HttpTestServer) -> None:
    result = await run_delete(http_server, Reply(503, {"message": "try later"}))
    assert result.success is False
    assert result.error
    assert result.outputs == {"endpoint_id": "endpoint-123", "status": "failed"}


def event(status: str, event_name: str = "results", message: str | None = None) -> EventContext:
    content: dict[str, Any] = {"status": status}
    if message is not None:
        content["message"] = message
    return EventContext(
        step_execution_id="step-exec-1",
        execution_id="exec-1",
        external_workflow_id="wf-9",
        event_type="notification",
        event_data={"type": "notification", "payload": {"event": event_name, "content": content}},
        step_outputs={"endpoint_id": "endpoint-123"},
    )


async def test_a_failure_event_fails_the_step_with_its_message() -> None:
    result = await DeploymentDeleteExecutor().on_event(event("FAILED", message="quota"))
    assert (result.action, result.status) == (EventAction.COMPLETE, StepStatus.FAILED)
    assert result.error == "quota"
    assert result.outputs == {"success": False, "status": "failed"}


async def test_a_completion_event_keeps_the_outputs_of_execute() -> None:
    result = await DeploymentDeleteExecutor().on_event(event("COMPLETED"))
    assert result.status is StepStatus.COMPLETED
    assert result.outputs == {
        "success": True,
        "endpoint_id": "endpoint-123",
        "status": "deleted",
        "message": "Deleted successfully",
    }


@pytest.mark.parametrize(("status", "name"), [("RUNNING", "progress"), ("COMPLETED", "status")])
async def test_intermediate_events_are_ignored(status: str, name: str) -> None:
    result = await DeploymentDeleteExecutor().on_event(event(status, event_name=name))
    assert result.action is EventAction.IGNORE
