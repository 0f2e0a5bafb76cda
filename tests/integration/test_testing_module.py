"""`conveyor.testing`: helpers on the real interfaces."""

from __future__ import annotations

from conveyor import RunStatus
from conveyor.actions import EventAction, StepStatus
from conveyor.testing import MemoryPublisher, deliver_event, run_executor, temporary_engine
from tests.integration.engine.actions import AwaitExecutor, EchoAction, EchoExecutor


async def test_run_executor_calls_execute_with_a_real_context() -> None:
    result = await run_executor(EchoExecutor(), {"value": [1, 2]}, step_id="s1")
    assert result.success
    assert result.outputs["value"] == [1, 2]


async def test_deliver_event_calls_on_event() -> None:
    result = await deliver_event(AwaitExecutor(), {"status": "COMPLETED", "result": 5})
    assert result.action is EventAction.COMPLETE
    assert result.status is StepStatus.COMPLETED
    assert result.outputs == {"result": 5}


async def test_temporary_engine_runs_pipelines_with_extra_actions() -> None:
    async with temporary_engine(EchoAction) as client:
        spec = {
            "name": "t",
            "steps": [
                {"id": "a", "action": "echo", "params": {"value": 3}},
                {
                    "id": "b",
                    "action": "log",
                    "depends_on": ["a"],
                    "params": {"message": "got {{ steps.a.outputs.value }}"},
                },
            ],
        }
        run = await client.wait(await client.start(spec), timeout=10)
        assert run.status is RunStatus.COMPLETED
        assert run.step("b").outputs["message"] == "got 3"


def test_memory_publisher_is_exported() -> None:
    assert MemoryPublisher().messages == []
