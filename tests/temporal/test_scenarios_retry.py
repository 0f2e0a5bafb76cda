"""Retrying a finished run, a cancel during a retry's backoff, and the run's timeline, on both
backends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.actions import StepStatus
from conveyor.client import Client
from conveyor.engine import RunStatus
from conveyor.errors import RunStateError
from tests.integration.engine.actions import Journal
from tests.temporal.scenario import WAIT, echo, pipeline, run_to_end, until


def backend(client: Client) -> Any:
    """The backend under the client, for what the client does not offer yet (retry, timeline)."""
    return client.backend


async def test_retrying_a_failed_run_keeps_its_completed_steps(
    conveyor: Client, journal: Journal, tmp_path: Path
) -> None:
    marker = str(tmp_path / "failed-once")
    spec = pipeline(
        echo("kept", id="first"),
        {
            "id": "bad",
            "action": "fails_first",
            "depends_on": ["first"],
            "params": {"marker": marker},
        },
        echo("{{ steps.first.outputs.value }}", id="last", depends_on=["bad"]),
        outputs={"last": "{{ steps.last.outputs.value }}"},
    )
    failed = await run_to_end(conveyor, spec)
    assert failed.status is RunStatus.FAILED
    retried_id = await backend(conveyor).retry(failed.run_id)
    retried = await conveyor.wait(retried_id, timeout=WAIT)
    assert retried.status is RunStatus.COMPLETED
    assert retried.retry_of == failed.run_id
    assert retried.outputs == {"last": "kept"}
    assert retried.step("first").status is StepStatus.COMPLETED
    assert journal.executions["first"] == 1
    assert retried.step("bad").outputs == {"attempt": 1}
    with pytest.raises(RunStateError):
        await backend(conveyor).retry(retried_id)


async def test_a_cancel_during_a_retry_backoff_ends_the_run_at_once(conveyor: Client) -> None:
    spec = pipeline(
        {
            "id": "x",
            "action": "flaky",
            "retry": {"max_attempts": 3, "initial_interval_seconds": 30},
        },
    )
    run_id = await conveyor.start(spec)
    await until(conveyor, run_id, lambda r: r.step("x").status is StepStatus.RETRYING)
    started = time.monotonic()
    run = await conveyor.cancel(run_id)
    assert time.monotonic() - started < 8
    assert run.status is RunStatus.CANCELLED
    assert run.step("x").status is StepStatus.CANCELLED
    assert run.step("x").attempt == 1


async def test_the_timeline_tells_the_same_story(conveyor: Client) -> None:
    spec = pipeline(
        echo(1, id="a"),
        {
            "id": "b",
            "action": "flaky",
            "depends_on": ["a"],
            "params": {"succeed_on": 2},
            "retry": {"max_attempts": 2, "initial_interval_seconds": 0.05},
        },
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED
    events = await backend(conveyor).timeline(run.run_id)
    story = [(e.kind, e.step_id, e.status, e.attempt) for e in events]
    assert story == [
        ("run", None, "running", None),
        ("step", "a", "running", 1),
        ("step", "a", "completed", 1),
        ("step", "b", "running", 1),
        ("step", "b", "retrying", 1),
        ("step", "b", "running", 2),
        ("step", "b", "completed", 2),
        ("run", None, "completed", None),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    later = await backend(conveyor).timeline(run.run_id, after=2, limit=2)
    assert [e.seq for e in later] == [3, 4]
