"""The Temporal extra's edges that need no cluster: the missing-extra message, NOMAD-shaped
action declarations, the action-status API on the embedded engine, /health, worker options."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field
from temporalio import activity, workflow

from conveyor.actions import ActionContext, ActionRegistry
from conveyor.backends.local import LocalBackend
from conveyor.backends.temporal.health import HealthServer
from conveyor.backends.temporal.nomad import Action, TaskQueue, action_of
from conveyor.backends.temporal.worker import WorkerOptions, queues_of, registry_for
from conveyor.client import ActionStatus, Client
from conveyor.errors import InvalidActionError, ParamValidationError
from tests.integration.engine import actions as engine_actions
from tests.temporal.nomad_example import GreetWorkflow, compose, greet_action, shout

CONVEYOR = Path(sys.executable).parent / "conveyor"
ROOT = Path(__file__).resolve().parents[2]

# Makes `import temporalio` fail as it does where the extra is not installed.
BLOCK_TEMPORALIO = textwrap.dedent(
    """
    import sys

    class _NoTemporal:
        def find_spec(self, name, path=None, target=None):
            if name == "temporalio" or name.startswith("temporalio."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoTemporal())
    """
)


def _without_temporalio(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TEMPORALIO + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


# ------------------------------------------------------------------ the missing extra


def test_conveyor_worker_without_the_extra_says_what_to_install() -> None:
    done = _without_temporalio(
        """
        sys.argv = ["conveyor", "worker"]
        from conveyor.cli import main
        main()
        """
    )
    assert done.returncode == 1
    assert "pip install 'conveyor[temporal]'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_any_command_on_the_temporal_backend_without_the_extra_says_what_to_install() -> None:
    done = _without_temporalio(
        """
        import os
        os.environ["CONVEYOR_BACKEND"] = "temporal"
        sys.argv = ["conveyor", "runs", "list"]
        from conveyor.cli import main
        main()
        """
    )
    assert done.returncode == 2
    assert "pip install 'conveyor[temporal]'" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr + done.stdout


def test_temporal_settings_without_the_extra_say_what_to_install() -> None:
    done = _without_temporalio(
        """
        from conveyor import ConveyorError, Settings
        assert Settings().backend == "local"  # the embedded default needs nothing more
        try:
            Settings(backend="temporal")
        except ConveyorError as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ConfigurationError the Temporal backend needs the 'temporal' extra: "
        "pip install 'conveyor[temporal]'"
    )


# ------------------------------------------------------------------ NOMAD-shaped declarations


class Compound(BaseModel):
    """NOMAD's example input: a PubChem id."""

    upload_id: str = Field(description="The upload the workflow belongs to.")
    cid: int = Field(ge=1, description="PubChem compound id.")


@workflow.defn
class CompoundWorkflow:
    """Looks a compound up."""

    @workflow.run
    async def run(self, data: Compound) -> dict[str, str]:
        return {"cid": str(data.cid)}


@dataclass
class Batch:
    items: list[str] = field(default_factory=list)
    size: int = field(default=4, metadata={"description": "How many at once."})


@workflow.defn(name="BatchWork")
class BatchWorkflow:
    @workflow.run
    async def run(self, data: Batch) -> None:
        return None


def test_an_action_takes_its_params_from_a_pydantic_run_argument() -> None:
    action = Action(task_queue=TaskQueue.GPU, workflow=CompoundWorkflow, action_type="compound")
    meta = ActionRegistry([action]).get("compound").meta
    assert meta.queue == "gpu" and meta.description == "Looks a compound up."
    cid = meta.param("cid")
    assert cid is not None and cid.required and cid.type.value == "integer"
    assert cid.validation is not None and cid.validation.min == 1
    assert cid.description == "PubChem compound id."


def test_an_action_takes_its_params_from_a_dataclass_and_its_type_from_the_workflow() -> None:
    action = Action(task_queue="cpu", workflow=BatchWorkflow)
    assert action.type == "batch_work"
    meta = action.meta
    assert [p.name for p in meta.params] == ["items", "size"]
    size = meta.param("size")
    assert size is not None and size.default == 4 and size.description == "How many at once."
    assert not any(p.required for p in meta.params)


def test_greet_action_outputs_come_from_the_returned_dataclass() -> None:
    assert [o.name for o in greet_action.meta.outputs] == ["text", "length"]
    assert action_of(ActionRegistry([greet_action]).get("greet_workflow")) is greet_action


class NotAWorkflow:
    async def run(self, data: Batch) -> None:
        return None


@workflow.defn(name="Untyped")
class UntypedWorkflow:
    @workflow.run
    async def run(self, data: int) -> None:
        return None


