"""Event scenarios on both backends: duplicates, fan-in of waiters, waits that time out,
durable sleeps, run deadlines, cancels of running steps, progress by event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.client import Client
from conveyor.engine import RunStatus
from conveyor.errors import EventError
from conveyor.events import Event, RouteStatus
from conveyor.runs import RunView
from tests.integration.engine.actions import Journal
from tests.temporal.scenario import (
    WAIT,
    digest,
    echo,
    eventually,
    pipeline,
    run_to_end,
    unique,
    until,
    waiting,
)


def is_waiting(step: str = "wait") -> Callable[[RunView], bool]:
    """A check that `step` is waiting."""
    return lambda run: run.step(step).status is StepStatus.WAITING


async def test_a_cloudevent_is_routed_by_its_data(conveyor: Client) -> None:
    cid = unique("cloud")
    run_id = await conveyor.start(pipeline(waiting(cid)))
    await until(conveyor, run_id, is_waiting())
    receipt = await conveyor.send_event(
        {
            "specversion": "1.0",
            "id": unique("ce"),
            "type": "notification",
            "source": "budapp",
            "data": {"workflow_id": cid, "status": "COMPLETED", "result": 7},
        }
    )
    assert receipt.correlation_id == cid
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert run.step("wait").outputs == {"started": True, "result": 7}


async def test_the_same_event_id_is_applied_once(conveyor: Client, journal: Journal) -> None:
    cid = unique("dup")
    run_id = await conveyor.start(pipeline(waiting(cid)))
    await until(conveyor, run_id, is_waiting())
    event = Event(id=unique("evt"), data={"progress": 30}, correlation_id=cid)
    await conveyor.send_event(event)
    await conveyor.send_event(event)
    await until(conveyor, run_id, lambda r: r.step("wait").progress == 30)
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED"})
    await conveyor.wait(run_id, timeout=WAIT)
    assert [e["data"].get("progress") for e in journal.events] == [30, None]


async def test_ignored_events_keep_the_step_waiting(conveyor: Client, journal: Journal) -> None:
    cid = unique("ignored")
    run_id = await conveyor.start(pipeline(waiting(cid)))
    await until(conveyor, run_id, is_waiting())
    await conveyor.send_event({"workflow_id": cid, "status": "SOMETHING"})
    await eventually(lambda: len(journal.events) == 1)
    assert (await conveyor.get(run_id)).step("wait").status is StepStatus.WAITING
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED"})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert run.status is RunStatus.COMPLETED
    assert len(journal.events) == 2


async def test_an_on_event_exception_fails_the_step_with_its_message(conveyor: Client) -> None:
    cid = unique("boom")
    run_id = await conveyor.start(pipeline(waiting(cid)))
    await until(conveyor, run_id, is_waiting())
    await conveyor.send_event({"workflow_id": cid, "explode": True})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert digest(run)["steps"]["wait"] == {
        "status": "failed",
        "attempt": 1,
        "outputs": {"started": True},
        "error": "on_event failed: RuntimeError: cannot read this event",
    }


async def test_events_that_are_not_objects_are_refused(conveyor: Client) -> None:
    with pytest.raises(EventError, match="must be a JSON object"):
        await conveyor.send_event([1, 2])  # type: ignore[arg-type]


async def test_every_step_waiting_on_one_id_receives_the_event(conveyor: Client) -> None:
    cid = unique("shared")
    first = await conveyor.start(pipeline(waiting(cid, "a"), waiting(cid, "b")))
    second = await conveyor.start(pipeline(waiting(cid, "c")))
    await until(conveyor, first, lambda r: {s.status for s in r.steps} == {StepStatus.WAITING})
    await until(conveyor, second, is_waiting("c"))
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED", "result": 1})
    for run_id in (first, second):
        run = await conveyor.wait(run_id, timeout=WAIT)
        assert run.status is RunStatus.COMPLETED
        assert {s.outputs["result"] for s in run.steps} == {1}


async def test_for_each_items_wait_on_their_own_ids(conveyor: Client) -> None:
    prefix = unique("item")
    spec = pipeline(
        {
            "id": "each",
            "action": "await_event",
            "for_each": ["x", "y"],
            "params": {"correlation_id": prefix + "-{{ item }}"},
        },
        outputs={"results": "{{ steps.each.outputs | map(attribute='result') | list }}"},
    )
    run_id = await conveyor.start(spec)
    await until(
        conveyor,
        run_id,
        lambda r: [i.status for i in r.step("each").items or []] == [StepStatus.WAITING] * 2,
    )
    await conveyor.send_event({"workflow_id": f"{prefix}-y", "status": "COMPLETED", "result": "Y"})
    await conveyor.send_event({"workflow_id": f"{prefix}-x", "status": "COMPLETED", "result": "X"})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert run.outputs == {"results": ["X", "Y"]}


async def test_a_wait_past_its_deadline_times_out_and_cleans_up(
    conveyor: Client, journal: Journal
) -> None:
    cid = unique("never")
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": cid}},
        echo(1, id="after", depends_on=["wait"]),
    )
    spec.steps[0].params["wait_seconds"] = 0.5
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.FAILED
    wait = run.step("wait")
    assert wait.status is StepStatus.TIMEOUT
    assert f"no completion event for '{cid}'" in (wait.error or "")
    assert run.step("after").status is StepStatus.SKIPPED
    await eventually(lambda: journal.cleanups == ["wait"])


async def test_a_durable_sleep_completes_at_its_time(conveyor: Client) -> None:
    spec = pipeline(
        {"id": "nap", "action": "nap", "params": {"value": 1.0}},
        echo("{{ steps.nap.outputs.slept }}", id="after", depends_on=["nap"]),
    )
    started = time.monotonic()
    run_id = await conveyor.start(spec)
    run = await until(conveyor, run_id, is_waiting("nap"))
    assert run.step("nap").next_timer_at is not None
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert time.monotonic() - started >= 0.99
    assert run.status is RunStatus.COMPLETED
    assert run.step("after").outputs["value"] is True


async def test_a_run_timeout_ends_the_run(conveyor: Client, journal: Journal) -> None:
    spec = pipeline(
        echo(1, id="slow", params={"sleep": 10}),
        echo(2, id="after", depends_on=["slow"]),
        settings={"timeout_seconds": 0.5},
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run) == {
        "status": "timed_out",
        "error": "the run timed out after 0.5s",
        "outputs": None,
        "steps": {
            "slow": {"status": "cancelled", "attempt": 1, "reason": "the run timed out after 0.5s"},
            "after": {"status": "skipped", "attempt": 0, "reason": "the run timed out after 0.5s"},
        },
    }
    await eventually(lambda: journal.cleanups == ["slow"])


async def test_cancel_stops_running_and_waiting_steps_and_cleans_up(
    conveyor: Client, journal: Journal
) -> None:
    spec = pipeline(
        waiting(unique("cancel")),
        echo(1, id="busy", params={"sleep": 10}),
        echo(2, id="later", depends_on=["busy"]),
    )
    run_id = await conveyor.start(spec)
    await until(conveyor, run_id, is_waiting())
    await eventually(lambda: journal.executions["busy"] == 1)
    started = time.monotonic()
    run = await conveyor.cancel(run_id, "no longer needed")
    assert time.monotonic() - started < 8
    statuses = {step: value["status"] for step, value in digest(run)["steps"].items()}
    assert run.status is RunStatus.CANCELLED
    assert run.error == "no longer needed"
    assert {run.step(s).reason for s in ("wait", "busy", "later")} == {"no longer needed"}
    assert statuses == {"wait": "cancelled", "busy": "cancelled", "later": "skipped"}
    await eventually(lambda: sorted(journal.cleanups) == ["busy", "wait"])


async def test_progress_comes_from_events_and_from_steps(conveyor: Client) -> None:
    cid = unique("progress")
    spec = pipeline(waiting(cid), echo(1, id="work", params={"progress": [25, 75]}))
    run_id = await conveyor.start(spec)
    await until(conveyor, run_id, is_waiting())
    await conveyor.send_event({"workflow_id": cid, "progress": 40})
    run = await until(conveyor, run_id, lambda r: r.step("wait").progress == 40)
    assert run.step("wait").message == "working"
    run = await until(conveyor, run_id, lambda r: r.step("work").status is StepStatus.COMPLETED)
    assert run.progress == 70.0  # (40 + 100) / 2
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED"})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert run.progress == 100.0 and run.eta_seconds is None


async def test_a_receipt_says_how_the_event_was_routed(
    conveyor: Client, request: pytest.FixtureRequest
) -> None:
    if isinstance(conveyor.backend, TemporalBackend):
        request.applymarker(
            pytest.mark.xfail(
                reason="on Temporal the mailbox routes an event after the send returns, so "
                "every receipt with a correlation id says 'accepted': not pending, routed "
                "with a delivery count, or duplicate as the embedded engine says",
                strict=True,
            )
        )
    cid = unique("receipts")
    early = await conveyor.send_event({"workflow_id": cid, "progress": 10})
    assert early.status is RouteStatus.PENDING
    run_id = await conveyor.start(pipeline(waiting(cid)))
    await until(conveyor, run_id, lambda r: r.step("wait").progress == 10)
    event = Event(id=unique("evt"), data={"status": "COMPLETED"}, correlation_id=cid)
    routed = await conveyor.send_event(event)
    assert routed.status is RouteStatus.ROUTED and routed.deliveries == 1
    again = await conveyor.send_event(event)
    assert again.status is RouteStatus.DUPLICATE
    assert (await conveyor.wait(run_id, timeout=WAIT)).status is RunStatus.COMPLETED
