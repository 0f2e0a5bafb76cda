"""Parallelism, bounds, fan-out, conditions, skips, outputs, idempotency and progress."""

from __future__ import annotations

import asyncio
import time

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend
from conveyor.client import Client
from conveyor.engine import RunStatus
from tests.integration.engine.actions import Journal
from tests.integration.engine.conftest import pipeline


async def test_independent_steps_run_in_parallel(backend: LocalBackend, journal: Journal) -> None:
    spec = pipeline(
        *({"id": f"s{i}", "action": "echo", "params": {"sleep": 0.3}} for i in range(4))
    )
    started = time.monotonic()
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert journal.max_concurrent == 4
    assert time.monotonic() - started < 1.0


async def test_sequential_steps_see_earlier_outputs(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "a", "action": "echo", "params": {"value": 2}},
        {
            "id": "b",
            "action": "echo",
            "depends_on": ["a"],
            "params": {"value": "{{ steps.a.outputs.value * 10 }}"},
        },
        outputs={
            "result": "{{ steps.b.outputs.value + 1 }}",
            "text": "b={{ steps.b.outputs.value }}",
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.outputs == {"result": 21, "text": "b=20"}
    assert [s.step_id for s in run.steps] == ["a", "b"]
    assert run.step("b").params == {"value": 20}


async def test_max_parallel_steps_bounds_a_run(backend: LocalBackend, journal: Journal) -> None:
    spec = pipeline(
        *({"id": f"s{i}", "action": "echo", "params": {"sleep": 0.1}} for i in range(6)),
        settings={"max_parallel_steps": 2},
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert journal.max_concurrent == 2


async def test_queue_capacity_is_shared_across_runs(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        *(
            {"id": f"g{i}", "action": "gpu_echo", "params": {"sleep": 0.05, "queue_name": "gpu"}}
            for i in range(3)
        ),
        *({"id": f"c{i}", "action": "echo", "params": {"sleep": 0.05}} for i in range(3)),
    )
    first, second = await backend.start_run(spec), await backend.start_run(spec)
    for run_id in (first, second):
        assert (await backend.wait(run_id, timeout=5)).status is RunStatus.COMPLETED
    assert journal.max_by_queue["gpu"] == 1
    assert journal.max_by_queue["default"] >= 2


async def test_a_waiting_step_never_blocks_its_siblings(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "sibling"}},
        {"id": "work", "action": "echo", "params": {"value": 1}},
        {"id": "more", "action": "echo", "depends_on": ["work"]},
        settings={"max_parallel_steps": 1},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("more").status is StepStatus.COMPLETED)
    assert (await backend.get(run_id)).step("wait").status is StepStatus.WAITING
    await backend.send_event({"workflow_id": "sibling", "status": "COMPLETED"})
    assert (await backend.wait(run_id, timeout=5)).status is RunStatus.COMPLETED


async def test_for_each_runs_once_per_item_in_order(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "list", "action": "echo", "params": {"value": ["a", "b", "c", "d", "e"]}},
        {
            "id": "each",
            "action": "echo",
            "depends_on": ["list"],
            "for_each": "{{ steps.list.outputs.value }}",
            "max_parallel": 2,
            "params": {"value": "{{ index }}:{{ item }}", "sleep": 0.05},
        },
        outputs={"values": "{{ steps.each.outputs | map(attribute='value') | list }}"},
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"values": ["0:a", "1:b", "2:c", "3:d", "4:e"]}
    each = run.step("each")
    assert each.items is not None and [i.item for i in each.items] == list("abcde")
    assert journal.max_concurrent == 2


async def test_for_each_over_an_empty_list_completes_with_no_outputs(
    backend: LocalBackend,
) -> None:
    spec = pipeline({"id": "each", "action": "echo", "for_each": [], "params": {"value": 1}})
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.step("each").outputs == []


