"""Events: routing by correlation id, early events, duplicates, unroutable, fan-in, sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend, eventlog
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.errors import EventError
from conveyor.events import Event, RouteStatus
from tests.integration.engine import actions
from tests.integration.engine.actions import Journal
from tests.integration.engine.conftest import pipeline
from tests.integration.engine.test_scheduling import _until


def waiting(cid: str, step: str = "wait", **extra: object) -> dict[str, object]:
    return {"id": step, "action": "await_event", "params": {"correlation_id": cid}, **extra}


@pytest.mark.parametrize(
    "body",
    [
        {"workflow_id": "wf-1", "status": "COMPLETED", "result": 7},
        {"payload": {"workflow_id": "wf-1"}, "status": "COMPLETED", "result": 7},
        {
            "specversion": "1.0",
            "id": "ce-1",
            "type": "notification",
            "source": "budapp",
            "data": {"workflow_id": "wf-1", "status": "COMPLETED", "result": 7},
        },
        {
            "specversion": "1.0",
            "id": "ce-2",
            "type": "notification",
            "source": "budapp",
            "topic": "conveyor-events",
            "pubsubname": "pubsub",
            "data": {"payload": {"workflow_id": "wf-1"}, "status": "COMPLETED", "result": 7},
        },
    ],
    ids=["plain", "payload", "cloudevent", "dapr"],
)
async def test_events_are_routed_by_the_default_correlation_paths(
    backend: LocalBackend, body: dict[str, object]
) -> None:
    run_id = await backend.start_run(pipeline(waiting("wf-1")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    receipt = await backend.send_event(body)
    assert receipt.status is RouteStatus.ROUTED and receipt.deliveries == 1
    assert receipt.correlation_id == "wf-1"
    run = await backend.wait(run_id, timeout=5)
    assert run.step("wait").outputs == {"started": True, "result": 7}


async def test_correlation_paths_are_configurable(tmp_path, journal: Journal) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(db_path=tmp_path / "c.db", correlation_paths=["meta.job"])
    async with LocalBackend(actions.registry(), settings) as backend:
        run_id = await backend.start_run(pipeline(waiting("J7")))
        await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
        receipt = await backend.send_event({"workflow_id": "J7", "status": "COMPLETED"})
        assert receipt.status is RouteStatus.UNROUTABLE
        receipt = await backend.send_event({"meta": {"job": "J7"}, "status": "COMPLETED"})
        assert receipt.status is RouteStatus.ROUTED
        assert (await backend.wait(run_id, timeout=5)).status is RunStatus.COMPLETED


async def test_an_event_before_the_wait_is_kept_and_delivered(backend: LocalBackend) -> None:
    receipt = await backend.send_event({"workflow_id": "early", "status": "COMPLETED", "result": 1})
    assert receipt.status is RouteStatus.PENDING
    run = await backend.wait(await backend.start_run(pipeline(waiting("early"))), timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert run.step("wait").outputs["result"] == 1
    routed = await backend.list_events(status=["routed"])
    assert [e.id for e in routed] == [receipt.event_id]


async def test_buffered_events_expire_after_their_ttl(tmp_path, journal: Journal) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(db_path=tmp_path / "c.db", event_ttl_seconds=0.05)
    async with LocalBackend(actions.registry(), settings) as backend:
        await backend.send_event({"workflow_id": "stale", "status": "COMPLETED"})
        await asyncio.sleep(0.1)
        eventlog.expire(backend.store, time.time())
        run_id = await backend.start_run(pipeline(waiting("stale")))
        run = await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
        assert run.status is RunStatus.RUNNING
        expired = await backend.list_events(status=["expired"])
        assert len(expired) == 1
        await backend.cancel(run_id)


async def test_the_same_event_id_is_applied_once(backend: LocalBackend, journal: Journal) -> None:
    run_id = await backend.start_run(pipeline(waiting("dup")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    event = Event(id="evt-1", data={"progress": 30}, correlation_id="dup")
    first = await backend.send_event(event)
    again = await backend.send_event(event)
    assert first.status is RouteStatus.ROUTED
    assert again.status is RouteStatus.DUPLICATE and again.deliveries == 0
    await _until(backend, run_id, lambda r: r.step("wait").progress == 30)
    assert len(journal.events) == 1
    await backend.cancel(run_id)


async def test_concurrent_senders_share_one_commit(backend: LocalBackend) -> None:
    runs = [await backend.start_run(pipeline(waiting(f"c{i}"))) for i in range(3)]
    for run_id in runs:
        await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    receipts = await asyncio.gather(
        backend.send_events([{"workflow_id": "c0", "status": "COMPLETED"}, {"workflow_id": "x"}]),
        backend.send_events([{"workflow_id": "c1", "status": "COMPLETED"}]),
        backend.send_events([{"workflow_id": "c2", "status": "COMPLETED"}]),
    )
    routed, pending = RouteStatus.ROUTED, RouteStatus.PENDING
    statuses = [[r.status for r in batch] for batch in receipts]
    assert statuses == [[routed, pending], [routed], [routed]]
    stored = await backend.list_events()
    # One transaction stamps every event it accepts with the same time.
    assert len(stored) == 4 and len({e.received_at for e in stored}) == 1
    for run_id in runs:
        assert (await backend.wait(run_id, timeout=5)).status is RunStatus.COMPLETED


async def test_one_senders_failure_leaves_the_others_events_stored(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    accept = eventlog.accept

    def failing(store, event, now, ttl):  # type: ignore[no-untyped-def]
        if event.id == "boom":
            raise ValueError("cannot store this one")
        return accept(store, event, now, ttl)

    monkeypatch.setattr(eventlog, "accept", failing)
    outcomes = await asyncio.gather(
        backend.send_events([Event(id="fine-1", data={}, correlation_id="a")]),
        backend.send_events([Event(id="ok-2", data={}), Event(id="boom", data={})]),
        backend.send_events([Event(id="fine-3", data={}, correlation_id="b")]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], ValueError)
    assert [r.status for r in outcomes[0]] == [RouteStatus.PENDING]  # type: ignore[union-attr]
    assert [r.status for r in outcomes[2]] == [RouteStatus.PENDING]  # type: ignore[union-attr]
    # All or none of a caller's events: ok-2 went with boom.
    assert sorted(e.id for e in await backend.list_events()) == ["fine-1", "fine-3"]


async def test_one_id_sent_by_two_senders_at_once_is_applied_once(
    backend: LocalBackend, journal: Journal
) -> None:
    run_id = await backend.start_run(pipeline(waiting("twice")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    event = Event(id="evt-twice", data={"progress": 40}, correlation_id="twice")
    first, again = await asyncio.gather(backend.send_event(event), backend.send_event(event))
    assert first.status is RouteStatus.ROUTED
    assert again.status is RouteStatus.DUPLICATE and again.deliveries == 0
    await _until(backend, run_id, lambda r: r.step("wait").progress == 40)
    assert len(journal.events) == 1
    await backend.cancel(run_id)


async def test_unroutable_events_are_kept_and_listable(backend: LocalBackend) -> None:
    receipt = await backend.send_event({"hello": "world"})
    assert receipt.status is RouteStatus.UNROUTABLE and receipt.correlation_id is None
    kept = await backend.list_events(status=["unroutable"])
    assert [e.data for e in kept] == [{"hello": "world"}]


async def test_events_that_are_not_objects_are_refused(backend: LocalBackend) -> None:
    with pytest.raises(EventError, match="must be a JSON object"):
        await backend.send_event([1, 2])  # type: ignore[arg-type]
    with pytest.raises(EventError, match="data: a CloudEvent's data must be a JSON object"):
        await backend.send_event({"specversion": "1.0", "id": "x", "type": "t", "data": [1]})
    assert await backend.list_events() == []


async def test_an_on_event_exception_fails_the_step_with_its_message(
    backend: LocalBackend,
) -> None:
    run_id = await backend.start_run(pipeline(waiting("boom")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": "boom", "explode": True})
    run = await backend.wait(run_id, timeout=5)
    assert run.step("wait").status is StepStatus.FAILED
    assert run.step("wait").error == "on_event failed: RuntimeError: cannot read this event"


async def test_a_failed_event_fails_the_step(backend: LocalBackend) -> None:
    run_id = await backend.start_run(pipeline(waiting("f1")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": "f1", "status": "FAILED", "message": "disk full"})
    run = await backend.wait(run_id, timeout=5)
    assert run.status is RunStatus.FAILED
    assert run.step("wait").error == "disk full"


async def test_ignored_events_keep_the_step_waiting(
    backend: LocalBackend, journal: Journal
) -> None:
    run_id = await backend.start_run(pipeline(waiting("ig")))
    await _until(backend, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await backend.send_event({"workflow_id": "ig", "status": "SOMETHING"})
    await backend.send_event({"workflow_id": "ig", "status": "COMPLETED"})
    run = await backend.wait(run_id, timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert len(journal.events) == 2


async def test_two_steps_waiting_on_one_id_both_receive_the_event(backend: LocalBackend) -> None:
    first = await backend.start_run(pipeline(waiting("shared", "a"), waiting("shared", "b")))
    second = await backend.start_run(pipeline(waiting("shared", "c")))
    for run_id, step in ((first, "b"), (second, "c")):
        await _until(backend, run_id, lambda r, s=step: r.step(s).status is StepStatus.WAITING)
    receipt = await backend.send_event({"workflow_id": "shared", "status": "COMPLETED"})
    assert receipt.deliveries == 3
    assert (await backend.wait(first, timeout=5)).status is RunStatus.COMPLETED
    assert (await backend.wait(second, timeout=5)).status is RunStatus.COMPLETED


async def test_for_each_items_wait_on_their_own_ids(backend: LocalBackend) -> None:
    spec = pipeline(
        {
            "id": "each",
            "action": "await_event",
            "for_each": ["x", "y"],
            "params": {"correlation_id": "item-{{ item }}"},
        },
        outputs={"results": "{{ steps.each.outputs | map(attribute='result') | list }}"},
    )
    run_id = await backend.start_run(spec)
    await _until(
        backend,
        run_id,
        lambda r: all(i.status is StepStatus.WAITING for i in r.step("each").items or []),
    )
    await backend.send_event({"workflow_id": "item-y", "status": "COMPLETED", "result": "Y"})
    await backend.send_event({"workflow_id": "item-x", "status": "COMPLETED", "result": "X"})
    run = await backend.wait(run_id, timeout=5)
    assert run.outputs == {"results": ["X", "Y"]}


async def test_a_durable_sleep_completes_at_its_time(backend: LocalBackend) -> None:
    started = time.monotonic()
    spec = pipeline(
        {"id": "nap", "action": "nap", "params": {"value": 0.3}},
        {"id": "after", "action": "echo", "depends_on": ["nap"]},
    )
    run_id = await backend.start_run(spec)
    run = await _until(backend, run_id, lambda r: r.step("nap").status is StepStatus.WAITING)
    assert run.step("nap").next_timer_at is not None
    run = await backend.wait(run_id, timeout=5)
    assert run.status is RunStatus.COMPLETED
    assert time.monotonic() - started >= 0.29


async def test_for_each_items_keep_their_values_while_the_run_waits(backend: LocalBackend) -> None:
    # With max_parallel 1 the run holds no task while item 0 waits, so it is dropped from
    # memory; item 1 must still find its value in the store.
    spec = pipeline(
        {
            "id": "each",
            "action": "await_event",
            "for_each": ["x", "y"],
            "max_parallel": 1,
            "params": {"correlation_id": "one-{{ item }}"},
        },
    )
    run_id = await backend.start_run(spec)
    await _until(backend, run_id, lambda r: r.step("each").items[0].status is StepStatus.WAITING)  # type: ignore[index]
    assert run_id not in backend._active
    await backend.send_event({"workflow_id": "one-x", "status": "COMPLETED"})
    await _until(backend, run_id, lambda r: r.step("each").items[1].status is StepStatus.WAITING)  # type: ignore[index]
    await backend.send_event({"workflow_id": "one-y", "status": "COMPLETED"})
    assert (await backend.wait(run_id, timeout=5)).status is RunStatus.COMPLETED
