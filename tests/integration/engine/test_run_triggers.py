"""Runs carry their trigger: what started them, which schedule (webhook, event trigger) and the
slot, stored with the run, shown in its views and filtered on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from conveyor.backends.local import LocalBackend
from conveyor.backends.local.store import Store
from conveyor.runs import RunTrigger
from tests.integration.engine.conftest import pipeline

SLOT = datetime(2026, 3, 8, 9, 0, tzinfo=UTC)


async def test_a_run_keeps_its_trigger_in_its_view_and_list(backend: LocalBackend) -> None:
    spec = pipeline({"id": "a", "action": "echo", "params": {"value": 1}})
    manual = await backend.start_run(spec)
    scheduled = await backend.start_run(
        spec, trigger=RunTrigger(kind="schedule", id="sch_1", time=SLOT)
    )
    hooked = await backend.start_run(spec, trigger=RunTrigger(kind="webhook", id="wh_1"))
    assert (await backend.get(manual)).trigger == RunTrigger()
    view = await backend.wait(scheduled, timeout=5)
    assert view.trigger == RunTrigger(kind="schedule", id="sch_1", time=SLOT)
    assert view.model_dump(mode="json")["trigger"] == {
        "kind": "schedule",
        "id": "sch_1",
        "time": "2026-03-08T09:00:00Z",
    }
    by_schedule = await backend.list_runs(trigger="schedule")
    assert [r.run_id for r in by_schedule] == [scheduled]
    assert by_schedule[0].trigger.time == SLOT
    assert [r.run_id for r in await backend.list_runs(trigger="webhook", trigger_id="wh_1")] == [
        hooked
    ]
    assert [r.run_id for r in await backend.list_runs(trigger="manual")] == [manual]


async def test_a_retry_is_started_by_hand(backend: LocalBackend) -> None:
    spec = pipeline({"id": "f", "action": "flaky", "params": {"mode": "result"}})
    first = await backend.start_run(spec, trigger=RunTrigger(kind="schedule", id="s", time=SLOT))
    await backend.wait(first, timeout=5)
    second = await backend.retry(first)
    assert (await backend.get(second)).trigger.kind == "manual"


def test_runs_from_before_the_trigger_columns_read_as_manual(tmp_path: object) -> None:
    path = f"{tmp_path}/old.db"
    store = Store(path).open()
    store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO pipelines VALUES ('h', 'p', '1', '{}', 0)")
    db.execute(
        "INSERT INTO runs (id, pipeline_hash, pipeline_name, status, params, created_at) "
        "VALUES ('r1', 'h', 'p', 'completed', '{}', 0)"
    )
    db.commit()
    db.close()
    store = Store(path).open()
    try:
        assert store.run_record("r1").trigger == RunTrigger()
    finally:
        store.close()


def test_a_trigger_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="kind"):
        RunTrigger.model_validate({"kind": "cron"})
