"""Crash recovery: an engine process killed with SIGKILL, then restarted on the same database.

Each scenario runs twice, in two databases: once without a crash (the reference) and once
killed at a chosen point and restarted. The restarted run must end as the reference did (run
status and outputs, every step's status, outputs and error), and the actions' call log must
show that nothing that had completed ran again: only a step that was running at the kill may
run twice, and only if its action is idempotent; one that is not fails as interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend, Store
from conveyor.engine import RunState, RunStatus, TimerKind
from conveyor.events import RouteStatus
from tests.integration.crash.actions import (
    RETRY_BACKOFF_SECONDS,
    build_registry,
    events_handled,
    executions,
    read_log,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
LATE = 1.0
"""How late after its deadline (or the restart, if that came later) a timer may fire here."""

T = TypeVar("T")

# ---------------------------------------------------------------- harness


class Engine:
    """One engine process (`engine_proc`), its stdout and stderr kept in files."""

    def __init__(
        self,
        world: World,
        name: str,
        starts: list[dict[str, Any]],
        kill_after_commit: int | None,
        timeout: float,
    ) -> None:
        self.name = name
        self.stdout = world.dir / f"{name}.out"
        self.stderr = world.dir / f"{name}.err"
        command = [
            sys.executable,
            "-m",
            "tests.integration.crash.engine_proc",
            "--db",
            str(world.db),
            "--log",
            str(world.log),
            "--timeout",
            str(timeout),
        ]
        for document in starts:
            command += ["--start", json.dumps(document)]
        if kill_after_commit is not None:
            command += ["--kill-after-commit", str(kill_after_commit)]
        path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        if world.evicting:
            env["CONVEYOR_FORCE_EVICT"] = "1"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)

    def messages(self) -> list[dict[str, Any]]:
        """The JSON lines written so far (a line being written is left for the next call)."""
        found = []
        for line in self.stdout.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [message for message in found if isinstance(message, dict)]

    def message(self, key: str) -> dict[str, Any] | None:
        """The first message with `key`, if written yet."""
        return next((m for m in self.messages() if key in m), None)

    def describe(self) -> str:
        """What the process wrote, for assertion messages."""
        return f"engine {self.name}: stdout {self.messages()}, stderr:\n{self.stderr.read_text()}"

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Wait until the engine drives; returns when (time.time) that was seen."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}; {self.describe()}")
            return self.message("ready") is not None

        poll(ready, timeout, f"engine {self.name} to be ready")
        return time.time()

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL

    def killed(self, timeout: float = 15.0) -> None:
        """Wait for the process to kill itself (`--kill-after-commit`)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"not killed; {self.describe()}") from None
        assert self.proc.returncode == -signal.SIGKILL, self.describe()

    def finish(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for a clean exit (every run finished); returns the final message."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not finish; {self.describe()}") from None
        assert self.proc.returncode == 0, self.describe()
        final = self.message("final")
        assert final is not None, self.describe()
        return final

    def stop(self) -> None:
        """Kill the process if it still runs (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class World:
    """One database and one call log, driven by one engine process at a time."""

    def __init__(self, directory: Path, engines: list[Engine], *, evicting: bool = False) -> None:
        directory.mkdir()
        self.evicting = evicting
        """Whether its engines read every run back after each commit (`force_evict`)."""
        self.dir = directory
        self.db = directory / "conveyor.db"
        self.log = directory / "calls.log"
        self._engines = engines

    def engine(
        self,
        *starts: dict[str, Any],
        kill_after_commit: int | None = None,
        timeout: float = 30.0,
    ) -> Engine:
        """Start an engine process on this world (starting the given pipelines)."""
        engine = Engine(
            self, f"engine{len(self._engines)}", list(starts), kill_after_commit, timeout
        )
        self._engines.append(engine)
        return engine

    def runs(self) -> dict[str, RunState]:
        """Every run in the database, by pipeline name (each scenario's names differ)."""
        store = Store(self.db).open()
        try:
            return {
                record.pipeline_name: store.load_state(record.id)[0]
                for record in store.list_runs(limit=1000)
            }
        finally:
            store.close()

    def run(self, name: str) -> RunState:
        """The run of pipeline `name`."""
        return self.runs()[name]

    def wait_for_steps(
        self, want: dict[str, dict[str, StepStatus]], timeout: float = 15.0
    ) -> dict[str, RunState]:
        """Wait until each named run's steps have the given statuses; returns the runs."""

        def reached() -> dict[str, RunState] | None:
            runs = self.runs()
            for name, steps in want.items():
                state = runs.get(name)
                if state is None:
                    return None
                for step_id, status in steps.items():
                    step = state.steps.get(step_id)
                    if step is None or step.status is not status:
                        return None
            return runs

        return poll(reached, timeout, f"steps {want}")

    def post_event(self, body: dict[str, Any]) -> None:
        """Leave an event in the inbox of the engine that drives the database."""
        store = Store(self.db).open()
        try:
            store.post_inbox("event", body)
        finally:
            store.close()

    def store_event(self, body: dict[str, Any]) -> None:
        """Accept an event into the database without driving (stored, deliveries planned)."""

        async def send() -> None:
            async with LocalBackend(build_registry(self.log), db_path=self.db, drive=False) as b:
                receipt = await b.send_event(body)
            assert receipt.status is RouteStatus.ROUTED
            assert receipt.deliveries == 1

        asyncio.run(send())

    def deliveries(self) -> list[tuple[str, str]]:
        """(event id, status) of every delivery recorded."""
        store = Store(self.db).open()
        try:
            rows = store.db.execute(
                "SELECT events.id, deliveries.status FROM deliveries "
                "JOIN events ON events.seq = deliveries.event_seq ORDER BY events.id"
            ).fetchall()
            return [(row[0], row[1]) for row in rows]
        finally:
            store.close()

    def waits(self, correlation_id: str) -> list[tuple[str, str, int | None, int]]:
        """(run_id, step_id, index, attempt) of the units waiting on `correlation_id`."""
        store = Store(self.db).open()
        try:
            return store.waits_for(correlation_id)
        finally:
            store.close()

    def calls(self, run_id: str) -> Counter[str]:
        """How many times each step of the run was executed."""
        return executions(read_log(self.log), run_id)


def poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


Worlds = Callable[[str], World]


@pytest.fixture(params=["normal", "evicting"])
def worlds(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Worlds]:
    """Make worlds in `tmp_path`; every engine process left is killed at the end.

    Each test runs twice: with engines as they run in production, and with engines that read
    every run back after each commit (`force_evict`), so a change never committed shows.
    """
    engines: list[Engine] = []
    evicting = request.param == "evicting"
    yield lambda name: World(tmp_path / name, engines, evicting=evicting)
    for engine in engines:
        engine.stop()


def snapshot(state: RunState) -> dict[str, Any]:
    """What must not differ between a run and its reference: no timestamps, the run id as RUN."""
    seen = {
        "status": state.status.value,
        "error": state.error,
        "outputs": state.outputs,
        "steps": {
            step_id: [step.status.value, step.outputs, step.error]
            for step_id, step in sorted(state.steps.items())
        },
    }
    result: dict[str, Any] = json.loads(json.dumps(seen).replace(state.run_id, "RUN"))
    return result


def statuses(state: RunState) -> dict[str, StepStatus]:
    """Each step's status."""
    return {step_id: step.status for step_id, step in state.steps.items()}


def pipeline(name: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A pipeline document."""
    return {"name": name, "steps": list(steps), **extra}


def step(step_id: str, action: str, after: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    """A step document."""
    return {"id": step_id, "action": action, "params": params, "depends_on": list(after)}


def tpl(expression: str) -> str:
    """A template of one expression (it keeps the expression's type)."""
    return "{{ " + expression + " }}"


# ---------------------------------------------------------------- mid-step


def _mid_step(name: str, action: str, **params: Any) -> dict[str, Any]:
    return pipeline(
        name,
        step("a", "count", value=1),
        step("b", action, ("a",), value=tpl("steps.a.outputs.value + 1"), sleep=1.0, **params),
        step("d", "count", ("b",), value=tpl("steps.b.outputs.value * 10")),
        outputs={"d": tpl("steps.d.outputs.value")},
    )


def test_step_running_at_the_kill_reruns_if_idempotent_else_fails_interrupted(
    worlds: Worlds,
) -> None:
    rerun = _mid_step("rerun", "count")
    once = _mid_step("once", "count_once")
    fails = _mid_step("fails", "count_once", fail=True)
    ref, crashed = worlds("reference"), worlds("crashed")
    reference = ref.engine(rerun, once, fails)
    first = crashed.engine(rerun, once)
    first.wait_ready()
    poll(
        lambda: [c.step_id for c in read_log(crashed.log)].count("b") == 2,
        10,
        "both b steps to start",
    )
    first.kill()
    at_kill = crashed.runs()
    for name in ("rerun", "once"):
        assert statuses(at_kill[name]) == {
            "a": StepStatus.COMPLETED,
            "b": StepStatus.RUNNING,
            "d": StepStatus.PENDING,
        }
    crashed.engine().finish()
    reference.finish()
    expected, after = ref.runs(), crashed.runs()
    assert expected["rerun"].status is expected["once"].status is RunStatus.COMPLETED

    # Idempotent: run again, and the run ends as if nothing had happened.
    assert snapshot(after["rerun"]) == snapshot(expected["rerun"])
    assert crashed.calls(after["rerun"].run_id) == {"a": 1, "b": 2, "d": 1}

    # Not idempotent: failed as interrupted and not run again; the run fails as it does when
    # the step fails by itself.
    interrupted, failed = after["once"], expected["fails"]
    assert interrupted.status is failed.status is RunStatus.FAILED
    assert statuses(interrupted) == statuses(failed)
    assert statuses(interrupted)["b"] is StepStatus.FAILED
    assert "interrupted" in (interrupted.steps["b"].error or "")
    assert interrupted.error is not None and "'b'" in interrupted.error
    assert interrupted.steps["a"].outputs == failed.steps["a"].outputs == {"value": 1}
    assert crashed.calls(interrupted.run_id) == {"a": 1, "b": 1}


# ---------------------------------------------------------------- waiting for an event


def _waiting(name: str, handle_sleep: float = 0) -> dict[str, Any]:
    correlation_id = tpl("run.id ~ '-w'")
    return pipeline(
        name,
        step("a", "count", value=1),
        step("w", "await_event", ("a",), correlation_id=correlation_id, handle_sleep=handle_sleep),
        step("b", "count", ("w",), value=tpl("steps.w.outputs.value + steps.a.outputs.value")),
        outputs={"b": tpl("steps.b.outputs.value")},
    )


_EVENT_VALUES = {"inbox": 41, "stored": 9, "handling": 5}


def _event(state: RunState) -> dict[str, Any]:
    correlation_id = state.steps["w"].external_id
    assert correlation_id == f"{state.run_id}-w"
    value = _EVENT_VALUES[state.pipeline_name]
    return {"id": f"done-{state.pipeline_name}", "workflow_id": correlation_id, "value": value}


def test_waits_keep_waiting_and_a_stored_event_is_applied_once_after_the_kill(
    worlds: Worlds,
) -> None:
    """Three runs wait; at the kill, one event is stored, one is being handled, one not sent."""
    pipelines = [_waiting("inbox"), _waiting("stored"), _waiting("handling", handle_sleep=1.0)]
    waiting = {name: {"w": StepStatus.WAITING} for name in _EVENT_VALUES}
    ref, crashed = worlds("reference"), worlds("crashed")
    reference = ref.engine(*pipelines)
    first = crashed.engine(*pipelines)
    reference.wait_ready()
    for state in ref.wait_for_steps(waiting).values():
        ref.post_event(_event(state))

    first.wait_ready()
    runs = crashed.wait_for_steps(waiting)
    # Stored with its delivery planned: the engine dies before it applies it.
    crashed.store_event(_event(runs["stored"]))
    # Taken by the engine, which dies while `on_event` decides.
    crashed.post_event(_event(runs["handling"]))
    handling = runs["handling"].run_id
    poll(lambda: events_handled(read_log(crashed.log), handling), 10, "on_event to start")
    first.kill()

    second = crashed.engine()
    second.wait_ready()
    # The wait survived: still waiting, still routed, and not executed again.
    state = crashed.run("inbox")
    assert state.steps["w"].status is StepStatus.WAITING
    assert crashed.waits(_event(state)["workflow_id"]) == [(state.run_id, "w", None, 1)]
    assert crashed.calls(state.run_id)["w"] == 1
    crashed.post_event(_event(state))
    second.finish()
    reference.finish()

    expected, after = ref.runs(), crashed.runs()
    calls = read_log(crashed.log)
    for name in _EVENT_VALUES:
        assert expected[name].status is RunStatus.COMPLETED
        assert snapshot(after[name]) == snapshot(expected[name])
        assert executions(calls, after[name].run_id) == {"a": 1, "w": 1, "b": 1}
    # `on_event` ran again for the event it was deciding at the kill; each event was applied
    # once all the same (b ran once, each delivery is done).
    assert events_handled(calls, after["inbox"].run_id) == {"w": 1}
    assert events_handled(calls, after["stored"].run_id) == {"w": 1}
    assert events_handled(calls, handling) == {"w": 2}
    assert crashed.deliveries() == [(f"done-{name}", "done") for name in sorted(_EVENT_VALUES)]
    assert crashed.waits(_event(state)["workflow_id"]) == []


# ---------------------------------------------------------------- timers


def test_retry_backoff_keeps_its_time_across_the_kill(worlds: Worlds) -> None:
    backoff = pipeline(
        "backoff",
        step("f", "flaky", value=7),
        step("b", "count", ("f",), value=tpl("steps.f.outputs.value * steps.f.outputs.attempt")),
        outputs={"b": tpl("steps.b.outputs.value")},
    )
    ref, crashed = worlds("reference"), worlds("crashed")
    reference = ref.engine(backoff)
    first = crashed.engine(backoff)
    first.wait_ready()
    retrying = crashed.wait_for_steps({"backoff": {"f": StepStatus.RETRYING}})["backoff"]
    first.kill()
    unit = retrying.steps["f"]
    assert unit.timer_kind is TimerKind.RETRY and unit.timer_at is not None
    (failure,) = read_log(crashed.log)
    due = failure.at + RETRY_BACKOFF_SECONDS
    assert due <= unit.timer_at <= due + LATE

    second = crashed.engine()
    ready_at = second.wait_ready()
    second.finish()
    reference.finish()

    after = crashed.run("backoff")
    assert snapshot(after) == snapshot(ref.run("backoff"))
    assert after.status is RunStatus.COMPLETED
    calls = read_log(crashed.log)
    assert [(c.step_id, c.attempt) for c in calls] == [("f", 1), ("f", 2), ("b", 1)]
    retried = calls[1].at
    assert unit.timer_at <= retried <= max(unit.timer_at, ready_at) + LATE


def test_timers_keep_their_deadlines_across_the_kill(worlds: Worlds) -> None:
    """A durable sleep, a wait's deadline and a run's deadline, all due after the restart."""
    nap = pipeline(
        "nap",
        step("a", "count", value=1),
        step("s", "nap", ("a",), seconds=2.0),
        step("b", "count", ("s",), value=tpl("steps.s.outputs.slept + steps.a.outputs.value")),
        outputs={"b": tpl("steps.b.outputs.value")},
    )
    wait_deadline = pipeline(
        "wait_deadline",
        {**step("w", "await_event", correlation_id=tpl("run.id ~ '-w'")), "timeout_seconds": 2},
        step("b", "count", ("w",)),
    )
    run_deadline = pipeline(
        "run_deadline",
        step("w", "await_event", correlation_id=tpl("run.id ~ '-w'")),
        settings={"timeout_seconds": 2},
    )
    ref, crashed = worlds("reference"), worlds("crashed")
    reference = ref.engine(nap, wait_deadline, run_deadline)
    first = crashed.engine(nap, wait_deadline, run_deadline)
    first.wait_ready()
    at_kill = crashed.wait_for_steps(
        {
            "nap": {"s": StepStatus.WAITING},
            "wait_deadline": {"w": StepStatus.WAITING},
            "run_deadline": {"w": StepStatus.WAITING},
        }
    )
    first.kill()
    slept, waited = at_kill["nap"].steps["s"], at_kill["wait_deadline"].steps["w"]
    assert slept.timer_kind is TimerKind.SLEEP and slept.timer_at is not None
    assert waited.timer_kind is TimerKind.WAIT and waited.timer_at is not None
    assert at_kill["run_deadline"].deadline_at is not None

    second = crashed.engine()
    ready_at = second.wait_ready()
    second.finish()
    reference.finish()
    expected, after = ref.runs(), crashed.runs()
    assert [expected[name].status for name in ("nap", "wait_deadline", "run_deadline")] == [
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
    ]
    for name in expected:
        assert snapshot(after[name]) == snapshot(expected[name])
    calls = read_log(crashed.log)
    assert executions(calls, after["nap"].run_id) == {"a": 1, "s": 1, "b": 1}
    assert executions(calls, after["wait_deadline"].run_id) == {"w": 1}
    assert executions(calls, after["run_deadline"].run_id) == {"w": 1}

    def on_time(deadline: float, happened: float | None) -> bool:
        return happened is not None and deadline <= happened <= max(deadline, ready_at) + LATE

    assert on_time(slept.timer_at, after["nap"].steps["s"].finished_at)
    assert on_time(waited.timer_at, after["wait_deadline"].steps["w"].finished_at)
    assert on_time(at_kill["run_deadline"].deadline_at, after["run_deadline"].finished_at)


# ---------------------------------------------------------------- between two commits

DAG = pipeline(
    "dag",
    step("a", "count", value=1),
    step("b", "count", ("a",), value=tpl("steps.a.outputs.value + 1"), sleep=0.2),
    step("c", "count", ("a",), value=tpl("steps.a.outputs.value + 2"), sleep=0.05),
    step("s", "nap", ("a",), seconds=0.3),
    step("d", "count", ("b", "c", "s"), value=tpl("steps.b.outputs.value * steps.c.outputs.value")),
    step("e", "count", ("d",), value=tpl("steps.d.outputs.value + 1")),
    step("f", "count", ("e",), value=tpl("steps.e.outputs.value + 1")),
    outputs={"f": tpl("steps.f.outputs.value")},
)
"""Parallel steps (b, c and a durable sleep s) between sequential ones; about 10 commits."""


KILL_AFTER_COMMITS = (1, 2, 3, 5, 6, 8)
"""From the run's start (1) through the parallel steps to the last steps."""


def test_kill_between_two_commits(worlds: Worlds) -> None:
    # One database per kill point, all driven at once: the processes mostly wait.
    ref = worlds("reference")
    reference = ref.engine(DAG)
    crashed = {commit: worlds(f"commit{commit}") for commit in KILL_AFTER_COMMITS}
    first = {
        commit: world.engine(DAG, kill_after_commit=commit) for commit, world in crashed.items()
    }
    at_kill: dict[int, dict[str, StepStatus]] = {}
    for commit, engine in first.items():
        engine.killed()
        at_kill[commit] = statuses(crashed[commit].run("dag"))
    second = {commit: world.engine() for commit, world in crashed.items()}
    reference.finish()
    expected = snapshot(ref.run("dag"))
    assert expected["status"] == RunStatus.COMPLETED

    for commit, world in crashed.items():
        second[commit].finish()
        after = world.run("dag")
        assert snapshot(after) == expected, f"killed after commit {commit}"
        calls = world.calls(after.run_id)
        for step_id, status in at_kill[commit].items():
            # A step the kill found running may have started already: idempotent, it ran again.
            allowed = (1, 2) if status is StepStatus.RUNNING else (1,)
            assert calls[step_id] in allowed, (
                f"killed after commit {commit}: {step_id} was {status} then, calls {calls}"
            )


# ---------------------------------------------------------------- regressions


def test_for_each_items_not_yet_queued_keep_their_values_across_the_kill(worlds: Worlds) -> None:
    fan_out = pipeline(
        "fan_out",
        {
            **step("m", "count", value=tpl("item * 10"), sleep=0.2),
            "for_each": [1, 2, 3],
            "max_parallel": 1,
        },
        outputs={"m": tpl("steps.m.outputs | map(attribute='value') | list")},
    )
    crashed = worlds("crashed")
    # Commit 1 starts the run: item 0 runs, items 1 and 2 wait for their turn.
    crashed.engine(fan_out, kill_after_commit=1).killed()
    crashed.engine(timeout=5).finish()
    after = crashed.run("fan_out")
    assert after.outputs == {"m": [10, 20, 30]}
    assert after.status is RunStatus.COMPLETED


def test_event_left_in_the_inbox_at_the_kill_is_applied_after_restart(worlds: Worlds) -> None:
    crashed = worlds("crashed")
    first = crashed.engine(_waiting("inbox"))
    first.wait_ready()
    state = crashed.wait_for_steps({"inbox": {"w": StepStatus.WAITING}})["inbox"]
    first.kill()
    # A client saw the engine alive and left its event in the inbox; the engine died before
    # taking it. The request is stored, so the next engine must carry it out.
    crashed.post_event(_event(state))
    crashed.engine(timeout=2).finish()
    after = crashed.run("inbox")
    assert after.status is RunStatus.COMPLETED
    assert after.outputs == {"b": 42}
