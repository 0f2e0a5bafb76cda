"""The live view of a run: one row per step, redrawn about ten times a second.

`render_run` turns a `RunView` into a table and is also what `conveyor runs show` prints, so a
finished run looks the same whether it was watched or looked up later. `follow` redraws it from
`backend.get(run_id)` until the run ends; `show_live` draws views from any source (a server's
event stream, a database read again and again) until the source ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from conveyor.actions import StepStatus
from conveyor.backends.base import Backend
from conveyor.engine.state import RunStatus
from conveyor.runs import RunTrigger, RunView, StepView

REFRESH_SECONDS = 0.1

STEP_STYLES: dict[StepStatus, str] = {
    StepStatus.PENDING: "dim",
    StepStatus.RUNNING: "cyan",
    StepStatus.WAITING: "yellow",
    StepStatus.RETRYING: "magenta",
    StepStatus.COMPLETED: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.TIMEOUT: "red",
    StepStatus.SKIPPED: "dim",
    StepStatus.CANCELLED: "red",
}

RUN_STYLES: dict[RunStatus, str] = {
    RunStatus.PENDING: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.COMPLETED: "bold green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELLED: "bold red",
    RunStatus.TIMED_OUT: "bold red",
}


def format_duration(seconds: float | None) -> str:
    """`0.4s`, `12.0s`, `3m05s`, `2h04m`; an empty string for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def run_title(view: RunView, *, now: datetime | None = None) -> Text:
    """`pipeline · run id · STATUS · 45% · 1.2s · ETA 3s`."""
    title = Text()
    title.append(view.pipeline, style="bold")
    title.append(f" · {view.run_id} · ")
    title.append(view.status.value.upper(), style=RUN_STYLES.get(view.status, ""))
    title.append(f" · {view.progress:.0f}%")
    elapsed = _elapsed(view.started_at, view.finished_at, now)
    if elapsed is not None:
        title.append(f" · {format_duration(elapsed)}")
    if view.eta_seconds is not None and not view.status.is_terminal:
        title.append(f" · ETA {format_duration(view.eta_seconds)}")
    return title


def render_run(view: RunView, *, now: datetime | None = None) -> Table:
    """The run as a table: status, attempt, progress, duration and message of every step."""
    now = now or datetime.now(UTC)
    table = Table(title=run_title(view, now=now), title_justify="left", expand=False)
    # Every column but the message keeps its width (a status is never cut to `complet…`);
    # the message takes what is left and wraps between words.
    longest = max((len(step.step_id) for step in view.steps), default=4)
    table.add_column("step", no_wrap=True, min_width=max(4, longest))
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("try", justify="right", no_wrap=True, min_width=3)
    table.add_column("progress", no_wrap=True, min_width=25)
    table.add_column("time", justify="right", no_wrap=True, min_width=6)
    table.add_column("message", overflow="fold", min_width=7)
    for step in view.steps:
        table.add_row(
            Text(step.step_id),
            Text(step.status.value, style=STEP_STYLES.get(step.status, "")),
            str(step.attempt) if step.attempt else "",
            _progress(step),
            format_duration(_step_seconds(step, now)),
            _message(step),
        )
    return table


def describe_trigger(trigger: RunTrigger) -> Text:
    """What started a run, as a line: `started by schedule sch_1 for the slot 09:00 UTC`."""
    line = Text.assemble(("started by: ", "bold"), trigger.kind)
    if trigger.id is not None:
        line.append(f" {trigger.id}")
    if trigger.time is not None:
        line.append(f" for the slot {trigger.time.isoformat()}")
    return line


def render_outcome(view: RunView) -> RenderableType:
    """The lines printed under the table once the run ended: its outputs or its error."""
    parts: list[RenderableType] = []
    style = RUN_STYLES.get(view.status, "")
    elapsed = _elapsed(view.started_at, view.finished_at, None)
    headline = Text.assemble(
        ("Run ", ""),
        (view.run_id, "bold"),
        " ",
        (view.status.value, style),
        f" in {format_duration(elapsed)}" if elapsed is not None else "",
    )
    parts.append(headline)
    if view.error:
        parts.append(Text.assemble(("error: ", "bold red"), view.error))
    if view.outputs:
        from rich.json import JSON

        parts.append(Text("outputs:", style="bold"))
        parts.append(JSON.from_data(view.outputs, default=str))
    return Group(*parts)


