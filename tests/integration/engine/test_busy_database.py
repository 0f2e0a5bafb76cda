"""Another process holding SQLite's write lock: the engine neither waits it out on its loop nor
fails runs; it refuses new work as busy and carries on once the lock is released."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from conveyor.backends.local import LocalBackend
from conveyor.config import Settings
from conveyor.engine import RunStatus
from conveyor.errors import DatabaseBusyError
from conveyor.pipeline.loading import load_pipeline

PIPELINE = load_pipeline(
    {
        "name": "busy",
        "steps": [
            {"id": "pause", "action": "delay", "params": {"seconds": 0.3}},
            {"id": "after", "action": "log", "depends_on": ["pause"], "params": {"message": "x"}},
        ],
    }
)


async def test_a_held_write_lock_delays_runs_and_refuses_new_ones(tmp_path: Path) -> None:
    async with LocalBackend(settings=Settings(db_path=tmp_path / "c.db")) as backend:
        run_id = await backend.start_run(PIPELINE)
        holder = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseBusyError, match="locked by another process"):
                await backend.start_run(PIPELINE)
            assert time.monotonic() - started < 2  # Not the 10 s a busy timeout would wait.
            await asyncio.sleep(1.0)  # The delay ends meanwhile; its transition must wait.
            assert (await backend.get(run_id)).status is RunStatus.RUNNING
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        view = await backend.wait(run_id, timeout=30)
        assert view.status is RunStatus.COMPLETED
        assert [s.status.value for s in view.steps] == ["completed", "completed"]
