"""The database belongs to one engine; timers live in it; a restarted engine resumes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend, Store
from conveyor.backends.local.timers import TimerService
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.errors import EngineBusyError
from tests.integration.engine import actions
from tests.integration.engine.actions import Journal
from tests.integration.engine.conftest import pipeline
from tests.integration.engine.test_scheduling import _until


async def test_a_second_engine_on_the_same_database_is_refused(
    backend: LocalBackend, settings: Settings
) -> None:
    other = LocalBackend(actions.registry(), settings)
    with pytest.raises(EngineBusyError, match="in use by another engine"):
        await other.start()
    other.store.close()
    # A tool that only records (no driving) may still open it.
    async with LocalBackend(actions.registry(), settings, drive=False) as reader:
        assert await reader.list_runs() == []


async def test_timers_beyond_the_horizon_are_read_when_they_come_near(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db").open()
    fired: list[tuple[str, float]] = []
    both = asyncio.Event()

    def fire(run: str, step: str | None, index: int | None, at: float) -> None:
        fired.append((run, at))
        if len(fired) == 2:
            both.set()

    timers = TimerService(store, fire, time.time, 0.2)
    timers.start()
    try:
        far = time.time() + 0.5
        with store.transaction():
            store.set_timer("far", "s", None, far)
        timers.armed("far", "s", None, far)  # Beyond the horizon: left in the table.
        near = time.time() + 0.05
        with store.transaction():
            store.set_timer("near", "s", None, near)
        timers.armed("near", "s", None, near)
        await asyncio.wait_for(both.wait(), timeout=3)
    finally:
        await timers.stop()
        store.close()
    assert [run for run, _ in fired] == ["near", "far"]
    assert fired[1][1] == far


async def test_a_restarted_engine_resumes_waits_and_timers(
    settings: Settings, journal: Journal
) -> None:
    spec = pipeline(
        {"id": "wait", "action": "await_event", "params": {"correlation_id": "restart"}},
        {"id": "nap", "action": "nap", "params": {"value": 0.4}},
        {"id": "after", "action": "echo", "depends_on": ["wait", "nap"]},
    )
    async with LocalBackend(actions.registry(), settings) as first:
        run_id = await first.start_run(spec)
        await _until(
            first,
            run_id,
            lambda r: (
                r.step("wait").status is StepStatus.WAITING
                and r.step("nap").status is StepStatus.WAITING
            ),
        )
        nap_deadline = (await first.get(run_id)).step("nap").next_timer_at
    assert nap_deadline is not None
    async with LocalBackend(actions.registry(), settings) as second:
        await second.send_event({"workflow_id": "restart", "status": "COMPLETED"})
        run = await second.wait(run_id, timeout=5)
        assert run.status is RunStatus.COMPLETED
        finished = run.step("nap").finished_at
        assert finished is not None and finished >= nap_deadline
    assert journal.executions["wait"] == 1
    assert journal.executions["nap"] == 1
