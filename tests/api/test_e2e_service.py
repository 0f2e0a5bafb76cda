"""End to end over real HTTP: Conveyor's service, and an external job service reporting back.

The job service (`tests.api.fake_service`) runs on 127.0.0.1 and publishes progress and
completion events to Conveyor's ``POST /events`` with the events token. Runs are started with
``POST /runs`` and followed with ``GET /runs/{id}``, as a client would.

Two ways of calling the service are covered: a pipeline of built-ins (``http_request`` starts
the job, ``wait_for_event`` waits on the ``workflow_id`` it answered), and an event-driven
action (``remote_job`` below) that calls the service through `invoke_service` and cancels the
job in its `cleanup()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionRegistry,
    ActionResult,
    BaseActionExecutor,
    EventAction,
    EventContext,
    EventResult,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    StepStatus,
    register_action,
)
from conveyor.actions.invokers import DirectHttpInvoker
from conveyor.api import Service
from conveyor.backends.local import LocalBackend
from conveyor.config import Settings
from tests.api.conftest import EVENTS_TOKEN
from tests.api.fake_service import Config, FakeJobService

TIMEOUT = 60.0
TOPIC = "conveyor-events"


# ------------------------------------------------------------------ an event-driven action


class RemoteJobExecutor(BaseActionExecutor):
    """Starts a job on the ``jobs`` service and waits for its events."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Submit the job; its answer's ``workflow_id`` is what the step waits on."""
        settings = context.settings
        topic = settings.callback_topic if settings is not None else TOPIC
        answer = await context.invoke_service(
            "jobs", "/jobs", data={"callback_topic": topic, "mode": context.params["mode"]}
        )
        workflow_id = str(answer["workflow_id"])
        return ActionResult(
            success=True,
            awaiting_event=True,
            external_workflow_id=workflow_id,
            timeout_seconds=float(context.params["timeout_seconds"]),
            outputs={"workflow_id": workflow_id},
        )

    async def on_event(self, context: EventContext) -> EventResult:
        """Progress, a failure with the service's message, or the result."""
        data = context.event_data
        status = data.get("status")
        if status == "FAILED":
            return EventResult(
                action=EventAction.COMPLETE, status=StepStatus.FAILED, error=data.get("message")
            )
        if status == "COMPLETED":
            return EventResult(
                action=EventAction.COMPLETE,
                status=StepStatus.COMPLETED,
                outputs={"workflow_id": context.external_workflow_id, "result": data["result"]},
            )
        if "progress" in data:
            return EventResult(
                action=EventAction.UPDATE_PROGRESS,
                progress=float(data["progress"]),
                message=data.get("message"),
            )
        return EventResult(action=EventAction.IGNORE)

    async def cleanup(self, context: ActionContext) -> None:
        """Cancel the job the step started (its id is in the step's own outputs)."""
        outputs = context.step_outputs.get(context.step_id) or {}
        workflow_id = outputs.get("workflow_id")
        if workflow_id:
            await context.invoke_service("jobs", f"/jobs/{workflow_id}/cancel")


REMOTE_JOB = ActionMeta(
    type="remote_job",
    version="1.0.0",
    name="Remote job",
    description="Runs a job on the jobs service and waits for its completion event.",
    category="Test",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=False,
    params=[
        ParamDefinition(name="mode", type=ParamType.STRING, default="normal"),
        ParamDefinition(name="timeout_seconds", type=ParamType.NUMBER, default=60),
    ],
    outputs=[
        OutputDefinition(name="workflow_id", type="string"),
        OutputDefinition(name="result", type="object"),
    ],
)


@register_action(REMOTE_JOB)
class RemoteJobAction:
    """The ``remote_job`` test action."""

    meta = REMOTE_JOB
    executor_class = RemoteJobExecutor


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def action_registry() -> ActionRegistry:
    """The installed actions and `remote_job`."""
    registry = ActionRegistry.default()
    registry.add(RemoteJobAction)
    return registry


@pytest.fixture
def jobs() -> Iterator[FakeJobService]:
    """The job service, started; it learns where to publish once Conveyor serves."""
    with FakeJobService(Config(token=EVENTS_TOKEN)) as service:
        yield service