async def follow(
    backend: Backend, run_id: str, console: Console, *, refresh: float = REFRESH_SECONDS
) -> RunView:
    """Show the run live until it ends; return its final view.

    The table is redrawn from `backend.get` every `refresh` seconds, and at once when the run
    ends (`backend.wait` wakes the loop). On a console that is not a terminal only the final
    table is printed, so a log file or a pipe gets one clean copy.
    """
    if not console.is_terminal:
        view = await backend.wait(run_id)
        console.print(render_run(view))
        return view
    ended = asyncio.ensure_future(backend.wait(run_id))
    view = await backend.get(run_id)
    try:
        # auto_refresh=False: the table is rebuilt and drawn here, on the event loop, rather
        # than by Rich's refresh thread reading a renderable this loop is replacing.
        with Live(
            render_run(view),
            console=console,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=True,
        ) as live:
            while not view.status.is_terminal:
                await asyncio.wait({ended}, timeout=refresh)
                view = await backend.get(run_id)
                live.update(render_run(view), refresh=True)
    finally:
        if not ended.done():
            ended.cancel()
        await asyncio.gather(ended, return_exceptions=True)
    return view


async def show_live(
    views: AsyncIterator[RunView], console: Console, *, refresh: float = REFRESH_SECONDS
) -> RunView:
    """Show each view `views` gives until it ends; return the last one.

    The table is redrawn every `refresh` seconds from the latest view (so running steps' times
    keep counting between changes) and once more at the end. On a console that is not a
    terminal only the last table is printed. An error of `views` is raised once the live
    display is gone, so its message is not drawn over.
    """
    latest = await anext(views)
    if not console.is_terminal:
        async for view in views:
            latest = view
        console.print(render_run(latest))
        return latest

    async def pump() -> None:
        nonlocal latest
        async for view in views:
            latest = view

    task = asyncio.ensure_future(pump())
    try:
        with Live(
            render_run(latest),
            console=console,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=True,
        ) as live:
            while not task.done():
                await asyncio.wait({task}, timeout=refresh)
                live.update(render_run(latest), refresh=True)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    task.result()
    return latest


def _elapsed(
    started: datetime | None, finished: datetime | None, now: datetime | None
) -> float | None:
    if started is None:
        return None
    end = finished or now
    if end is None:
        return None
    return max(0.0, (end - started).total_seconds())


def _step_seconds(step: StepView, now: datetime) -> float | None:
    if step.duration_seconds is not None:
        return step.duration_seconds
    if step.status.is_terminal:
        return None
    return _elapsed(step.started_at, None, now)


def _progress(step: StepView) -> RenderableType:
    if step.status in (StepStatus.PENDING, StepStatus.SKIPPED):
        return Text("")
    if step.status in (StepStatus.WAITING, StepStatus.RETRYING) and step.progress <= 0:
        # Nothing to measure: say what it waits for rather than showing 0%.
        return Text(_waiting_for(step), style=STEP_STYLES[step.status])
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=20)
    grid.add_column(justify="right", width=4)
    # A step that is busy but reports no progress pulses instead of sitting at 0%.
    pulse = step.status in (StepStatus.RUNNING, StepStatus.WAITING) and step.progress <= 0
    failed = step.status in (StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.CANCELLED)
    bar = ProgressBar(
        total=100,
        completed=step.progress,
        width=20,
        pulse=pulse,
        complete_style="red" if failed else "green" if step.progress >= 100 else "cyan",
        finished_style="green",
    )
    grid.add_row(bar, Text(f"{step.progress:.0f}%"))
    return grid


def _waiting_for(step: StepView) -> str:
    """`event wf-1 · due 14:03:10`: what a waiting step waits for, and until when."""
    parts = []
    if step.status is StepStatus.WAITING and step.external_id:
        parts.append(f"event {step.external_id}")
    if step.next_timer_at is not None:
        due = step.next_timer_at.astimezone().strftime("%H:%M:%S")
        parts.append(f"{'retry' if step.status is StepStatus.RETRYING else 'due'} {due}")
    return " · ".join(parts) or "waiting"


def _message(step: StepView) -> Text:
    if step.error:
        return Text(step.error, style="red")
    parts: list[str] = []
    if step.message and not step.status.is_terminal:
        # A progress message says what a step is doing; once it ended, it does nothing.
        parts.append(step.message)
    elif step.reason:
        parts.append(step.reason)
    if step.items is not None:
        done = sum(1 for item in step.items if item.status.is_terminal)
        parts.append(f"{done}/{len(step.items)} items")
    if step.status is StepStatus.WAITING and step.external_id and step.progress > 0:
        # With progress, the bar takes the progress column: say what it waits for here.
        parts.append(f"waiting for events on {step.external_id}")
    return Text(" · ".join(parts), style="dim" if step.status is StepStatus.SKIPPED else "")
