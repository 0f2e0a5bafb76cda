"""The scheduling rules, once: a run's state plus what just happened gives what happens next.

`transition(plan, state, message, now)` updates `state` in place (marking changed rows dirty)
and returns the commands to carry out. It does no I/O and reads no clock or randomness (`now`
is passed in), so any backend can drive it: the local backend commits the state and then
carries out the commands; a Temporal workflow replays it deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from conveyor.actions import ExecutionMode, StepStatus, validate_params
from conveyor.actions._results import EventAction
from conveyor.engine.messages import (
    Abort,
    CancelRun,
    ClearTimer,
    Command,
    EventApplied,
    Execute,
    ExecutionFailed,
    ExecutionFinished,
    FailureKind,
    Input,
    ProgressReported,
    Recover,
    RunFinished,
    SetTimer,
    StartRun,
    TimerFired,
    Unwatch,
    Watch,
)
from conveyor.engine.plan import Plan, StepPlan
from conveyor.engine.state import RunState, RunStatus, StepState, TimerKind, UnitState
from conveyor.engine.values import stored
from conveyor.errors import TemplateError, UnstorableValueError


def transition(plan: Plan, state: RunState, message: Input, now: float) -> list[Command]:
    """Apply `message` to `state` at time `now` and return the commands it calls for."""
    return _Transition(plan, state, now).apply(message)


class _StepsView(Mapping[str, Mapping[str, Any]]):
    """`steps` in templates: each step's outputs, status and error, read lazily."""

    def __init__(self, state: RunState) -> None:
        self._steps = state.steps

    def __getitem__(self, step_id: str) -> Mapping[str, Any]:
        step = self._steps[step_id]
        return {"outputs": step.outputs or {}, "status": step.status.value, "error": step.error}

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


