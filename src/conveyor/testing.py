"""Helpers for testing actions and pipelines, built on the real interfaces.

    from conveyor.testing import run_executor, temporary_engine

    result = await run_executor(MyExecutor(), {"endpoint_id": "e1"})

    async with temporary_engine(MyAction) as client:
        run = await client.wait(await client.start("pipeline.yaml"), timeout=10)

Nothing here is a fake engine: `temporary_engine` is the embedded backend on a SQLite file in
a temporary folder, and `run_executor` calls your executor with a real `ActionContext`.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionRegistry,
    ActionResult,
    BaseActionExecutor,
    EventContext,
    EventResult,
    Publisher,
    ServiceInvoker,
)
from conveyor.actions.publishers import MemoryPublisher
from conveyor.client import Client
from conveyor.config import Settings

__all__ = ["MemoryPublisher", "deliver_event", "run_executor", "temporary_engine"]


async def run_executor(
    executor: BaseActionExecutor,
    params: Mapping[str, Any] | None = None,
    *,
    step_id: str = "step",
    run_id: str = "run",
    pipeline_params: Mapping[str, Any] | None = None,
    step_outputs: Mapping[str, Any] | None = None,
    attempt: int = 1,
    services: ServiceInvoker | None = None,
    publisher: Publisher | None = None,
    settings: Settings | None = None,
) -> ActionResult:
    """Call `executor.execute()` with a real `ActionContext`.

    Service calls go to `services` (a real invoker, e.g. `DirectHttpInvoker` pointed at a test
    server) and publishing to `publisher` (a `MemoryPublisher` that keeps what was published,
    unless another is given).
    """
    context = ActionContext(
        step_id=step_id,
        execution_id=run_id,
        params=dict(params or {}),
        workflow_params=dict(pipeline_params or {}),
        step_outputs=dict(step_outputs or {}),
        attempt=attempt,
        services=services,
        publisher=publisher or MemoryPublisher(),
        settings=settings or Settings(),
    )
    return await executor.execute(context)


async def deliver_event(
    executor: BaseActionExecutor,
    event_data: Mapping[str, Any],
    *,
    correlation_id: str = "wf-1",
    step_outputs: Mapping[str, Any] | None = None,
    event_type: str = "event",
    params: Mapping[str, Any] | None = None,
) -> EventResult:
    """Call `executor.on_event()` for one event, as the engine would."""
    context = EventContext(
        step_execution_id="run:step",
        execution_id="run",
        external_workflow_id=correlation_id,
        event_type=event_type,
        event_data=dict(event_data),
        step_outputs=dict(step_outputs or {}),
        step_id="step",
        params=dict(params or {}),
    )
    return await executor.on_event(context)


@asynccontextmanager
async def temporary_engine(
    *actions: object,
    builtins: bool = True,
    settings: Settings | None = None,
    db_path: str | Path | None = None,
) -> AsyncIterator[Client]:
    """A started embedded engine on a temporary SQLite file, with `actions` registered.

    Args:
        actions: Action classes (or definitions) to register besides the discovered ones.
        builtins: Also discover installed actions (the built-ins and plugins).
        settings: Settings to use; defaults, with the database in the temporary folder.
        db_path: Use this database file instead of a temporary one.
    """
    registry = ActionRegistry.default() if builtins else ActionRegistry()
    for action in actions:
        registry.add(action)
    with tempfile.TemporaryDirectory(prefix="conveyor-") as folder:
        path = Path(db_path) if db_path is not None else Path(folder) / "conveyor.db"
        used = (settings or Settings()).model_copy(update={"db_path": path})
        async with Client.local(db_path=path, registry=registry, settings=used) as client:
            yield client
