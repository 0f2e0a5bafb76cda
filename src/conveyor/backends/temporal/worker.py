"""Workers: the workflow worker, and one activity worker per Conveyor queue.

`conveyor worker --queue gpu` serves only the `gpu` task queue with only that queue's actions
loaded, as NOMAD's GPU worker does; `conveyor worker` with no queue serves the workflows and
every queue the installed actions use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from conveyor.actions import ActionRegistry, Publisher, ServiceInvoker
from conveyor.backends.temporal import names
from conveyor.backends.temporal.activities import ConveyorActivities
from conveyor.backends.temporal.workflows import MailboxWorkflow, RunWorkflow
from conveyor.config import Settings

# Conveyor's own modules are deterministic and side-effect free where workflows use them;
# passing them through keeps one copy (and one compiled-template cache) per process.
_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "conveyor", "jinja2", "markupsafe", "structlog", "orjson", "yaml", "httpx"
    )
)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs."""

    queues: Sequence[str] | None = None
    """Conveyor queues to serve; None serves the workflows and every queue."""
    max_concurrent_activities: int | None = None
    graceful_shutdown_seconds: float = 10.0


def queues_of(registry: ActionRegistry) -> list[str]:
    """Every queue the registry's actions run on."""
    return sorted({definition.meta.queue for definition in registry})


def build_workers(
    client: Client,
    registry: ActionRegistry,
    settings: Settings,
    options: WorkerOptions = WorkerOptions(),
    *,
    services: ServiceInvoker | None = None,
    publisher: Publisher | None = None,
    extra_queues: Sequence[str] = (),
) -> list[Worker]:
    """The workers `options` asks for (not started)."""
    prefix = settings.temporal_task_queue_prefix
    shutdown = timedelta(seconds=options.graceful_shutdown_seconds)
    workers: list[Worker] = []
    everything = options.queues is None
    acts = ConveyorActivities(registry, settings, client, services=services, publisher=publisher)
    if everything:
        workers.append(
            Worker(
                client,
                task_queue=names.workflow_queue(prefix),
                workflows=[RunWorkflow, MailboxWorkflow],
                activities=[acts.subscribe],
                workflow_runner=_RUNNER,
                graceful_shutdown_timeout=shutdown,
            )
        )
    queues = (
        sorted({*queues_of(registry), *extra_queues}) if everything else list(options.queues or [])
    )
    for queue in queues:
        served = registry if everything else registry.for_queue(queue)
        queue_acts = ConveyorActivities(
            served, settings, client, services=services, publisher=publisher
        )
        workers.append(
            Worker(
                client,
                task_queue=names.activity_queue(prefix, queue),
                activities=queue_acts.for_queue(),
                max_concurrent_activities=options.max_concurrent_activities
                or settings.queue_capacity(queue),
                graceful_shutdown_timeout=shutdown,
            )
        )
    return workers


async def run_workers(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Run `workers` until `stop` is set, then shut them down gracefully."""
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        await stop.wait()
