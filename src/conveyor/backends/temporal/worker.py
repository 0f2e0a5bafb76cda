"""Workers: the workflow worker, and one worker per Conveyor queue.

`conveyor worker --queue gpu` serves only the `gpu` task queue with only that queue's actions,
as NOMAD's GPU worker does; `conveyor worker` with no queue serves the run workflows and every
queue the installed actions use. Options naming queues serve the run workflows (and event
mailboxes) only when asked; the CLI asks for them with the `default` queue (`WORKFLOWS_QUEUE`):
like NOMAD's CPU worker, the general-purpose worker carries the orchestration, and a GPU worker
carries only GPU work.

A queue's worker also registers the NOMAD-shaped actions (`nomad.Action`, or an
`ActionEntryPoint`, loaded here and only here) of that queue: their hand-written workflows on
the Action's `task_queue`, their activities on its `task_queue_activities` (or `task_queue`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from conveyor.actions import ActionDefinition, ActionRegistry, Publisher, ServiceInvoker
from conveyor.backends.temporal import names
from conveyor.backends.temporal.activities import HEARTBEAT_EVERY_SECONDS, ConveyorActivities
from conveyor.backends.temporal.nomad import WorkflowSource, action_of, workflow_actions
from conveyor.backends.temporal.workflows import MailboxWorkflow, RunWorkflow
from conveyor.config import Settings

# Conveyor's own modules are deterministic and side-effect free where workflows use them;
# passing them through keeps one copy (and one compiled-template cache) per process.
_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "conveyor", "jinja2", "markupsafe", "structlog", "orjson", "yaml", "httpx", "uuid6"
    )
)

WORKFLOWS_QUEUE = "default"
"""The queue whose `conveyor worker` also serves the run workflows when queues are named."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs."""

    queues: Sequence[str] | None = None
    """Conveyor queues to serve; None serves the workflows and every queue."""
    max_concurrent_activities: int | None = None
    graceful_shutdown_seconds: float = 10.0
    workflows: bool | None = None
    """Serve the run workflows; None: only when no queue is named."""

    @property
    def serves_workflows(self) -> bool:
        """Whether these options serve the run workflows and mailboxes."""
        if self.workflows is not None:
            return self.workflows
        return self.queues is None


@dataclass
class ActivityCounter(Interceptor):
    """Counts the activities running in the workers it is given to, for `/health`."""

    running: int = 0
    finished: int = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap each activity execution to count it."""
        return _Counting(next, self)


class _Counting(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, counter: ActivityCounter) -> None:
        super().__init__(next)
        self._counter = counter

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._counter.running += 1
        try:
            return await super().execute_activity(input)
        finally:
            self._counter.running -= 1
            self._counter.finished += 1


def queues_of(registry: ActionRegistry) -> list[str]:
    """Every queue the registry's actions run on (NOMAD actions' activity queues included)."""
    queues = {definition.meta.queue for definition in registry}
    queues.update(action.activity_queue for action in workflow_actions(registry))
    return sorted(queues)


def registry_for(registry: ActionRegistry, queues: Sequence[str]) -> ActionRegistry:
    """The actions a worker for `queues` needs: those of the queues, and the NOMAD actions
    whose activities run there."""
    wanted = set(queues)
    return ActionRegistry(
        definition
        for definition in registry
        if definition.meta.queue in wanted or _activity_queue(definition) in wanted
    )


def _activity_queue(definition: ActionDefinition) -> str | None:
    action = action_of(definition)
    return action.activity_queue if action is not None else None


def build_workers(
    client: Client,
    registry: ActionRegistry,
    settings: Settings,
    options: WorkerOptions = WorkerOptions(),
    *,
    services: ServiceInvoker | None = None,
    publisher: Publisher | None = None,
    extra_queues: Sequence[str] = (),
    counter: ActivityCounter | None = None,
) -> list[Worker]:
    """The workers `options` asks for (not started)."""
    prefix = settings.temporal_task_queue_prefix
    shutdown = timedelta(seconds=options.graceful_shutdown_seconds)
    interceptors: list[Interceptor] = [counter] if counter is not None else []
    workers: list[Worker] = []
    everything = options.queues is None
    queues = (
        sorted({*queues_of(registry), *extra_queues}) if everything else list(options.queues or [])
    )
    nomad = workflow_actions(registry)

    def queue_parts(queue: str) -> tuple[list[type], list[Any], dict[str, Any]]:
        served = registry if everything else registry.for_queue(queue)
        queue_acts = ConveyorActivities(
            served, settings, client, services=services, publisher=publisher
        )
        workflows, activities = _nomad_parts(nomad, queue)
        limits: dict[str, Any] = {
            "max_concurrent_activities": options.max_concurrent_activities
            or settings.queue_capacity(queue),
            # A cancel reaches an activity only with a heartbeat's answer: send them often.
            "max_heartbeat_throttle_interval": timedelta(seconds=HEARTBEAT_EVERY_SECONDS),
        }
        return workflows, [*queue_acts.for_queue(), *activities], limits

    # The default queue's activities share the workflows' task queue (names.activity_queue):
    # one worker must serve both for the SDK to start them eagerly.
    merged = options.serves_workflows and names.DEFAULT_QUEUE in queues
    if options.serves_workflows:
        acts = ConveyorActivities(
            registry, settings, client, services=services, publisher=publisher
        )
        workflows: list[type] = [RunWorkflow, MailboxWorkflow]
        activities: list[Any] = [acts.subscribe]
        # `subscribe` runs as a local activity only: without the default queue's actions this
        # worker must not poll the queue's activity tasks, which it could not run.
        limits: dict[str, Any] = {"no_remote_activities": True}
        if merged:
            more_workflows, more_activities, limits = queue_parts(names.DEFAULT_QUEUE)
            workflows += more_workflows
            activities += more_activities
        workers.append(
            Worker(
                client,
                task_queue=names.workflow_queue(prefix),
                workflows=workflows,
                activities=activities,
                workflow_runner=_RUNNER,
                graceful_shutdown_timeout=shutdown,
                interceptors=interceptors,
                **limits,
            )
        )
    for queue in queues:
        if merged and queue == names.DEFAULT_QUEUE:
            continue
        workflows, activities, limits = queue_parts(queue)
        workers.append(
            Worker(
                client,
                task_queue=names.activity_queue(prefix, queue),
                workflows=workflows,
                activities=activities,
                workflow_runner=_RUNNER,
                graceful_shutdown_timeout=shutdown,
                interceptors=interceptors,
                **limits,
            )
        )
    return workers


def _nomad_parts(sources: Sequence[WorkflowSource], queue: str) -> tuple[list[type], list[Any]]:
    """The hand-written workflows and activities that run on `queue`, each once.

    Only the actions of `queue` are loaded: an entry point of another queue never imports
    its workflow, nor the optional dependencies of its activities.
    """
    workflows: dict[str, type] = {}
    activities: dict[int, Any] = {}
    for source in sources:
        if queue not in (source.task_queue, source.activity_queue):
            continue
        action = source.loaded()
        if action.task_queue == queue:
            workflows.setdefault(action.workflow_name, action.workflow)
        if action.activity_queue == queue:
            for function in action.activities:
                activities.setdefault(id(function), function)
    return list(workflows.values()), list(activities.values())


async def run_workers(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Run `workers` until `stop` is set, then shut them down gracefully, all at once.

    Shutting down stops polling at once; running activities get the workers' graceful
    shutdown timeout to finish before they are cancelled.
    """
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        await stop.wait()
        # Together, so the grace period is waited once rather than once per worker.
        await asyncio.gather(*(worker.shutdown() for worker in workers))