class _Transition:
    def __init__(self, plan: Plan, state: RunState, now: float) -> None:
        self.plan = plan
        self.state = state
        self.now = now
        self.out: list[Command] = []

    # ------------------------------------------------------------ dispatch

    def apply(self, message: Input) -> list[Command]:
        state = self.state
        if state.status.is_terminal and not isinstance(message, CancelRun):
            return self.out
        if isinstance(message, StartRun):
            self._start()
        elif isinstance(message, ExecutionFinished):
            unit = self._current(message.step_id, message.index, message.attempt)
            if unit is not None and unit.status is StepStatus.RUNNING:
                self._finished(unit, message)
        elif isinstance(message, ExecutionFailed):
            unit = self._current(message.step_id, message.index, message.attempt)
            if unit is not None and unit.status is StepStatus.RUNNING:
                self._running_stopped(unit)
                self._failed(unit, message.error, message.kind)
        elif isinstance(message, EventApplied):
            unit = self._current(message.step_id, message.index, message.attempt)
            if unit is not None and unit.status is StepStatus.WAITING:
                self._event(unit, message)
        elif isinstance(message, ProgressReported):
            unit = self._current(message.step_id, message.index, message.attempt)
            if unit is not None and unit.status in (StepStatus.RUNNING, StepStatus.WAITING):
                unit.progress = message.percent
                unit.message = message.message
                self.state.touch(unit)
        elif isinstance(message, TimerFired):
            self._timer(message)
        elif isinstance(message, CancelRun):
            if not state.status.is_terminal:
                self._end_run(RunStatus.CANCELLED, message.reason, StepStatus.CANCELLED)
        elif isinstance(message, Recover):
            self._recover()
        self._pump()
        return self.out

    def _current(self, step_id: str, index: int | None, attempt: int) -> UnitState | None:
        unit = self._current_any(step_id, index)
        return unit if unit is not None and unit.attempt == attempt else None

    def _current_any(self, step_id: str, index: int | None) -> UnitState | None:
        step = self.state.steps.get(step_id)
        if step is None:
            return None
        if index is None:
            return step
        if step.items is None or not 0 <= index < len(step.items):
            return None
        return step.items[index]

    # ------------------------------------------------------------ run level

    def _start(self) -> None:
        state = self.state
        if state.status is not RunStatus.PENDING:
            return
        state.status = RunStatus.RUNNING
        state.started_at = self.now
        state.run_dirty = True
        for step_id in self.plan.steps:
            if step_id not in state.steps:
                step = state.steps[step_id] = StepState(step_id=step_id)
                state.touch(step)
        # A retried run starts with the steps that completed before already done.
        state.open_steps = sum(1 for step in state.steps.values() if not step.status.is_terminal)
        timeout = self.plan.spec.settings.timeout_seconds
        if timeout is not None:
            state.deadline_at = self.now + timeout
            self.out.append(SetTimer(None, None, state.deadline_at))
        for step_id, plan in self.plan.steps.items():
            ready = all(state.steps[dep].status.is_terminal for dep in plan.deps)
            if ready and state.steps[step_id].status is StepStatus.PENDING:
                self._activate(step_id)
        self._maybe_finish()

    def _recover(self) -> None:
        for step in self.state.steps.values():
            for unit in _units(step):
                if unit.status is not StepStatus.RUNNING:
                    continue
                plan = self.plan.steps[unit.step_id]
                if plan.meta.idempotent:
                    self.out.append(self._execute_command(plan, unit))
                else:
                    self._running_stopped(unit)
                    self._failed(
                        unit,
                        "interrupted: the engine stopped while this step ran, and its action "
                        f"{plan.meta.type!r} is not idempotent, so it was not run again",
                        FailureKind.INTERRUPTED,
                    )

    def _end_run(self, status: RunStatus, error: str | None, unit_status: StepStatus) -> None:
        """Finish the run now: stop every active unit and close every open step."""
        state = self.state
        for step in state.steps.values():
            if step.status.is_terminal:
                continue
            for unit in _units(step):
                if unit.status.is_terminal:
                    continue
                self._stop_unit(unit)
                unit.status = unit_status if unit.attempt else StepStatus.SKIPPED
                unit.finished_at = self.now
                state.touch(unit)
            if step.items is not None:
                step.status = unit_status
                step.finished_at = self.now
            step.reason = error
            state.touch(step)
        state.open_steps = 0
        state.running = 0
        state.queue.clear()
        self._finish(status, error)

    def _stop_unit(self, unit: UnitState) -> None:
        plan = self.plan.steps[unit.step_id]
        if unit.status is StepStatus.RUNNING:
            self._running_stopped(unit)
            self.out.append(
                Abort(unit.step_id, unit.index, unit.attempt, plan.meta.type, unit.params or {})
            )
        elif unit.status is StepStatus.WAITING:
            if unit.external_id is not None:
                self.out.append(Unwatch(unit.step_id, unit.index, unit.external_id))
            self.out.append(
                Abort(unit.step_id, unit.index, unit.attempt, plan.meta.type, unit.params or {})
            )
        if unit.timer_kind is TimerKind.SLEEP:
            # A durable pause returns its outputs when it begins to sleep; stopped before its
            # timer fired, it never produced them (a cancelled `delay` did not wait 300 s).
            # Other waits keep theirs: `cleanup()` reads them (the job id to cancel).
            unit.outputs = None
        if unit.timer_at is not None:
            self._clear_timer(unit)

    def _finish(self, status: RunStatus, error: str | None) -> None:
        state = self.state
        if state.deadline_at is not None and status is not RunStatus.TIMED_OUT:
            self.out.append(ClearTimer(None, None))
        state.deadline_at = None
        state.status = status
        state.error = error
        state.finished_at = self.now
        state.run_dirty = True
        self.out.append(RunFinished(status.value))

    def _maybe_finish(self) -> None:
        state = self.state
        if state.open_steps > 0 or state.status.is_terminal:
            return
        if state.failed_step is not None:
            failed = state.steps[state.failed_step]
            self._finish(RunStatus.FAILED, f"step {failed.step_id!r} failed: {failed.error}")
            return
        context = self._context(None)
        try:
            state.outputs = stored(self.plan.outputs(context), "outputs")
        except TemplateError as exc:
            self._finish(RunStatus.FAILED, f"outputs: {exc}")
            return
        except UnstorableValueError as exc:
            self._finish(RunStatus.FAILED, str(exc))
            return
        self._finish(RunStatus.COMPLETED, None)

    # ------------------------------------------------------------ step activation

    def _activate(self, step_id: str) -> None:
        """All of a step's dependencies are done: skip it, or queue its unit(s)."""
        state = self.state
        plan = self.plan.steps[step_id]
        step = state.steps[step_id]
        if step.status is not StepStatus.PENDING or step.params is not None or step.items:
            return
        reason = self._blocked_by_upstream(plan) or self._routed_elsewhere(plan)
        if reason is not None:
            self._skip(step, reason)
            return
        context = self._context(None)
        if plan.condition is not None:
            try:
                go = stored(plan.condition(context), "condition")
            except TemplateError as exc:
                self._close_step(step, StepStatus.FAILED, f"condition: {exc}")
                return
            except UnstorableValueError as exc:
                self._close_step(step, StepStatus.FAILED, str(exc))
                return
            if not _truthy(go):
                self._skip(step, "condition was false")
                return
        if plan.for_each is not None:
            try:
                items = stored(plan.for_each(context), "for_each")
            except TemplateError as exc:
                self._close_step(step, StepStatus.FAILED, f"for_each: {exc}")
                return
            except UnstorableValueError as exc:
                self._close_step(step, StepStatus.FAILED, str(exc))
                return
            if not isinstance(items, list):
                kind = type(items).__name__
                self._close_step(step, StepStatus.FAILED, f"for_each: expected a list, got {kind}")
                return
            if len(items) > self.plan.max_for_each_items:
                self._close_step(
                    step,
                    StepStatus.FAILED,
                    f"for_each: {len(items):,} items, more than the limit max_for_each_items "
                    f"({self.plan.max_for_each_items:,})",
                )
                return
            step.items = [
                UnitState(step_id=step_id, index=i, item=item) for i, item in enumerate(items)
            ]
            step.status = StepStatus.RUNNING
            step.started_at = self.now
            state.touch(step)
            # Every item is stored now, with its value: items queued later must still have it
            # after the run is evicted from memory or the engine restarts.
            for unit in step.items:
                state.touch(unit)
            if not step.items:
                step.outputs = []
                self._close_step(step, StepStatus.COMPLETED, None)
                return
            limit = plan.spec.max_parallel or len(step.items)
            for _ in range(min(limit, len(step.items))):
                self._queue_next_item(plan, step)
            return
        self._queue(plan, step)

    def _blocked_by_upstream(self, plan: StepPlan) -> str | None:
        for dep in plan.deps:
            upstream = self.state.steps[dep]
            dep_plan = self.plan.steps[dep]
            if upstream.status is StepStatus.SKIPPED and not plan.spec.allow_skipped_upstream:
                return f"upstream step {dep!r} was skipped"
            broken = (StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.CANCELLED)
            if upstream.status in broken and dep_plan.spec.on_failure != "continue":
                return f"upstream step {dep!r} {upstream.status.value}"
        return None

    def _routed_elsewhere(self, plan: StepPlan) -> str | None:
        """Why a routing step upstream did not choose this one, if it did not.

        An upstream step routes when it completed with a `target_step` output and its
        `branches` param names targets (the `conditional` action does): of the steps its
        branches name, only the chosen target runs and the others are skipped.
        """
        for dep in plan.deps:
            upstream = self.state.steps[dep]
            outputs = upstream.outputs
            if upstream.status is not StepStatus.COMPLETED or not isinstance(outputs, dict):
                continue
            branches = (upstream.params or {}).get("branches")
            if "target_step" not in outputs or not isinstance(branches, list):
                continue
            targets = {b.get("target_step") for b in branches if isinstance(b, dict)}
            chosen = outputs["target_step"]
            if plan.id in targets and chosen != plan.id:
                if chosen is None:
                    return f"step {dep!r} matched no branch"
                return f"step {dep!r} routed to {chosen!r}"
        return None

    def _queue_next_item(self, plan: StepPlan, step: StepState) -> None:
        assert step.items is not None
        if step.next_item >= len(step.items):
            return
        unit = step.items[step.next_item]
        step.next_item += 1
        self.state.touch(step)
        self._queue(plan, unit)

    def _queue(self, plan: StepPlan, unit: UnitState) -> None:
        """Render the unit's params and put it in the run's queue."""
        try:
            rendered = stored(plan.params(self._context(unit)), "params") if plan.params else {}
        except TemplateError as exc:
            self._failed(unit, f"params: {exc}", FailureKind.INVALID)
            return
        except UnstorableValueError as exc:
            self._failed(unit, str(exc), FailureKind.INVALID)
            return
        rendered = {**rendered, **plan.raw_params}
        clean, problems = validate_params(plan.meta, rendered)
        if problems:
            detail = "; ".join(str(p) for p in problems)
            self._failed(unit, f"invalid params: {detail}", FailureKind.INVALID)
            return
        unit.params = clean
        self.state.touch(unit)
        self.state.queue.append((unit.step_id, unit.index))

    def _pump(self) -> None:
        """Start queued units while the run has capacity (waiting units take none)."""
        state = self.state
        limit = self.plan.spec.settings.max_parallel_steps
        while state.queue and state.running < limit and not state.status.is_terminal:
            step_id, index = state.queue.popleft()
            unit = state.unit(step_id, index)
            if unit.status is not StepStatus.PENDING:
                continue
            plan = self.plan.steps[step_id]
            unit.attempt += 1
            self._run(plan, unit)

    def _run(self, plan: StepPlan, unit: UnitState) -> None:
        unit.status = StepStatus.RUNNING
        if unit.started_at is None:
            unit.started_at = self.now
        unit.timer_at = None
        unit.timer_kind = None
        self.state.running += 1
        self.state.touch(unit)
        self.out.append(self._execute_command(plan, unit))

    def _execute_command(self, plan: StepPlan, unit: UnitState) -> Execute:
        return Execute(
            step_id=unit.step_id,
            index=unit.index,
            attempt=unit.attempt,
            action=plan.meta.type,
            params=unit.params or {},
            queue=plan.queue,
            timeout_seconds=plan.timeout_seconds,
            item=unit.item,
        )

    def _context(self, unit: UnitState | None) -> dict[str, Any]:
        state = self.state
        context: dict[str, Any] = {
            "params": state.params,
            "steps": _StepsView(state),
            "run": {"id": state.run_id, "pipeline": state.pipeline_name},
        }
        if unit is not None and unit.index is not None:
            context["item"] = unit.item
            context["index"] = unit.index
        return context

    # ------------------------------------------------------------ outcomes

    def _running_stopped(self, unit: UnitState) -> None:
        if unit.status is StepStatus.RUNNING:
            self.state.running -= 1

    def _finished(self, unit: UnitState, message: ExecutionFinished) -> None:
        result = message.result
        self._running_stopped(unit)
        try:
            outputs = stored(result.outputs, "outputs")
        except UnstorableValueError as exc:
            self._failed(unit, str(exc), FailureKind.INVALID)
            return
        if not result.success:
            # Kept so a failed step still shows what it got to (BudPipeline's "consistent
            # outputs" advice makes failures carry the same keys).
            unit.outputs = outputs or unit.outputs
            self._failed(unit, result.error or "the action reported a failure", FailureKind.ERROR)
            return
        plan = self.plan.steps[unit.step_id]
        unit.outputs = outputs
        if result.awaiting_event:
            if plan.meta.execution_mode is not ExecutionMode.EVENT_DRIVEN:
                self._failed(
                    unit,
                    f"action {plan.meta.type!r} is SYNC but asked to wait for an event",
                    FailureKind.INVALID,
                )
                return
            assert result.external_workflow_id is not None
            unit.status = StepStatus.WAITING
            unit.external_id = result.external_workflow_id
            self.state.touch(unit)
            self.out.append(
                Watch(unit.step_id, unit.index, unit.attempt, result.external_workflow_id)
            )
            timeout = result.timeout_seconds or plan.timeout_seconds
            if timeout is not None:
                self._set_timer(unit, self.now + timeout, TimerKind.WAIT)
            return
        if result.sleep_seconds is not None:
            unit.status = StepStatus.WAITING
            self.state.touch(unit)
            self._set_timer(unit, self.now + result.sleep_seconds, TimerKind.SLEEP)
            return
        self._unit_done(unit, StepStatus.COMPLETED, None)

    def _event(self, unit: UnitState, message: EventApplied) -> None:
        result = message.result
        if result.action is EventAction.IGNORE:
            return
        if result.action is EventAction.UPDATE_PROGRESS:
            unit.progress = result.progress or unit.progress
            unit.message = result.message
            self.state.touch(unit)
            return
        assert unit.external_id is not None
        self.out.append(Unwatch(unit.step_id, unit.index, unit.external_id))
        if unit.timer_at is not None:
            self._clear_timer(unit)
        try:
            outputs = stored(result.outputs, "outputs")
        except UnstorableValueError as exc:
            self._failed(unit, str(exc), FailureKind.INVALID)
            return
        unit.outputs = {**(unit.outputs or {}), **outputs}
        if result.status is StepStatus.COMPLETED:
            self._unit_done(unit, StepStatus.COMPLETED, None)
        else:
            kind = FailureKind.TIMEOUT if result.status is StepStatus.TIMEOUT else FailureKind.ERROR
            self._failed(unit, result.error or "the event reported a failure", kind)

    def _timer(self, message: TimerFired) -> None:
        state = self.state
        if message.step_id is None:
            if state.deadline_at is not None and message.at >= state.deadline_at:
                timeout = self.plan.spec.settings.timeout_seconds
                self._end_run(
                    RunStatus.TIMED_OUT, f"the run timed out after {timeout}s", StepStatus.CANCELLED
                )
            return
        unit = self._current_any(message.step_id, message.index)
        if unit is None:
            return
        if unit.timer_at is None or message.at < unit.timer_at:
            return  # A timer that was moved or cleared since.
        kind = unit.timer_kind
        unit.timer_at = None
        unit.timer_kind = None
        state.touch(unit)
        if kind is TimerKind.RETRY and unit.status is StepStatus.RETRYING:
            unit.status = StepStatus.PENDING
            self._requeue(unit)
        elif kind is TimerKind.SLEEP and unit.status is StepStatus.WAITING:
            self._unit_done(unit, StepStatus.COMPLETED, None)
        elif kind is TimerKind.WAIT and unit.status is StepStatus.WAITING:
            plan = self.plan.steps[unit.step_id]
            if unit.external_id is not None:
                self.out.append(Unwatch(unit.step_id, unit.index, unit.external_id))
            self.out.append(
                Abort(unit.step_id, unit.index, unit.attempt, plan.meta.type, unit.params or {})
            )
            self._failed(
                unit,
                f"no completion event for {unit.external_id!r} before the deadline",
                FailureKind.TIMEOUT,
            )

    def _requeue(self, unit: UnitState) -> None:
        # Retries go to the front: they were admitted before anything queued since.
        self.state.queue.appendleft((unit.step_id, unit.index))

    def _failed(self, unit: UnitState, error: str, kind: FailureKind) -> None:
        """A unit's attempt failed: retry it after a backoff, or fail it for good."""
        plan = self.plan.steps[unit.step_id]
        unit.error = error
        self.state.touch(unit)
        retryable = kind in (FailureKind.ERROR, FailureKind.TIMEOUT)
        if retryable and unit.attempt < plan.retry.max_attempts and unit.attempt > 0:
            unit.status = StepStatus.RETRYING
            unit.external_id = None
            delay = plan.retry.delay_before(unit.attempt + 1)
            self._set_timer(unit, self.now + delay, TimerKind.RETRY)
            return
        status = StepStatus.TIMEOUT if kind is FailureKind.TIMEOUT else StepStatus.FAILED
        self._unit_done(unit, status, error)

    def _set_timer(self, unit: UnitState, at: float, kind: TimerKind) -> None:
        unit.timer_at = at
        unit.timer_kind = kind
        self.out.append(SetTimer(unit.step_id, unit.index, at))

    def _clear_timer(self, unit: UnitState) -> None:
        unit.timer_at = None
        unit.timer_kind = None
        self.out.append(ClearTimer(unit.step_id, unit.index))

    def _unit_done(self, unit: UnitState, status: StepStatus, error: str | None) -> None:
        unit.status = status
        unit.error = error
        unit.finished_at = self.now
        if status is StepStatus.COMPLETED:
            unit.progress = 100.0
        self.state.touch(unit)
        step = self.state.steps[unit.step_id]
        if unit.index is None:
            self._step_done(step)
            return
        plan = self.plan.steps[unit.step_id]
        assert step.items is not None
        if status is not StepStatus.COMPLETED and plan.spec.on_failure != "continue":
            for other in step.items:
                if not other.status.is_terminal:
                    self._stop_unit(other)
                    other.status = StepStatus.CANCELLED if other.attempt else StepStatus.SKIPPED
                    other.finished_at = self.now
                    self.state.touch(other)
            self._close_step(step, status, f"item {unit.index}: {error}")
            return
        self._queue_next_item(plan, step)
        if step.status.is_terminal:
            return  # Queuing the next item failed it, and that closed the step already.
        if all(item.status.is_terminal for item in step.items):
            step.outputs = [
                item.outputs if item.status is StepStatus.COMPLETED else None for item in step.items
            ]
            failed = [i.index for i in step.items if i.status is not StepStatus.COMPLETED]
            note = f"items {failed} failed" if failed else None
            self._close_step(step, StepStatus.COMPLETED, note)

    def _close_step(self, step: StepState, status: StepStatus, error: str | None) -> None:
        if step.items is None and step.status is StepStatus.RUNNING:
            self._running_stopped(step)
        step.status = status
        step.error = error
        step.finished_at = self.now
        self.state.touch(step)
        self._step_done(step)

    def _skip(self, step: StepState, reason: str) -> None:
        step.status = StepStatus.SKIPPED
        step.reason = reason
        step.finished_at = self.now
        self.state.touch(step)
        self._step_done(step)

    def _step_done(self, step: StepState) -> None:
        """A step reached a terminal status: fail the run, or activate what it unblocked."""
        state = self.state
        state.open_steps -= 1
        plan = self.plan.steps[step.step_id]
        failed = step.status in (StepStatus.FAILED, StepStatus.TIMEOUT)
        if failed and plan.spec.on_failure != "continue" and state.failed_step is None:
            state.failed_step = step.step_id
            state.run_dirty = True
            if self.plan.spec.settings.fail_fast:
                self._end_run(
                    RunStatus.FAILED,
                    f"step {step.step_id!r} failed: {step.error}",
                    StepStatus.CANCELLED,
                )
                return
        for dependent in plan.dependents:
            dep_plan = self.plan.steps[dependent]
            if all(state.steps[d].status.is_terminal for d in dep_plan.deps):
                self._activate(dependent)
        self._maybe_finish()


def _units(step: StepState) -> list[UnitState]:
    return list(step.items) if step.items is not None else [step]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "off", "0", "none", "null")
    return bool(value)
