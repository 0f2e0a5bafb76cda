"""`conveyor worker`: a Temporal worker for some queues (or all), with a `/health` endpoint.

With no `--queue` it serves the run workflows and every queue the installed actions use. With
`--queue gpu` it loads only the `gpu` queue's actions and polls only that task queue, as NOMAD's
GPU worker does; the run workflows go with the `default` queue's worker (or `--workflows`).
SIGTERM or Ctrl-C stops polling, lets running activities finish within `--grace` seconds,
and exits 0; `/health` answers 503 from the first signal on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.text import Text

from conveyor.cli.app import app
from conveyor.cli.backends import CONNECT_TIMEOUT
from conveyor.cli.common import configure_logging, settings_for, stderr, warning
from conveyor.config import Settings
from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from conveyor.actions import ActionRegistry
    from conveyor.backends.temporal.worker import ActivityCounter, WorkerOptions


@app.command("worker")
def worker_command(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            help="Serve only this queue's actions (repeatable); default: every queue.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            metavar="N",
            help="At most N activities at once per queue (default: the queue's capacity).",
            show_default=False,
        ),
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve GET /health on this port (0: any free port).",
            show_default=False,
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option("--health-host", metavar="HOST", help="The address /health listens on.")
    ] = "127.0.0.1",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="HOST:PORT",
            help="The Temporal frontend (default: $CONVEYOR_TEMPORAL_ADDRESS).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            metavar="NAME",
            help="The Temporal namespace (default: $CONVEYOR_TEMPORAL_NAMESPACE).",
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            metavar="SECONDS",
            help="How long running activities may finish after a stop signal.",
        ),
    ] = 10.0,
    workflows: Annotated[
        bool | None,
        typer.Option(
            "--workflows/--no-workflows",
            help="Serve the run workflows (default: with no --queue, or with --queue default).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a Temporal worker for Conveyor's workflows and actions."""
    from conveyor.backends.temporal import require_temporal

    try:
        require_temporal()
    except ConfigurationError as exc:
        _error_line(str(exc))
        raise typer.Exit(1) from None
    settings = settings_for(None)
    updates: dict[str, Any] = {"backend": "temporal"}
    if address is not None:
        updates["temporal_address"] = address
    if namespace is not None:
        updates["temporal_namespace"] = namespace
    settings = settings.model_copy(update=updates)
    configure_logging()

    from conveyor.backends.temporal.worker import WORKFLOWS_QUEUE, WorkerOptions

    queues = sorted(set(queue)) if queue else None
    if workflows is None:
        workflows = queues is None or WORKFLOWS_QUEUE in queues
    options = WorkerOptions(
        queues=queues,
        max_concurrent_activities=concurrency,
        graceful_shutdown_seconds=grace,
        workflows=workflows,
    )
    registry = _registry(options)
    code = asyncio.run(_run(settings, options, registry, health_port, health_host))
    # The workers are shut down and everything is said: leave now. Temporal's core keeps
    # threads of its own that may call into Python while the interpreter finalizes, which
    # aborted about one exit in six here ("PyGILState_Release ... finalizing", status -6).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _registry(options: WorkerOptions) -> ActionRegistry:
    from conveyor.actions import ActionRegistry
    from conveyor.backends.temporal.worker import queues_of, registry_for

    everything = ActionRegistry.default()
    for failure in everything.failures:
        warning(f"skipped plugin {failure}")
    if options.queues is None:
        return _loadable(everything, queues_of(everything))
    served = _loadable(registry_for(everything, options.queues), options.queues)
    for name in options.queues:
        if not any(d.meta.queue == name for d in served):
            warning(f"no installed action runs on queue {name!r}")
    return served


def _loadable(registry: ActionRegistry, queues: Sequence[str]) -> ActionRegistry:
    """`registry` without the entry points of `queues` whose `load()` fails here (a missing
    extra, say): each is a warning, as a plugin that does not import is."""
    from conveyor.actions import ActionRegistry
    from conveyor.backends.temporal.nomad import action_of

    kept = []
    for definition in registry:
        source = action_of(definition)
        if source is not None and {source.task_queue, source.activity_queue} & set(queues):
            try:
                source.loaded()
            except Exception as exc:  # noqa: BLE001 - reported, and the rest is served
                # One line, unwrapped, as the worker's other messages: greppable in a log.
                stderr.print(
                    Text.assemble(
                        ("warning: ", "yellow"),
                        f"skipped action {definition.type}: {type(exc).__name__}: {exc}",
                    ),
                    soft_wrap=True,
                )
                continue
        kept.append(definition)
    return ActionRegistry(kept)