async def test_for_each_item_failure_follows_on_failure(backend: LocalBackend) -> None:
    continuing = pipeline(
        {
            "id": "each",
            "action": "flaky",
            "for_each": [1, 0, 1],
            "on_failure": "continue",
            "params": {"succeed_on": "{{ item }}"},
        }
    )
    run = await backend.wait(await backend.start_run(continuing), timeout=5)
    assert run.status is RunStatus.COMPLETED
    each = run.step("each")
    assert each.status is StepStatus.COMPLETED
    assert each.outputs == [{"attempt": 1}, None, {"attempt": 1}]
    assert each.items is not None and each.items[1].status is StepStatus.FAILED
    assert "boom" in (each.items[1].error or "")

    failing = pipeline(
        {
            "id": "each",
            "action": "flaky",
            "for_each": [1, 0],
            "params": {"succeed_on": "{{ item }}"},
        }
    )
    run = await backend.wait(await backend.start_run(failing), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("each").status is StepStatus.FAILED
    assert "item 1" in (run.error or "")


async def test_for_each_that_is_not_a_list_fails_the_step(backend: LocalBackend) -> None:
    spec = pipeline({"id": "each", "action": "echo", "for_each": "{{ 5 }}"})
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert "expected a list" in (run.step("each").error or "")


async def test_conditions_skip_and_skips_propagate(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "gate", "action": "echo", "params": {"value": False}},
        {
            "id": "yes",
            "action": "echo",
            "depends_on": ["gate"],
            "condition": "{{ not steps.gate.outputs.value }}",
        },
        {
            "id": "no",
            "action": "echo",
            "depends_on": ["gate"],
            "condition": "{{ steps.gate.outputs.value }}",
        },
        {"id": "after_no", "action": "echo", "depends_on": ["no"]},
        {"id": "after_after", "action": "echo", "depends_on": ["after_no"]},
        {
            "id": "join",
            "action": "echo",
            "depends_on": ["yes", "no"],
            "allow_skipped_upstream": True,
        },
        parameters=[{"name": "flag", "type": "boolean", "default": False}],
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    statuses = {s.step_id: s.status for s in run.steps}
    assert statuses == {
        "gate": StepStatus.COMPLETED,
        "yes": StepStatus.COMPLETED,
        "no": StepStatus.SKIPPED,
        "after_no": StepStatus.SKIPPED,
        "after_after": StepStatus.SKIPPED,
        "join": StepStatus.COMPLETED,
    }
    assert run.step("after_no").reason == "upstream step 'no' was skipped"


async def test_idempotency_key_returns_the_first_run(backend: LocalBackend) -> None:
    spec = pipeline({"id": "a", "action": "echo"})
    first = await backend.start_run(spec, idempotency_key="order-42")
    second = await backend.start_run(spec, idempotency_key="order-42")
    assert first == second
    assert len(await backend.list_runs()) == 1
    assert (await backend.get(first)).idempotency_key == "order-42"


async def test_pipeline_outputs_that_fail_to_render_fail_the_run(backend: LocalBackend) -> None:
    spec = pipeline({"id": "a", "action": "echo"}, outputs={"x": "{{ steps.a.outputs.value + 1 }}"})
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.startswith("outputs:")


async def test_progress_is_reported_per_step_and_for_the_run(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "p1"}},
        {"id": "work", "action": "echo", "params": {"progress": [25, 75]}},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": "p1", "progress": 40})
    run = await _until(backend, run_id, lambda r: r.step("wait").progress == 40)
    assert run.step("wait").message == "working"
    await _until(backend, run_id, lambda r: r.step("work").status is StepStatus.COMPLETED)
    run = await backend.get(run_id)
    assert run.progress == 70.0  # (40 + 100) / 2
    assert run.eta_seconds is not None and run.eta_seconds >= 0
    await backend.send_event({"workflow_id": "p1", "status": "COMPLETED"})
    run = await backend.wait(run_id, timeout=5)
    assert run.progress == 100.0 and run.eta_seconds is None


async def test_report_progress_reaches_the_step(backend: LocalBackend) -> None:
    seen: list[float] = []
    spec = pipeline(
        {"id": "work", "action": "echo", "params": {"progress": [10, 60], "sleep": 0.2}}
    )
    run_id = await backend.start_run(spec)

    def record(changed: str) -> None:
        if changed == run_id:
            seen.append(backend.view(run_id).step("work").progress)

    unsubscribe = backend.subscribe(record)
    await backend.wait(run_id, timeout=5)
    unsubscribe()
    assert 60.0 in seen and seen[-1] == 100.0


async def test_single_action_runs_through_the_client(client: Client) -> None:
    run = await client.run_action("echo", {"value": {"k": [1, 2]}}, timeout=5)
    assert run.kind == "action" and run.status is RunStatus.COMPLETED
    run_id = await client.start_action("echo", {"value": "{{ not a template }}"})
    await client.wait(run_id, timeout=5)
    assert (await client.get_action_status(run_id)).value == "COMPLETED"
    result = await client.get_action_result(run_id)
    assert result["value"] == "{{ not a template }}"


async def _until(backend: LocalBackend, run_id: str, check, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        run = await backend.get(run_id)
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met; run is {run.model_dump_json(indent=1)}")
        await asyncio.sleep(0.01)


async def test_a_for_each_item_failing_when_queued_closes_the_step_once(
    backend: LocalBackend,
) -> None:
    spec = pipeline(
        {
            "id": "m",
            "action": "echo",
            "for_each": [1, "abc"],
            "max_parallel": 1,
            "params": {"count": "{{ item }}"},
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("m").status is StepStatus.FAILED
    assert "item 1" in (run.step("m").error or "")


async def test_a_cancelled_run_counts_only_the_work_done(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "a", "action": "echo"},
        {"id": "w", "action": "await_event", "params": {"correlation_id": "half"}},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("a").status is StepStatus.COMPLETED)
    run = await backend.cancel(run_id)
    assert run.progress == 50.0