@pytest.fixture
def settings(tmp_path: Path, jobs: FakeJobService) -> Settings:
    """Settings that reach the job service on loopback (refused by default)."""
    return Settings(
        db_path=tmp_path / "conveyor.db",
        events_token=SecretStr(EVENTS_TOKEN),
        services={"jobs": jobs.url},
        allow_private_networks=True,
        callback_topic=TOPIC,
    )


@pytest.fixture
async def invoker(jobs: FakeJobService) -> AsyncIterator[DirectHttpInvoker]:
    """How actions call the job service; closed when the test ends."""
    async with DirectHttpInvoker({"jobs": jobs.url}) as invoker:
        yield invoker


@pytest.fixture
def service(
    settings: Settings, action_registry: ActionRegistry, invoker: DirectHttpInvoker
) -> Service:
    """The service, its engine calling services through `invoker`."""
    backend = LocalBackend(action_registry, settings, services=invoker)
    return Service.create(settings, backend=backend)


@pytest.fixture
async def conveyor(
    server_url: str, jobs: FakeJobService, http: httpx.AsyncClient
) -> httpx.AsyncClient:
    """An admin client of Conveyor, once the job service publishes to its events URL."""
    jobs.config.topic_urls[TOPIC] = f"{server_url}/events"
    return http


def pipeline(jobs: FakeJobService, *, submit_timeout: float = 10) -> dict[str, Any]:
    """Start a job with `http_request`, then wait for its events with `wait_for_event`."""
    return {
        "name": "remote",
        "parameters": [
            {"name": "mode", "type": "string", "default": "normal"},
            {"name": "wait_seconds", "type": "number", "default": 60},
        ],
        "steps": [
            {
                "id": "submit",
                "action": "http_request",
                "params": {
                    "url": f"{jobs.url}/jobs",
                    "method": "POST",
                    "body": {"callback_topic": TOPIC, "mode": "{{ params.mode }}", "size": 3},
                    "timeout_seconds": submit_timeout,
                },
            },
            {
                "id": "wait",
                "action": "wait_for_event",
                "depends_on": ["submit"],
                "params": {
                    "correlation_id": "{{ steps.submit.outputs.body.workflow_id }}",
                    "timeout_seconds": "{{ params.wait_seconds }}",
                },
            },
        ],
        "outputs": {"result": "{{ steps.wait.outputs.event.result }}"},
    }