async def plain_function(text: str) -> str:
    return text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workflow": NotAWorkflow}, "workflow: NotAWorkflow is not decorated with @workflow"),
        ({"workflow": UntypedWorkflow}, "not a dataclass or a pydantic model"),
        (
            {"workflow": GreetWorkflow, "activities": [compose, plain_function]},
            "activities[1]: 'plain_function' is not decorated with @activity.defn",
        ),
        ({"workflow": GreetWorkflow, "task_queue": "GPU!"}, "queue: 'GPU!'"),
    ],
)
def test_a_bad_declaration_fails_when_declared_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"task_queue": "cpu", **kwargs}
    with pytest.raises(InvalidActionError) as raised:
        Action(**arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_input_data_names_each_bad_field() -> None:
    with pytest.raises(ParamValidationError) as raised:
        greet_action.input_data({"repeat": 1.5})
    assert {p.name for p in raised.value.problems} == {"name", "repeat"}


async def test_the_executor_outside_temporal_says_it_needs_the_temporal_backend() -> None:
    executor = greet_action.executor_class()
    result = await executor.execute(
        ActionContext(step_id="s", execution_id="r", params={"name": "Ada"})
    )
    assert not result.success
    assert result.error is not None and "runs only on the Temporal backend" in result.error


def test_activities_are_registered_with_their_action() -> None:
    assert greet_action.activities == (compose, shout)
    assert activity._Definition.from_callable(shout) is not None


# ------------------------------------------------------------------ worker options


def test_queue_workers_take_the_nomad_actions_whose_activities_run_there() -> None:
    split = Action(
        task_queue="cpu",
        workflow=CompoundWorkflow,
        action_type="split",
        task_queue_activities="gpu",
    )
    registry = ActionRegistry([split, *engine_actions.registry()])
    assert queues_of(registry) == ["cpu", "default", "gpu"]
    assert registry_for(registry, ["gpu"]).types() == ["gpu_echo", "split"]
    assert registry_for(registry, ["cpu"]).types() == ["split"]


def test_workflows_are_served_by_default_only_without_queues() -> None:
    assert WorkerOptions().serves_workflows
    assert not WorkerOptions(queues=["default"]).serves_workflows
    assert WorkerOptions(queues=["gpu"], workflows=True).serves_workflows


# ------------------------------------------------------------------ /health


async def test_health_answers_200_while_polling_then_503_and_404_elsewhere() -> None:
    state = {"ready": True}
    server = HealthServer(lambda: {"status": "x", "running_activities": 2}, lambda: state["ready"])
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(timeout=5) as http:
            ok = await http.get(f"{base}/health")
            assert ok.status_code == 200 and ok.json()["running_activities"] == 2
            state["ready"] = False
            assert (await http.get(f"{base}/health?probe=1")).status_code == 503
            missing = await http.get(f"{base}/nope")
            assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
            assert (await http.post(f"{base}/health")).status_code == 405
        # A probe that says nothing useful is closed, and the server keeps answering.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\r\n\r\n")
        await writer.drain()
        assert await reader.read() == b""
        writer.close()
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{base}/health")).status_code == 503
    finally:
        await server.stop()


# ------------------------------------------------------------------ action status, embedded


@pytest.fixture
async def local_client(tmp_path: Path) -> Client:
    backend = LocalBackend(engine_actions.registry(), db_path=tmp_path / "conveyor.db")
    async with Client(backend) as client:
        yield client  # type: ignore[misc]


async def test_an_unknown_id_is_unknown_on_the_embedded_engine(local_client: Client) -> None:
    assert await local_client.get_action_status("no-such-run") is ActionStatus.UNKNOWN
    assert await local_client.stop_action("no-such-run") is ActionStatus.UNKNOWN


async def test_bad_data_is_refused_before_a_run_is_stored(local_client: Client) -> None:
    with pytest.raises(ParamValidationError) as raised:
        await local_client.start_action("echo", {"count": 50})
    assert [p.name for p in raised.value.problems] == ["count"]
    assert (await local_client.list_action_runs()).runs == []


async def test_list_action_runs_pages_one_owners_actions(local_client: Client) -> None:
    mine = [await local_client.start_action("echo", {"value": i}, owner="ada") for i in range(5)]
    await local_client.start_action("echo", {"value": "x"}, owner="bob")
    for run_id in mine:
        await local_client.wait(run_id, timeout=10)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await local_client.list_action_runs(owner="ada", page_size=2, next_page_token=token)
        pages += 1
        seen.extend(a.run_id for a in page.runs)
        assert all(a.owner == "ada" and a.action == "echo" for a in page.runs)
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3 and sorted(seen) == sorted(mine)
    assert {a.status for a in (await local_client.list_action_runs(owner="ada")).runs} == {
        ActionStatus.COMPLETED
    }


async def test_the_old_names_still_work_and_say_they_are_deprecated(
    local_client: Client,
) -> None:
    run_id = await local_client.start_action("echo", {"value": 1}, owner="ada")
    await local_client.wait(run_id, timeout=10)
    with pytest.warns(DeprecationWarning, match="use list_action_runs"):
        page = await local_client.list_actions(owner="ada")
    with pytest.warns(DeprecationWarning, match="use .runs"):
        assert [a.run_id for a in page.actions] == [run_id]
    assert ActionStatus.CANCELLED is ActionStatus.CANCELED
    assert ActionStatus.CANCELED.name == "CANCELED"  # NOMAD code compares Temporal's name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 0}, "page_size: must be between 1 and 1000, got 0"),
        ({"next_page_token": "garbage!"}, "next_page_token: not a token list_action_runs returned"),
    ],
)
async def test_list_action_runs_refuses_bad_paging(
    local_client: Client, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        await local_client.list_action_runs(**kwargs)  # type: ignore[arg-type]


def test_every_temporal_execution_status_has_an_action_status() -> None:
    from temporalio.client import WorkflowExecutionStatus

    from conveyor.client import _TEMPORAL_ACTION_STATUS

    assert {status.name for status in WorkflowExecutionStatus} <= set(_TEMPORAL_ACTION_STATUS)
    assert _TEMPORAL_ACTION_STATUS["TERMINATED"] is ActionStatus.TERMINATED
    assert _TEMPORAL_ACTION_STATUS["TIMED_OUT"] is ActionStatus.TIMED_OUT
    assert _TEMPORAL_ACTION_STATUS["CONTINUED_AS_NEW"] is ActionStatus.RUNNING
