"""`conveyor worker` as an operator runs it: a real process against a real dev server.

The test actions are installed as a distribution (entry points in a directory on PYTHONPATH),
so the worker finds them the way it finds any plugin.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.actions import ActionRegistry
from conveyor.client import ActionStatus, Client
from conveyor.config import Settings
from tests.support.distributions import write_distribution
from tests.temporal.actions import lines
from tests.temporal.nomad_example import gpu_square, greet_action

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONVEYOR = Path(sys.executable).parent / "conveyor"


@pytest.fixture
def temporal_registry(temporal_registry: ActionRegistry) -> ActionRegistry:
    """What the client validates against: the shared test actions and the example ones."""
    temporal_registry.add_many([greet_action, gpu_square])
    return temporal_registry


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an installed distribution of the test actions."""
    root = tmp_path_factory.mktemp("site")
    write_distribution(
        root,
        "conveyor-worker-test-actions",
        entry_points={
            "grind": "tests.temporal.actions:GrindAction",
            "greet_workflow": "tests.temporal.nomad_example:greet_action",
            "gpu_square": "tests.temporal.nomad_example:gpu_square",
        },
    )
    return root


class WorkerProcess:
    """A `conveyor worker` process, its output in a file, its /health on a known port."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, health_port: int | None = None
    ) -> None:
        self.health_port = health_port or _free_port()
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [str(CONVEYOR), "worker", "--health-port", str(self.health_port), *args],
            env=env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/health"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    async def health(self) -> tuple[int, dict[str, Any]] | None:
        """The /health answer, or None while nothing listens."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(self.url)
        except httpx.TransportError:
            return None
        return answer.status_code, answer.json()

    async def until_polling(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for /health to answer 200; its body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            found = await self.health()
            if found is not None and found[0] == 200:
                return found[1]
            await asyncio.sleep(0.2)
        raise AssertionError(f"the worker never became healthy:\n{self.output()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the worker and wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._out.close()
        return code

    def wait(self, timeout: float = 60) -> int:
        """Wait for the worker to exit by itself; its exit code."""
        code = self.process.wait(timeout=timeout)
        self._out.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._out.close()


@pytest.fixture
def spawn(site: Path, temporal_settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Start `conveyor worker` processes with this test's cluster and task-queue prefix."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_settings.temporal_address,
        "CONVEYOR_TEMPORAL_TASK_QUEUE_PREFIX": temporal_settings.temporal_task_queue_prefix,
        "NO_COLOR": "1",
    }
    started: list[WorkerProcess] = []

    def start(*args: str, health_port: int | None = None) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(list(args), env, log, health_port)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.1)


async def test_sigterm_drains_running_activities_then_exits_zero(
    spawn: Any, temporal_client: Client, temporal_settings: Settings, tmp_path: Path
) -> None:
    worker = spawn("--grace", "60")
    body = await worker.until_polling()
    prefix = temporal_settings.temporal_task_queue_prefix
    assert body["status"] == "polling"
    assert body["queues"] == ["workflows", "cpu", "default", "gpu"]
    assert f"{prefix}-workflows" in body["task_queues"]
    assert body["running_activities"] == 0

    marker = tmp_path / "grind.txt"
    run_id = await temporal_client.start_action("grind", {"seconds": 4, "marker": str(marker)})

    async def running() -> bool:
        found = await worker.health()
        return bool(lines(marker)) and found is not None and found[1]["running_activities"] == 1

    await _until(running)
    worker.process.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        found = await worker.health()
        return found is not None and found[0] == 503

    await _until(draining, timeout=10)
    found = await worker.health()
    assert found is not None and found[1]["status"] == "stopping"
    assert worker.stop() == 0
    assert [line.split()[0] for line in lines(marker)] == ["start", "done"]
    output = worker.output()
    assert "stopping: SIGTERM" in output and "stopped: 1 activity run" in output
    # A run still in flight when its workflow worker stops is evicted: nothing may print a
    # traceback, its workflow coroutines included.
    assert "Traceback" not in output
    assert "Exception ignored" not in output

    # The finished activity's result was kept: a new worker completes the run.
    again = spawn()
    await again.until_polling()
    assert (await temporal_client.wait(run_id, timeout=60)).status.value == "completed"
    assert await temporal_client.get_action_status(run_id) is ActionStatus.COMPLETED
    assert again.stop(signal.SIGINT) == 0


async def test_a_queue_worker_loads_and_polls_only_its_queue(
    spawn: Any, temporal_client: Client, temporal_settings: Settings
) -> None:
    prefix = temporal_settings.temporal_task_queue_prefix
    gpu = spawn("--queue", "gpu", "--concurrency", "1")
    body = await gpu.until_polling()
    assert body["queues"] == ["gpu"]
    assert body["task_queues"] == [f"{prefix}-gpu"]
    assert "actions: 1 loaded: gpu_square" in gpu.output()

    # The runs themselves are driven by the default queue's worker, as NOMAD's CPU worker does.
    general = spawn("--queue", "default")
    body = await general.until_polling()
    assert body["queues"] == ["workflows", "default"]
    assert "gpu_square" not in general.output().split("actions:")[1].splitlines()[0]

    run_id = await temporal_client.start_action("gpu_square", {"n": 3})
    assert (await temporal_client.wait(run_id, timeout=60)).status.value == "completed"
    result = await temporal_client.get_action_result(run_id)
    assert result["square"] == 9
    assert result["pid"] == gpu.process.pid
    assert gpu.stop() == 0
    assert general.stop() == 0


def test_an_unreachable_address_is_one_line_and_exit_1(spawn: Any) -> None:
    worker = spawn("--address", "127.0.0.1:1")
    assert worker.wait() == 1
    output = worker.output()
    assert output.strip().splitlines() == [
        "error: cannot connect to Temporal at 127.0.0.1:1: connection refused"
    ]


def test_an_unknown_namespace_is_one_line_and_exit_1(spawn: Any, temporal_server: str) -> None:
    worker = spawn("--namespace", "no-such-namespace")
    assert worker.wait() == 1
    output = worker.output()
    assert output.strip().splitlines()[-1] == (
        f"error: namespace 'no-such-namespace' does not exist on {temporal_server}"
    )
    assert "Traceback" not in output


def test_a_taken_health_port_is_one_line_and_exit_1(spawn: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = spawn(health_port=port)
        assert worker.wait() == 1
    assert (
        worker.output()
        .strip()
        .splitlines()[-1]
        .startswith(f"error: cannot serve /health on 127.0.0.1:{port}: ")
    )