@dataclass
class _State:
    """What `/health` reports."""

    settings: Settings
    queues: list[str]
    task_queues: list[str] = field(default_factory=list)
    stopping: bool = False
    counter: ActivityCounter | None = None

    def report(self) -> dict[str, Any]:
        return {
            "status": "stopping" if self.stopping else "polling",
            "address": self.settings.temporal_address,
            "namespace": self.settings.temporal_namespace,
            "queues": self.queues,
            "task_queues": self.task_queues,
            "running_activities": self.counter.running if self.counter is not None else 0,
        }


async def _run(
    settings: Settings,
    options: WorkerOptions,
    registry: ActionRegistry,
    health_port: int | None,
    health_host: str,
) -> int:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from conveyor.backends.temporal.connection import connect, describe
    from conveyor.backends.temporal.health import HealthServer
    from conveyor.backends.temporal.worker import (
        ActivityCounter,
        build_workers,
        queues_of,
        run_workers,
    )

    target = settings.temporal_address
    try:
        # The pydantic converter also reads and writes dicts and dataclasses, and lets NOMAD
        # workflows take and return Pydantic models.
        client = await asyncio.wait_for(
            connect(settings, data_converter=pydantic_data_converter), CONNECT_TIMEOUT
        )
    except TimeoutError:
        _exit_with(f"cannot reach Temporal at {target}: no answer within {CONNECT_TIMEOUT:g}s")
    except ConfigurationError as exc:  # TemporalConnectionError too: one line already
        _exit_with(str(exc))
    await _check_namespace(client, settings)
    counter = ActivityCounter()
    workers = build_workers(client, registry, settings, options, counter=counter)
    queues = list(options.queues) if options.queues is not None else queues_of(registry)
    state = _State(
        settings=settings,
        queues=(["workflows"] if options.serves_workflows else []) + queues,
        task_queues=[worker.task_queue for worker in workers],
        counter=counter,
    )
    _say(
        "worker",
        f"Temporal {target}, namespace {settings.temporal_namespace} ({describe(settings)})",
    )
    _say("queues", ", ".join(state.queues) or "none")
    _say("task queues", ", ".join(state.task_queues))
    _say("actions", f"{len(registry)} loaded: {', '.join(registry.types()) or 'none'}")
    health: HealthServer | None = None
    if health_port is not None:
        health = HealthServer(
            state.report, lambda: not state.stopping, host=health_host, port=health_port
        )
        try:
            await health.start()
        except OSError as exc:
            _exit_with(f"cannot serve /health on {health_host}:{health_port}: {exc.strerror}")
        _say("health", f"http://{health_host}:{health.port}/health")
    stop = asyncio.Event()

    def on_signal(name: str) -> None:
        if state.stopping:
            return
        state.stopping = True
        _say(
            "stopping",
            f"{name}: no new tasks; running activities get {options.graceful_shutdown_seconds:g}s",
        )
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    _say("polling", "SIGTERM or Ctrl-C stops the worker gracefully")
    try:
        await run_workers(workers, stop)
    except Exception as exc:  # noqa: BLE001 - a worker's fatal error, as one line
        from conveyor.backends.temporal.connection import connect_failure

        _exit_with(f"the worker stopped: {connect_failure(exc, settings)}")
    finally:
        if health is not None:
            await health.stop()
    _say("stopped", f"{counter.finished} activit{'y' if counter.finished == 1 else 'ies'} run")
    return 0


async def _check_namespace(client: Any, settings: Settings) -> None:
    """Exit with a clear line when the namespace does not exist (workers would only log it)."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError, RPCStatusCode

    name = settings.temporal_namespace
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            _exit_with(f"namespace {name!r} does not exist on {settings.temporal_address}")
        _exit_with(f"cannot use namespace {name!r}: {exc.message}")


def _exit_with(message: str) -> NoReturn:
    """Say why the worker cannot run, on one line, and exit 1 at once.

    At once: after a failed connect, the Temporal core's threads can still call into Python
    while the interpreter finalizes, which aborts the process (exit 134) instead of exiting 1.
    """
    _error_line(message)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _error_line(message: str) -> None:
    # Unwrapped, so the message stays one line (and greppable) in a narrow log or terminal.
    stderr.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def _say(label: str, message: str) -> None:
    stderr.print(Text.assemble((f"{label}: ", "bold cyan"), message), soft_wrap=True)
