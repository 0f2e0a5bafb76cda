"""Failures, retries, timeouts, cancel and fail_fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend
from conveyor.engine import RunStatus
from conveyor.errors import ParamValidationError, PipelineValidationError, RunNotFoundError
from tests.integration.engine.actions import Journal
from tests.integration.engine.conftest import pipeline
from tests.integration.engine.test_scheduling import _until

FAST_RETRY = {"max_attempts": 3, "initial_interval_seconds": 0.2, "backoff_coefficient": 2}


async def test_an_exception_is_a_failure_with_its_message(backend: LocalBackend) -> None:
    run = await backend.wait(await backend.start_run(pipeline({"id": "x", "action": "flaky"})), 5)
    assert run.status is RunStatus.FAILED
    assert run.step("x").status is StepStatus.FAILED
    assert run.step("x").error == "ValueError: boom on attempt 1"
    assert run.error == "step 'x' failed: ValueError: boom on attempt 1"


async def test_retries_back_off_on_durable_timers(backend: LocalBackend, journal: Journal) -> None:
    spec = pipeline(
        {"id": "x", "action": "flaky", "params": {"succeed_on": 3}, "retry": FAST_RETRY},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("x").status is StepStatus.RETRYING)
    # The backoff is a stored timer, not a sleep a restart would forget.
    assert backend.store.timers_due_before(time.time() + 60)
    run = await backend.wait(run_id, timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.step("x").attempt == 3
    assert run.step("x").outputs == {"attempt": 3}
    starts = journal.started_at["x"]
    assert starts[1] - starts[0] >= 0.19
    assert starts[2] - starts[1] >= 0.39


async def test_retries_are_finite_and_keep_the_last_error(backend: LocalBackend) -> None:
    spec = pipeline(
        {
            "id": "x",
            "action": "flaky",
            "params": {"mode": "result"},
            "on_failure": "retry",
            "retry": {**FAST_RETRY, "initial_interval_seconds": 0.01},
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("x").attempt == 3
    assert run.step("x").error == "refused on attempt 3"


async def test_on_failure_retry_without_a_policy_uses_the_finite_default(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "x", "action": "flaky", "params": {"succeed_on": 2}, "on_failure": "retry"},
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert journal.executions["x"] == 2


async def test_on_failure_continue_lets_the_run_complete(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "bad", "action": "flaky", "on_failure": "continue"},
        {
            "id": "next",
            "action": "echo",
            "depends_on": ["bad"],
            "params": {"value": "{{ steps.bad.status }}"},
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.step("bad").status is StepStatus.FAILED
    assert run.step("next").outputs["value"] == "failed"


async def test_fail_fast_cancels_running_siblings(backend: LocalBackend, journal: Journal) -> None:
    spec = pipeline(
        {"id": "slow", "action": "echo", "params": {"sleep": 5}},
        {"id": "bad", "action": "flaky"},
        {"id": "after", "action": "echo", "depends_on": ["bad"]},
    )
    started = time.monotonic()
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert time.monotonic() - started < 2
    assert run.status is RunStatus.FAILED
    assert run.step("slow").status is StepStatus.CANCELLED
    assert run.step("after").status is StepStatus.SKIPPED
    await _wait_for(lambda: "slow" in journal.cleanups)


async def test_without_fail_fast_other_branches_finish(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "slow", "action": "echo", "params": {"sleep": 0.2, "value": 1}},
        {"id": "bad", "action": "flaky"},
        {"id": "after_bad", "action": "echo", "depends_on": ["bad"]},
        {"id": "after_slow", "action": "echo", "depends_on": ["slow"]},
        settings={"fail_fast": False},
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("slow").status is StepStatus.COMPLETED
    assert run.step("after_slow").status is StepStatus.COMPLETED
    assert run.step("after_bad").status is StepStatus.SKIPPED
    assert run.step("after_bad").reason == "upstream step 'bad' failed"


async def test_a_sync_step_past_its_timeout_is_cancelled(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "slow", "action": "echo", "params": {"sleep": 5}, "timeout_seconds": 0.2}
    )
    started = time.monotonic()
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert time.monotonic() - started < 2
    assert run.step("slow").status is StepStatus.TIMEOUT
    assert run.step("slow").error == "timed out after 0.2s"
    assert run.status is RunStatus.FAILED
    assert journal.cleanups == ["slow"]


async def test_a_wait_past_its_deadline_times_out(backend: LocalBackend, journal: Journal) -> None:
    spec = pipeline(
        {
            "id": "wait",
            "action": "await_event",
            "params": {"correlation_id": "never", "wait_seconds": 0.2},
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.step("wait").status is StepStatus.TIMEOUT
    assert "no completion event for 'never'" in (run.step("wait").error or "")
    assert journal.cleanups == ["wait"]
    # The wait is gone: a late event is kept as pending, not applied.
    receipt = await backend.send_event({"workflow_id": "never", "status": "COMPLETED"})
    assert receipt.status.value == "pending"


async def test_a_run_timeout_ends_the_run(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "slowpoke"}},
        {"id": "busy", "action": "echo", "params": {"sleep": 5}},
        settings={"timeout_seconds": 0.3},
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.TIMED_OUT
    assert run.error == "the run timed out after 0.3s"
    assert {s.status for s in run.steps} == {StepStatus.CANCELLED}


async def test_cancel_stops_running_and_waiting_steps_and_cleans_up(
    backend: LocalBackend, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "c1"}},
        {"id": "busy", "action": "echo", "params": {"sleep": 5}},
        {"id": "later", "action": "echo", "depends_on": ["busy"]},
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await _wait_for(lambda: journal.executions["busy"] == 1)
    run = await backend.cancel(run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.step("wait").status is StepStatus.CANCELLED
    assert run.step("busy").status is StepStatus.CANCELLED
    assert run.step("later").status is StepStatus.SKIPPED
    await _wait_for(lambda: sorted(journal.cleanups) == ["busy", "wait"])
    receipt = await backend.send_event({"workflow_id": "c1", "status": "COMPLETED"})
    assert receipt.status.value == "pending"
    assert (await backend.cancel(run_id)).status is RunStatus.CANCELLED  # twice is harmless


async def test_bad_input_is_refused_by_name_and_harms_nothing(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "a", "action": "echo"},
        parameters=[{"name": "size", "type": "integer", "required": True}],
    )
    good = await backend.start_run(spec, {"size": 3})
    await backend.wait(good, timeout=5)
    with pytest.raises(ParamValidationError) as params_error:
        await backend.start_run(spec, {"size": "big", "extra": 1})
    names = {p.name for p in params_error.value.problems}
    assert names == {"size", "extra"}
    broken = pipeline(
        {"id": "a", "action": "nope"}, {"id": "b", "action": "echo", "depends_on": ["zz"]}
    )
    with pytest.raises(PipelineValidationError) as invalid:
        await backend.start_run(broken)
    paths = {getattr(issue, "path", None) for issue in invalid.value.issues}
    assert "steps[0].action" in paths
    with pytest.raises(RunNotFoundError):
        await backend.get("no-such-run")
    with pytest.raises(RunNotFoundError):
        await backend.cancel("no-such-run")
    runs = await backend.list_runs()
    assert [r.run_id for r in runs] == [good]
    assert (await backend.get(good)).status is RunStatus.COMPLETED


async def test_invalid_params_after_rendering_fail_the_step_by_name(backend: LocalBackend) -> None:
    spec = pipeline(
        {"id": "a", "action": "echo", "params": {"value": 50}},
        {
            "id": "b",
            "action": "echo",
            "depends_on": ["a"],
            "params": {"count": "{{ steps.a.outputs.value }}"},
        },
    )
    run = await backend.wait(await backend.start_run(spec), timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("b").error == "invalid params: count: must be <= 10, got 50"


async def _wait_for(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_a_defect_in_one_runs_transition_fails_that_run_alone(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.backends.local import runtime
    from conveyor.engine import EventApplied

    real_transition = runtime.transition
    real_transitions = LocalBackend._transitions
    guarded_batches: list[int] = []

    def transition(plan, state, message, now):  # type: ignore[no-untyped-def]
        if state.params.get("cid") == "bad" and isinstance(message, EventApplied):
            raise KeyError("a defect")
        return real_transition(plan, state, message, now)

    def transitions(self, batch, now, *, guarded):  # type: ignore[no-untyped-def]
        if guarded:
            guarded_batches.append(len(batch))
        return real_transitions(self, batch, now, guarded=guarded)

    monkeypatch.setattr(runtime, "transition", transition)
    monkeypatch.setattr(LocalBackend, "_transitions", transitions)
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "{{ params.cid }}"}},
        parameters=[{"name": "cid", "type": "string"}],
    )
    runs = {cid: await backend.start_run(spec, {"cid": cid}) for cid in ("a", "bad", "c")}
    for run_id in runs.values():
        await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await backend.send_events([{"workflow_id": cid, "status": "COMPLETED"} for cid in runs])
    bad = await backend.wait(runs["bad"], timeout=5)
    assert bad.status is RunStatus.FAILED
    assert bad.error == "internal error: KeyError: 'a defect'"
    for cid in ("a", "c"):
        assert (await backend.wait(runs[cid], timeout=5)).status is RunStatus.COMPLETED
    # The three events were applied in one batch, which went again in savepoints.
    assert guarded_batches == [3]
