"""A worker killed mid-step: the step runs again on another worker and the run completes.

The worker runs as a subprocess so it can be killed for real (SIGKILL: no graceful shutdown,
no last heartbeat). Its activities heartbeat within the backend's heartbeat timeout, so
Temporal notices the loss after that timeout and hands the step to the next worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from temporalio.client import Client as TemporalClient

from conveyor.actions import ActionRegistry, StepStatus
from conveyor.backends.temporal.worker import WorkerOptions, build_workers, run_workers
from conveyor.client import Client
from conveyor.config import Settings
from conveyor.engine import RunStatus
from tests.temporal.actions import lines
from tests.temporal.conftest import HEARTBEAT_SECONDS
from tests.temporal.scenario import eventually, pipeline, until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@contextmanager
def worker_process(
    settings: Settings, log: Path, queues: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker subprocess for `settings`; killed (with its group) when the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.temporal.worker_process",
                settings.temporal_address,
                settings.temporal_task_queue_prefix,
                *queues,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its group, and reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def started_pids(marker: Path) -> list[int]:
    """The worker process ids the grind step started in, in order."""
    return [int(line.split()[1]) for line in lines(marker) if line.startswith("start ")]


@pytest.fixture
async def workflow_worker(temporal_settings: Settings) -> AsyncIterator[None]:
    """Only the workflow worker, in this process: the actions run in worker subprocesses."""
    client = await TemporalClient.connect(temporal_settings.temporal_address)
    workers = build_workers(
        client, ActionRegistry(), temporal_settings, WorkerOptions(graceful_shutdown_seconds=1)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def kill_mid_step(
    client: Client, settings: Settings, tmp_path: Path, queues: Sequence[str]
) -> tuple[int, int, float, Client, str]:
    """Start a 3 s step, kill its worker mid-step, start another; wait for the run's end.

    Returns the two workers' pids, the seconds from the kill to the run's end, and the run id.
    """
    marker = tmp_path / "marker.txt"
    log = tmp_path / "workers.log"
    spec = pipeline(
        {"id": "grind", "action": "grind", "params": {"seconds": 3, "marker": str(marker)}},
        {"id": "after", "action": "echo", "depends_on": ["grind"], "params": {"value": 1}},
    )
    with worker_process(settings, log, queues) as first:
        run_id = await client.start(spec)
        await eventually(lambda: started_pids(marker) == [first.pid], timeout=30)
        assert (await client.get(run_id)).step("grind").status is StepStatus.RUNNING
        kill(first)
        killed_at = time.monotonic()
    with worker_process(settings, log, queues) as second:
        await client.wait(run_id, timeout=60)
        took = time.monotonic() - killed_at
    assert started_pids(marker) == [first.pid, second.pid]
    assert f"done {first.pid}" not in lines(marker)
    return first.pid, second.pid, took, client, run_id


async def check_completed_on(client: Client, run_id: str, pid: int) -> None:
    """The run completed, its step's one attempt done by the worker `pid`."""
    run = await client.get(run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    grind = run.step("grind")
    # Still the step's first attempt: a lost worker is not the action failing.
    assert grind.attempt == 1
    assert grind.outputs == {"pid": pid}
    assert run.step("after").status is StepStatus.COMPLETED


@pytest.mark.usefixtures("workflow_worker")
async def test_a_killed_action_workers_step_completes_on_another(
    temporal_settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    _, second, took, client, run_id = await kill_mid_step(
        temporal_client, temporal_settings, tmp_path, ["default"]
    )
    await check_completed_on(client, run_id, second)
    # Noticed within the heartbeat timeout, then 3 s of work again, plus scheduling slack.
    assert took < HEARTBEAT_SECONDS + 3 + 8, f"took {took:.1f}s after the kill"
    print(f"\naction worker killed: run completed {took:.1f}s after the kill")


async def test_a_killed_whole_workers_run_completes_on_another(
    temporal_settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    _, second, took, client, run_id = await kill_mid_step(
        temporal_client, temporal_settings, tmp_path, []
    )
    await check_completed_on(client, run_id, second)
    # The run's workflow also lived on the killed worker: Temporal first offers its next task
    # to that worker's sticky queue and moves it to the shared queue after a timeout (10 s).
    assert took < HEARTBEAT_SECONDS + 3 + 10 + 15, f"took {took:.1f}s after the kill"
    print(f"\nwhole worker killed: run completed {took:.1f}s after the kill")


@pytest.mark.usefixtures("workflow_worker")
async def test_a_killed_workers_non_idempotent_step_fails_as_interrupted(
    temporal_settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    log = tmp_path / "workers.log"
    spec = pipeline(
        {"id": "once", "action": "grind_once", "params": {"seconds": 30, "marker": str(marker)}},
    )
    with worker_process(temporal_settings, log, ["default"]) as first:
        run_id = await temporal_client.start(spec)
        await eventually(lambda: started_pids(marker) == [first.pid], timeout=30)
        kill(first)
    with worker_process(temporal_settings, log, ["default"]):
        run = await until(temporal_client, run_id, lambda r: r.status.is_terminal, timeout=60)
    assert run.status is RunStatus.FAILED
    once = run.step("once")
    assert once.status is StepStatus.FAILED
    assert (once.error or "").startswith("interrupted: the worker running this step was lost")
    assert "'grind_once' is not idempotent, so it was not run again" in (once.error or "")
    assert started_pids(marker) == [first.pid]
