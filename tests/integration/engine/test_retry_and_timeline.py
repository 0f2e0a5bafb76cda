"""Retrying a failed run reuses what completed; every run keeps a timeline."""

from __future__ import annotations

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend
from conveyor.engine import RunStatus
from conveyor.errors import RunNotFoundError, RunStateError
from conveyor.runs import RunEvent
from tests.integration.engine.actions import Journal
from tests.integration.engine.conftest import pipeline
from tests.integration.engine.test_scheduling import _until


async def test_retry_reruns_only_failed_and_unrun_steps(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "a", "action": "echo", "params": {"value": 1}},
        {"id": "each", "action": "echo", "for_each": [1, 2], "params": {"value": "{{ item }}"}},
        {
            "id": "gate",
            "action": "await_event",
            "depends_on": ["a"],
            "params": {"correlation_id": "{{ run.id }}-gate"},
        },
        {
            "id": "b",
            "action": "echo",
            "depends_on": ["gate"],
            "params": {"value": "{{ steps.a.outputs.value + 1 }}"},
        },
        outputs={"b": "{{ steps.b.outputs.value }}", "each": "{{ steps.each.outputs | length }}"},
    )
    first = await backend.start_run(spec)
    await _until(backend, first, lambda r: r.step("gate").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": f"{first}-gate", "status": "FAILED", "message": "no"})
    assert (await backend.wait(first, timeout=5)).status is RunStatus.FAILED

    second = await backend.retry(first)
    run = await _until(backend, second, lambda r: r.step("gate").status is StepStatus.WAITING)
    assert run.retry_of == first
    assert run.step("a").status is StepStatus.COMPLETED
    await backend.send_event({"workflow_id": f"{second}-gate", "status": "COMPLETED"})
    run = await backend.wait(second, timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"b": 2, "each": 2}
    assert journal.executions["a"] == 1
    assert journal.executions["each[0]"] == 1
    assert journal.executions["gate"] == 2
    assert journal.executions["b"] == 1
    # The failed run is left as it was.
    assert (await backend.get(first)).status is RunStatus.FAILED


async def test_retry_is_refused_for_running_and_completed_runs(backend: LocalBackend) -> None:
    waiting = await backend.start_run(
        pipeline({"id": "w", "action": "await_event", "params": {"correlation_id": "r"}})
    )
    with pytest.raises(RunStateError, match="is running; cancel it before retrying"):
        await backend.retry(waiting)
    done = await backend.start_run(pipeline({"id": "a", "action": "echo"}))
    await backend.wait(done, timeout=5)
    with pytest.raises(RunStateError, match="completed; there is nothing to retry"):
        await backend.retry(done)
    with pytest.raises(RunNotFoundError):
        await backend.retry("nope")
    await backend.cancel(waiting)


async def test_the_timeline_records_transitions_progress_and_events(
    backend: LocalBackend,
) -> None:
    told: list[RunEvent] = []
    backend.subscribe_events(told.extend)
    spec = pipeline(
        {"id": "w", "action": "await_event", "params": {"correlation_id": "tl"}},
        {"id": "a", "action": "echo", "depends_on": ["w"]},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("w").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": "tl", "progress": 50})
    await _until(backend, run_id, lambda r: r.step("w").progress == 50)
    await backend.send_event({"workflow_id": "tl", "status": "COMPLETED"})
    await backend.wait(run_id, timeout=5)
    events = await backend.timeline(run_id)
    seen = [(e.kind, e.step_id, e.status) for e in events]
    assert seen == [
        ("run", None, "running"),
        ("step", "w", "running"),
        ("step", "w", "waiting"),
        ("event", "w", None),
        ("progress", "w", "waiting"),
        ("event", "w", "completed"),
        ("step", "w", "completed"),
        ("step", "a", "running"),
        ("step", "a", "completed"),
        ("run", None, "completed"),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert events[4].progress == 50
    assert events[3].data is not None and events[3].data["action"] == "update_progress"
    assert [(e.kind, e.step_id, e.status) for e in told if e.run_id == run_id] == seen
    assert await backend.timeline(run_id, after=events[-2].seq) == events[-1:]
    with pytest.raises(RunNotFoundError):
        await backend.timeline("nope")
