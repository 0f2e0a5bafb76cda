"""Carries out executions: `execute()`, `on_event()` and `cleanup()` of actions, as asyncio tasks.

Each queue has a capacity (e.g. `gpu: 1`) shared by all runs in this process; an execution
beyond it waits in the queue's line. Results go back to the engine as state machine inputs.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from conveyor.actions import (
    ActionContext,
    ActionRegistry,
    ActionResult,
    EventAction,
    EventContext,
    EventResult,
    Publisher,
    ServiceInvoker,
    StepStatus,
)
from conveyor.backends.local.steplogs import LogSink, StepLogger
from conveyor.config import Settings
from conveyor.engine.messages import (
    Abort,
    EventApplied,
    Execute,
    ExecutionFailed,
    ExecutionFinished,
    FailureKind,
    Input,
    ProgressReported,
)
from conveyor.engine.values import checked_event_result
from conveyor.errors import ConveyorError

log = structlog.get_logger("conveyor.runner")

UnitKey = tuple[str, str, int | None]
Submit = Callable[[str, Input, Any], None]


class UnitView(NamedTuple):
    """What `on_event()` is decided from: a waiting unit as it is when its turn comes."""

    action: str
    status: StepStatus
    attempt: int
    external_id: str | None
    outputs: dict[str, Any]
    params: dict[str, Any]


@dataclass
class _Queue:
    capacity: int
    running: int = 0
    line: deque[tuple[str, Execute, Mapping[str, Any], Mapping[str, Any]]] = field(
        default_factory=deque
    )


@dataclass
class _Running:
    task: asyncio.Task[None]
    attempt: int
    aborted: bool = False


class Runner:
    """Runs executors for the engine and reports back through `submit(run_id, input, tag)`."""

    def __init__(
        self,
        registry: ActionRegistry,
        settings: Settings,
        submit: Submit,
        *,
        services: ServiceInvoker | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], float],
        log_sink: LogSink | None = None,
    ) -> None:
        self._registry = registry
        self._log_sink = log_sink
        self._settings = settings
        self._submit = submit
        self._services = services
        self._publisher = publisher
        # The invoker made from settings on first use is shared by every step and closed at
        # `stop()`: one per step would open (and leak) an HTTP client for each.
        self._owned: list[ServiceInvoker] = []
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._running: dict[UnitKey, _Running] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._unit_locks: dict[UnitKey, asyncio.Lock] = {}
        # Units of each run executing or in a line: `busy()` is asked after every transition,
        # and scanning every unit in flight made it cost as much as the transition itself.
        self._in_flight: Counter[str] = Counter()

    def busy(self, run_id: str) -> bool:
        """Whether anything of the run is executing or in a queue's line."""
        return self._in_flight[run_id] > 0

    def _landed(self, run_id: str) -> None:
        left = self._in_flight[run_id] - 1
        if left > 0:
            self._in_flight[run_id] = left
        else:
            del self._in_flight[run_id]

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """(running, waiting in line) per queue."""
        return {name: (q.running, len(q.line)) for name, q in self._queues.items()}

    # ------------------------------------------------------------ execute

    def execute(
        self,
        run_id: str,
        command: Execute,
        pipeline_params: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
    ) -> None:
        """Run `execute()` for the unit as soon as its queue has room."""
        self._in_flight[run_id] += 1
        queue = self._queue(command.queue)
        if queue.running < queue.capacity:
            self._launch(queue, run_id, command, pipeline_params, step_outputs)
        else:
            queue.line.append((run_id, command, pipeline_params, step_outputs))

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(self._settings.queue_capacity(name))
        return queue

    def _launch(
        self,
        queue: _Queue,
        run_id: str,
        command: Execute,
        pipeline_params: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
    ) -> None:
        queue.running += 1
        key = (run_id, command.step_id, command.index)
        task = asyncio.get_running_loop().create_task(
            self._execute(queue, key, run_id, command, pipeline_params, step_outputs)
        )
        self._running[key] = _Running(task, command.attempt)

    async def _execute(
        self,
        queue: _Queue,
        key: UnitKey,
        run_id: str,
        command: Execute,
        pipeline_params: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
    ) -> None:
        executor = None
        message: Input | None = None
        try:
            # Inside the try: a context that cannot be made fails the step, instead of ending
            # this task with the unit left RUNNING.
            context = self._context(run_id, command, pipeline_params, step_outputs)
            executor = self._registry.get(command.action).new_executor()
            if command.timeout_seconds is not None:
                timeout = asyncio.timeout(command.timeout_seconds)
                try:
                    async with timeout:
                        result = await executor.execute(context)
                except TimeoutError:
                    if not timeout.expired():
                        raise
                    message = ExecutionFailed(
                        command.step_id,
                        command.index,
                        command.attempt,
                        f"timed out after {command.timeout_seconds:g}s",
                        FailureKind.TIMEOUT,
                    )
                    await self._cleanup(executor, context)
                    return
            else:
                result = await executor.execute(context)
            if not isinstance(result, ActionResult):
                message = ExecutionFailed(
                    command.step_id,
                    command.index,
                    command.attempt,
                    f"execute() returned {type(result).__name__}, not an ActionResult",
                    FailureKind.INVALID,
                )
            else:
                message = ExecutionFinished(command.step_id, command.index, command.attempt, result)
        except asyncio.CancelledError:
            running = self._running.get(key)
            if running is not None and running.aborted and executor is not None:
                await self._cleanup(executor, context)
            raise
        except ConveyorError as exc:
            message = self._failure(command, str(exc))
        except Exception as exc:  # noqa: BLE001 - any executor error is the step's failure
            message = self._failure(command, f"{type(exc).__name__}: {exc}")
        finally:
            self._running.pop(key, None)
            self._landed(run_id)
            queue.running -= 1
            while queue.line and queue.running < queue.capacity:
                self._launch(queue, *queue.line.popleft())
            if message is not None:
                self._submit(run_id, message, None)

    @staticmethod
    def _failure(command: Execute, error: str) -> ExecutionFailed:
        return ExecutionFailed(command.step_id, command.index, command.attempt, error)

    def _context(
        self,
        run_id: str,
        command: Execute | Abort,
        pipeline_params: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
    ) -> ActionContext:
        step_id, index, attempt = command.step_id, command.index, command.attempt

        async def report(percent: float, message: str | None) -> None:
            self._submit(run_id, ProgressReported(step_id, index, attempt, percent, message), None)

        return ActionContext(
            step_id=step_id,
            execution_id=run_id,
            params=dict(command.params),
            workflow_params=dict(pipeline_params),
            step_outputs=step_outputs,
            attempt=attempt,
            item=getattr(command, "item", None),
            item_index=index,
            action_type=command.action,
            services=self._shared_services(),
            publisher=self._publisher,
            settings=self._settings,
            progress_sink=report,
            logger=self._logger(run_id, step_id, index, attempt),
        )

    def _logger(
        self, run_id: str, step_id: str, index: int | None, attempt: int
    ) -> StepLogger | None:
        """A step's `context.logger` that keeps its lines with the run (None: structlog's)."""
        if self._log_sink is None:
            return None
        return StepLogger(self._log_sink, run_id, step_id, index, attempt)

    def _shared_services(self) -> ServiceInvoker | None:
        if self._services is None:
            from conveyor.actions.invokers import invoker_from_settings

            try:
                self._services = invoker_from_settings(self._settings)
            except ConveyorError:
                return None  # The step's own call then raises it, as the step's failure.
            self._owned.append(self._services)
        return self._services

    # ------------------------------------------------------------ abort and cleanup

    def abort(
        self,
        run_id: str,
        command: Abort,
        pipeline_params: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
    ) -> None:
        """Cancel the unit's running `execute()` (its cleanup follows), or just clean up."""
        key = (run_id, command.step_id, command.index)
        running = self._running.get(key)
        if running is not None and running.attempt == command.attempt:
            running.aborted = True
            running.task.cancel()
            return
        for queue in self._queues.values():
            for item in list(queue.line):
                if item[0] == run_id and (item[1].step_id, item[1].index) == key[1:]:
                    queue.line.remove(item)
                    self._landed(run_id)
                    return
        context = self._context(run_id, command, pipeline_params, step_outputs)
        try:
            executor = self._registry.get(command.action).new_executor()
        except ConveyorError:
            return
        self._spawn(self._cleanup(executor, context))

    async def _cleanup(self, executor: Any, context: ActionContext) -> None:
        try:
            await executor.cleanup(context)
        except Exception:
            log.warning(
                "cleanup_failed", run_id=context.run_id, step_id=context.step_id, exc_info=True
            )

    # ------------------------------------------------------------ events

    def deliver(
        self,
        run_id: str,
        step_id: str,
        index: int | None,
        attempt: int,
        event: Any,
        unit_view: Callable[[], UnitView | None],
        tag: Any,
    ) -> None:
        """Run `on_event()` for one event and one waiting unit, one event at a time per unit."""
        self._spawn(self._deliver(run_id, step_id, index, attempt, event, unit_view, tag))

    async def _deliver(
        self,
        run_id: str,
        step_id: str,
        index: int | None,
        attempt: int,
        event: Any,
        unit_view: Callable[[], UnitView | None],
        tag: Any,
    ) -> None:
        key = (run_id, step_id, index)
        lock = self._unit_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                view = unit_view()
                ignored = EventResult(action=EventAction.IGNORE)
                if view is None or view.status is not StepStatus.WAITING or view.attempt != attempt:
                    # The unit moved on (completed, timed out, retried): nothing to decide.
                    self._submit(run_id, EventApplied(step_id, index, attempt, ignored), tag)
                    return
                context = EventContext(
                    step_execution_id=f"{run_id}:{step_id}"
                    + (f"[{index}]" if index is not None else ""),
                    execution_id=run_id,
                    external_workflow_id=view.external_id or "",
                    event_type=event.type,
                    event_data=event.data,
                    step_outputs=view.outputs,
                    step_id=step_id,
                    params=view.params,
                    event_id=event.id,
                    logger=self._logger(run_id, step_id, index, attempt),
                )
                try:
                    executor = self._registry.get(view.action).new_executor()
                    result = await executor.on_event(context)
                    if not isinstance(result, EventResult):
                        raise TypeError(
                            f"on_event() returned {type(result).__name__}, not an EventResult"
                        )
                except Exception as exc:  # noqa: BLE001 - an on_event error fails the step
                    result = EventResult(
                        action=EventAction.COMPLETE,
                        status=StepStatus.FAILED,
                        error=f"on_event failed: {type(exc).__name__}: {exc}",
                    )
                result = checked_event_result(result)
                self._submit(run_id, EventApplied(step_id, index, attempt, result), tag)
        finally:
            if not lock.locked() and self._unit_locks.get(key) is lock:
                del self._unit_locks[key]

    # ------------------------------------------------------------ lifecycle

    def _spawn(self, work: Awaitable[None]) -> None:
        async def wrapped() -> None:
            await work

        task = asyncio.get_running_loop().create_task(wrapped())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        """Cancel everything in flight (a restarted engine re-runs or fails it)."""
        for queue in self._queues.values():
            queue.line.clear()
        tasks = [r.task for r in self._running.values()] + list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._in_flight.clear()
        for owned in self._owned:
            close = getattr(owned, "aclose", None)
            if close is not None:
                await close()
        if self._services in self._owned:
            self._services = None
        self._owned.clear()
