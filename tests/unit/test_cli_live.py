"""The live view and the ETA: what a person reads about a running run."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console

from conveyor.actions import StepStatus
from conveyor.cli.live import render_run
from conveyor.engine.state import RunState, RunStatus, StepState, TimerKind
from conveyor.runs import RunView, StepView


def _text(view: RunView, width: int = 120) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(render_run(view))
    return console.export_text()


def _view(*steps: StepView) -> RunView:
    now = datetime.now(UTC)
    return RunView(
        run_id="r1", pipeline="p", kind="pipeline", status=RunStatus.RUNNING,
        params={}, progress=50.0, created_at=now, started_at=now, steps=list(steps),
    )  # fmt: skip


def test_a_waiting_step_shows_what_it_waits_for_and_until_when_not_0_percent() -> None:
    due = datetime.now(UTC) + timedelta(minutes=5)
    text = _text(
        _view(
            StepView(
                step_id="ask",
                status=StepStatus.WAITING,
                attempt=1,
                external_id="wf-42",
                next_timer_at=due,
            ),
            StepView(step_id="nap", status=StepStatus.WAITING, attempt=1, next_timer_at=due),
        )
    )
    assert "event wf-42" in text
    assert f"due {due.astimezone().strftime('%H:%M:%S')}" in text
    assert not re.search(r"\b0%", text)


def test_a_completed_step_drops_its_last_progress_message() -> None:
    text = _text(
        _view(
            StepView(
                step_id="a",
                status=StepStatus.COMPLETED,
                attempt=1,
                progress=100,
                message="copying 3 of 4",
            ),
            StepView(
                step_id="b",
                status=StepStatus.RUNNING,
                attempt=1,
                progress=10,
                message="copying 1 of 9",
            ),
        )
    )
    assert "copying 3 of 4" not in text
    assert "copying 1 of 9" in text


def test_statuses_are_never_cut_at_80_columns() -> None:
    long_error = "the disk is full " * 20
    text = _text(
        _view(
            StepView(step_id="a_rather_long_step_name", status=StepStatus.COMPLETED, attempt=1),
            StepView(step_id="b", status=StepStatus.FAILED, attempt=3, error=long_error),
        ),
        width=80,
    )
    assert "completed" in text and "failed" in text and "a_rather_long_step_name" in text
    assert "…" not in text


def test_the_eta_of_a_run_is_never_shorter_than_the_timer_it_waits_on() -> None:
    now = time.time()
    state = RunState(run_id="r", pipeline_name="p", params={}, created_at=now - 1)
    state.status = RunStatus.RUNNING
    state.started_at = now - 0.001
    state.steps["kept"] = StepState(step_id="kept", status=StepStatus.COMPLETED, progress=100)
    state.steps["nap"] = StepState(
        step_id="nap", status=StepStatus.WAITING, attempt=1,
        timer_at=now + 300, timer_kind=TimerKind.SLEEP,
    )  # fmt: skip
    state.recount()
    eta = RunView.of(state, now=now).eta_seconds
    assert eta is not None and 299 <= eta <= 300

    state.steps["nap"] = StepState(
        step_id="nap", status=StepStatus.WAITING, attempt=1, external_id="wf-1"
    )
    state.recount()
    assert RunView.of(state, now=now).eta_seconds is None  # When an event comes is unknown.
