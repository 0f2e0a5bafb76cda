"""`ActionEntryPoint`: `load()` runs once, only where the action runs; the catalog reads the
workflow's input type without it; the action answers to its entry point's id."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import Client as TemporalClient

from conveyor.actions import ActionRegistry
from conveyor.backends.temporal.nomad import ActionEntryPoint
from conveyor.backends.temporal.worker import WorkerOptions, build_workers, registry_for
from conveyor.client import Client
from conveyor.config import Settings
from conveyor.errors import InvalidActionError, ParamValidationError
from tests.support.distributions import write_distribution

ENTRY_POINT = """
from pydantic import Field

from conveyor.backends.temporal.nomad import ActionEntryPoint, TaskQueue

LOADS = []


class {cls}(ActionEntryPoint):
    task_queue: str = Field(default={queue})

    def load(self):
        from conveyor.backends.temporal.nomad import Action
        from {pkg}.{name}.activities import work
        from {pkg}.{name}.workflows import WorkWorkflow

        LOADS.append(self.name)
        return Action(task_queue={returned_queue}, workflow=WorkWorkflow, activities=[work])


{obj} = {cls}(name="{title}", description="Works.")
"""

MODELS = """
from pydantic import Field

from conveyor.backends.temporal.nomad import BaseWorkflowInput


class WorkInput(BaseWorkflowInput):
    size: int = Field(ge=1, description="How much.")
"""

ACTIVITIES = """
{extra_import}
from temporalio import activity

from {pkg}.{name}.models import WorkInput


@activity.defn
async def work(data: WorkInput) -> int:
    return data.size
"""

WORKFLOWS = """
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from {pkg}.{name}.activities import work
    {models_import}