async def start(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Start a run with ``POST /runs``; its id."""
    response = await http.post("/runs", json=body)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def poll(
    http: httpx.AsyncClient, run_id: str, until: str = "finished", step: str = ""
) -> dict[str, Any]:
    """Read ``GET /runs/{id}`` until the run finished (or `step` has status `until`)."""
    terminal = {"completed", "failed", "cancelled", "timed_out"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        run: dict[str, Any] = (await http.get(f"/runs/{run_id}")).json()
        if until == "finished" and run["status"] in terminal:
            return run
        steps = {s["step_id"]: s for s in run["steps"]}
        if step and steps.get(step, {}).get("status") == until:
            return run
        assert loop.time() < deadline, f"run {run_id} did not reach {until}: {run}"
        await asyncio.sleep(0.05)


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's steps by id."""
    return {s["step_id"]: s for s in run["steps"]}


async def progress_of(http: httpx.AsyncClient, run_id: str, step_id: str) -> list[float]:
    """The progress values of a step's timeline entries, in order."""
    timeline = (await http.get(f"/runs/{run_id}/timeline")).json()
    return [
        e["progress"]
        for e in timeline["items"]
        if e["kind"] == "progress" and e["step_id"] == step_id
    ]


# ------------------------------------------------------------------ the scenarios


async def test_a_job_completes_with_its_progress_in_the_timeline(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    run_id = await start(conveyor, {"pipeline": pipeline(jobs)})
    run = await poll(conveyor, run_id)
    assert run["status"] == "completed", run
    assert run["outputs"] == {"result": {"size": 3}}
    wait = steps_of(run)["wait"]
    job = jobs.job(wait["outputs"]["correlation_id"])
    assert [r["status"] for r in job.receipts] == ["routed", "routed", "routed"]
    progress = await progress_of(conveyor, run_id, "wait")
    assert progress, "no progress entry in the timeline"
    assert progress == sorted(progress)
    assert set(progress) <= {25.0, 75.0}
    events = (await conveyor.get("/events", params={"status": "routed"})).json()
    assert events["total"] == 3
    assert {e["correlation_id"] for e in events["items"]} == {job.workflow_id}


async def test_an_event_driven_action_completes_over_http(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    run_id = await start(conveyor, {"action": "remote_job", "params": {"mode": "normal"}})
    run = await poll(conveyor, run_id)
    assert run["status"] == "completed", run
    action = steps_of(run)["action"]
    assert action["outputs"]["result"] == {"size": 1}
    assert jobs.job(action["outputs"]["workflow_id"]).receipts[-1]["status"] == "routed"
    assert await progress_of(conveyor, run_id, "action")


async def test_a_completion_published_before_the_answer_is_not_lost(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    run_id = await start(conveyor, {"pipeline": pipeline(jobs), "params": {"mode": "early"}})
    run = await poll(conveyor, run_id)
    assert run["status"] == "completed", run
    assert run["outputs"] == {"result": {"early": True}}
    job = jobs.job(steps_of(run)["submit"]["outputs"]["body"]["workflow_id"])
    # Accepted while nobody waited (the POST had not even been answered), then delivered.
    assert [r["status"] for r in job.receipts] == ["pending"]
    routed = (await conveyor.get("/events", params={"status": "routed"})).json()
    assert [e["correlation_id"] for e in routed["items"]] == [job.workflow_id]


async def test_a_failed_event_fails_the_step_with_the_service_message(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    run_id = await start(conveyor, {"pipeline": pipeline(jobs), "params": {"mode": "fail"}})
    run = await poll(conveyor, run_id)
    assert run["status"] == "failed", run
    wait = steps_of(run)["wait"]
    assert wait["status"] == "failed"
    assert wait["error"] == "the job failed"
    action_run = await start(conveyor, {"action": "remote_job", "params": {"mode": "fail"}})
    failed = steps_of(await poll(conveyor, action_run))["action"]
    assert (failed["status"], failed["error"]) == ("failed", "the job failed")


async def test_a_job_never_reported_on_times_out(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    body = {"pipeline": pipeline(jobs), "params": {"mode": "silent", "wait_seconds": 1}}
    run = await poll(conveyor, await start(conveyor, body))
    assert run["status"] in ("failed", "timed_out"), run
    wait = steps_of(run)["wait"]
    assert wait["status"] == "timeout", wait


async def test_a_service_that_never_answers_times_out_the_call(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    body = {"pipeline": pipeline(jobs, submit_timeout=0.5), "params": {"mode": "hang"}}
    run = await poll(conveyor, await start(conveyor, body))
    assert run["status"] == "failed", run
    submit, wait = steps_of(run)["submit"], steps_of(run)["wait"]
    assert submit["status"] == "failed"
    assert "timed out after 0.5 s" in submit["error"]
    assert wait["status"] in ("skipped", "pending", "cancelled")


async def test_cancel_while_waiting_cleans_up_the_job(
    conveyor: httpx.AsyncClient, jobs: FakeJobService
) -> None:
    params = {"mode": "silent", "timeout_seconds": 600}
    run_id = await start(conveyor, {"action": "remote_job", "params": params})
    waiting = await poll(conveyor, run_id, until="waiting", step="action")
    workflow_id = steps_of(waiting)["action"]["outputs"]["workflow_id"]
    response = await conveyor.post(f"/runs/{run_id}/cancel", json={"reason": "no longer needed"})
    assert response.status_code == 200, response.text
    run = await poll(conveyor, run_id)
    assert run["status"] == "cancelled"
    assert steps_of(run)["action"]["status"] == "cancelled"
    # The action's cleanup told the service; it runs after the cancel is committed.
    assert await asyncio.to_thread(jobs.job(workflow_id).cancelled.wait, TIMEOUT)
    assert not jobs.errors
