"""A Temporal dev server for the session, settings and in-process workers per test.

`temporal_server` starts one dev server on loopback for the whole session. Each test gets its
own task-queue prefix, so workers of one test never take another test's tasks. `conveyor` is a
client over each backend in turn, for the scenarios that must give the same results on both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from conveyor.actions import ActionRegistry
from conveyor.backends.local import LocalBackend
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.backends.temporal.devserver import DevServerError, dev_server
from conveyor.backends.temporal.worker import WorkerOptions, build_workers, run_workers
from conveyor.client import Client
from conveyor.config import Settings
from tests.integration.engine.actions import JOURNAL, Journal
from tests.temporal import actions

HEARTBEAT_SECONDS = 2.0
"""How soon a lost worker is noticed in these tests."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the dev server `temporal`, so `-m "not temporal"` skips it."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_temporal = callspec is not None and callspec.params.get("conveyor") == "temporal"
        if on_temporal or "temporal_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.temporal)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address (`127.0.0.1:<port>`) of a Temporal dev server running for the session."""
    try:
        with dev_server(tmp_path_factory.mktemp("temporal")) as server:
            yield server.address
    except DevServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def temporal_settings(temporal_server: str, tmp_path: Path) -> Settings:
    """Settings for the Temporal backend, with a task-queue prefix of this test's own."""
    return Settings(
        backend="temporal",
        db_path=tmp_path / "conveyor.db",
        temporal_address=temporal_server,
        temporal_task_queue_prefix=f"test-{uuid.uuid4().hex[:12]}",
        queues={"default": 64, "gpu": 1},
    )


@pytest.fixture
def temporal_registry() -> ActionRegistry:
    """The actions the workers serve and the backend validates against."""
    return actions.registry()


@pytest.fixture
async def temporal_workers(
    temporal_settings: Settings, temporal_registry: ActionRegistry
) -> AsyncIterator[list[Worker]]:
    """Workflow and activity workers for every queue, in this process, stopped at teardown."""
    client = await TemporalClient.connect(temporal_settings.temporal_address)
    workers = build_workers(
        client,
        temporal_registry,
        temporal_settings,
        WorkerOptions(graceful_shutdown_seconds=1.0),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        yield workers
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


@pytest.fixture
async def temporal_client(
    temporal_settings: Settings, temporal_registry: ActionRegistry
) -> AsyncIterator[Client]:
    """A conveyor client over the Temporal backend (start workers with `temporal_workers`)."""
    backend = TemporalBackend(
        temporal_registry, temporal_settings, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    async with Client(backend) as client:
        yield client


@pytest.fixture
def journal() -> Journal:
    """The in-process journal of the engine suite's test actions, emptied."""
    fresh = Journal()
    JOURNAL.__dict__.clear()
    JOURNAL.__dict__.update(fresh.__dict__)
    return JOURNAL


@pytest.fixture
async def local_client(tmp_path: Path) -> AsyncIterator[Client]:
    """A client over the embedded backend on a SQLite file of this test."""
    settings = Settings(db_path=tmp_path / "conveyor.db", queues={"default": 64, "gpu": 1})
    async with Client(LocalBackend(actions.registry(), settings)) as client:
        yield client


@pytest.fixture
async def evicting_client(tmp_path: Path) -> AsyncIterator[Client]:
    """A client over the embedded backend that reads every run back after each commit."""
    settings = Settings(
        db_path=tmp_path / "evicting.db", queues={"default": 64, "gpu": 1}, force_evict=True
    )
    async with Client(LocalBackend(actions.registry(), settings)) as client:
        yield client


BACKENDS = ["local", "local-evicting", "temporal"]
"""The backends every scenario runs on: `local-evicting` is the embedded engine with
`force_evict`, which proves that everything the engine decides is committed."""


@pytest.fixture(params=BACKENDS)
def conveyor(request: pytest.FixtureRequest, journal: Journal) -> Client:
    """A client over each backend in turn (Temporal's with its workers running)."""
    if request.param == "local":
        client: Client = request.getfixturevalue("local_client")
        return client
    if request.param == "local-evicting":
        client = request.getfixturevalue("evicting_client")
        return client
    request.getfixturevalue("temporal_workers")
    client = request.getfixturevalue("temporal_client")
    return client