{local_model}
@workflow.defn
class WorkWorkflow:
    @workflow.run
    async def run(self, data: WorkInput) -> int:
        return await workflow.execute_activity(
            work, data, start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
"""

MISSING_EXTRA = "import no_such_gpu_lib  # the gpu-action extra, not installed"

LOCAL_MODEL = """
from conveyor.backends.temporal.nomad import BaseWorkflowInput


class WorkInput(BaseWorkflowInput):
    size: int = 1

"""


def action_modules(
    pkg: str,
    name: str,
    *,
    queue: str = "TaskQueue.CPU",
    returned_queue: str = "self.task_queue",
    extra_import: str = "",
    model_in_workflows: bool = False,
) -> dict[str, str]:
    """The files of one action in the documentation's layout, under `pkg/name/`."""
    fields = {
        "pkg": pkg,
        "name": name,
        "cls": f"{name.title()}EntryPoint",
        "obj": f"{name}_action",
        "title": f"{name.title()}Action",
        "queue": queue,
        "returned_queue": returned_queue,
        "extra_import": extra_import,
        "models_import": "" if model_in_workflows else f"from {pkg}.{name}.models import WorkInput",
        "local_model": LOCAL_MODEL if model_in_workflows else "",
    }
    return {
        f"{pkg}/{name}/__init__.py": ENTRY_POINT.format(**fields),
        f"{pkg}/{name}/models.py": MODELS,
        f"{pkg}/{name}/activities.py": ACTIVITIES.format(**fields),
        f"{pkg}/{name}/workflows.py": WORKFLOWS.format(**fields),
    }


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh package name on sys.path (its modules dropped after the test)."""
    name = f"nomad_lazy_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def install(tmp_path: Path, pkg: str, **actions: dict[str, str]) -> ActionRegistry:
    """Install the actions as a distribution (on sys.path already) and discover them."""
    modules: dict[str, str] = {}
    for files in actions.values():
        modules.update(files)
    write_distribution(
        tmp_path,
        pkg,
        entry_points={name: f"{pkg}.{name}:{name}_action" for name in actions},
        modules=modules,
    )
    registry = ActionRegistry.default()
    assert registry.failures == [], registry.failures
    return registry


def loads(pkg: str, name: str) -> list[str]:
    module: ModuleType = sys.modules[f"{pkg}.{name}"]
    found: list[str] = module.LOADS
    return found


def test_the_catalog_reads_the_input_without_loading_or_the_queues_extra(
    tmp_path: Path, pkg: str
) -> None:
    registry = install(
        tmp_path,
        pkg,
        gpu=action_modules(
            pkg, "gpu", queue="TaskQueue.GPU", extra_import="import no_such_gpu_lib"
        ),
    )
    definition = registry.get("gpu_action")
    assert definition.meta.queue == "gpu"
    assert definition.meta.name == "GpuAction"
    assert definition.meta.description == "Works."
    assert [p.name for p in definition.meta.params] == ["upload_id", "user_id", "size"]
    assert loads(pkg, "gpu") == []
    assert f"{pkg}.gpu.workflows" not in sys.modules


def test_the_action_answers_to_its_entry_point_id(tmp_path: Path, pkg: str) -> None:
    registry = install(tmp_path, pkg, cpu=action_modules(pkg, "cpu"))
    entry_point_id = f"{pkg}.cpu:cpu_action"
    assert entry_point_id in registry
    assert registry.get(entry_point_id) is registry.get("cpu_action")
    # Carried into the registries a worker builds for its queues.
    assert registry_for(registry, ["cpu"]).get(entry_point_id).type == "cpu_action"
    assert registry.types().count("cpu_action") == 1
    assert entry_point_id not in registry.types()


async def test_bad_data_is_refused_by_entry_point_id_naming_fields_without_loading(
    tmp_path: Path, pkg: str
) -> None:
    registry = install(tmp_path, pkg, cpu=action_modules(pkg, "cpu"))
    settings = Settings(db_path=tmp_path / "conveyor.db")
    from conveyor.backends.local import LocalBackend

    async with Client(LocalBackend(registry, settings)) as client:
        with pytest.raises(ParamValidationError) as raised:
            await client.start_action(f"{pkg}.cpu:cpu_action", {"user_id": "ada", "size": 0})
    assert {problem.name for problem in raised.value.problems} == {"upload_id", "size"}
    assert loads(pkg, "cpu") == []


async def test_a_worker_loads_its_queues_actions_once_and_no_others(
    tmp_path: Path, pkg: str, temporal_server: str
) -> None:
    registry = install(
        tmp_path,
        pkg,
        cpu=action_modules(pkg, "cpu"),
        gpu=action_modules(
            pkg, "gpu", queue="TaskQueue.GPU", extra_import="import no_such_gpu_lib"
        ),
    )
    client = await TemporalClient.connect(temporal_server)
    options = WorkerOptions(queues=["cpu"], workflows=False)
    for prefix in ("first", "second"):
        settings = Settings(temporal_address=temporal_server, temporal_task_queue_prefix=prefix)
        workers = build_workers(client, registry_for(registry, ["cpu"]), settings, options)
        assert [w.task_queue for w in workers] == [f"{prefix}-cpu"]
    assert loads(pkg, "cpu") == ["CpuAction"]
    assert loads(pkg, "gpu") == []
    assert "no_such_gpu_lib" not in sys.modules


def test_an_action_loaded_on_another_queue_than_declared_is_refused(
    tmp_path: Path, pkg: str
) -> None:
    registry = install(tmp_path, pkg, cpu=action_modules(pkg, "cpu", returned_queue="'gpu'"))
    source = sys.modules[f"{pkg}.cpu"].cpu_action
    with pytest.raises(InvalidActionError) as raised:
        source.loaded()
    assert "load(): the Action's task_queue is 'gpu', the entry point's is 'cpu'" in str(
        raised.value
    )
    assert registry.get("cpu_action").meta.queue == "cpu"


def test_an_input_defined_beside_the_workflow_is_learnt_by_loading(
    tmp_path: Path, pkg: str
) -> None:
    registry = install(tmp_path, pkg, cpu=action_modules(pkg, "cpu", model_in_workflows=True))
    assert [p.name for p in registry.get("cpu_action").meta.params] == [
        "upload_id",
        "user_id",
        "size",
    ]
    assert loads(pkg, "cpu") == ["CpuAction"]


def test_load_must_be_written() -> None:
    with pytest.raises(NotImplementedError, match="must implement load"):
        ActionEntryPoint(name="Bare").loaded()


def test_a_pipeline_step_may_name_the_action_by_its_entry_point_id(
    tmp_path: Path, pkg: str
) -> None:
    from conveyor.pipeline.spec import PipelineSpec
    from conveyor.pipeline.validation import validate_pipeline

    registry = install(tmp_path, pkg, cpu=action_modules(pkg, "cpu"))
    pipeline = PipelineSpec.model_validate(
        {
            "name": "by-id",
            "steps": [
                {
                    "id": "work",
                    "action": f"{pkg}.cpu:cpu_action",
                    "params": {"upload_id": "u", "user_id": "ada", "size": 2},
                }
            ],
        }
    )
    assert validate_pipeline(pipeline, registry).errors == []
    assert loads(pkg, "cpu") == []
