"""`conveyor runs logs RUN`: what a run's steps wrote to `context.logger`, kept with the run.

Read from the database (the engine that runs it may be another process) or, with `--server`,
from the server; `--follow` prints new lines as they come until the run ends (from the run's
event stream on a server). One line a log line: time, step (and item), attempt, level, text.
With `--json`, one JSON object a line (the timeline entry), for `jq` and scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from conveyor.cli.backends import local_reader
from conveyor.cli.commands_runs import (
    EXIT_INTERRUPTED,
    POLL_SECONDS,
    no_db_with_server,
    report,
    require_db,
    runs_app,
)
from conveyor.cli.common import DbOption, JsonOption, configure_logging, database_for, fail, stdout
from conveyor.cli.remote import ApiKeyOption, RemoteError, ServerOption
from conveyor.config import Settings
from conveyor.errors import RunNotFoundError

if TYPE_CHECKING:
    from conveyor.runs import RunEvent

_LEVEL_STYLES = {"warning": "yellow", "error": "red", "critical": "bold red"}


@runs_app.command("logs")
def logs_command(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: Annotated[
        str | None,
        typer.Option("--step", "-s", metavar="STEP", help="Only this step's lines."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Print new lines as they come, until the run ends."),
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Print the log lines of a run's steps (kept up to a size per step)."""
    configure_logging()
    try:
        if server is not None:
            no_db_with_server(db)
            lines = _remote_lines(server, api_key, run_id, step, follow)
        else:
            settings = database_for(db)
            require_db(settings, run_id)
            lines = _local_lines(settings, run_id, step, follow)
        asyncio.run(_print(lines, json_output))
    except RemoteError as exc:
        report(exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


async def _print(lines: AsyncIterator[RunEvent], json_output: bool) -> None:
    async for line in lines:
        if json_output:
            sys.stdout.write(line.model_dump_json() + "\n")
            sys.stdout.flush()
        else:
            stdout.print(render_line(line), soft_wrap=True)


def render_line(line: RunEvent) -> Text:
    """One log line for a person: `12:00:01 fetch #1 info  fetched 3 pages`."""
    level = str((line.data or {}).get("level", "info"))
    where = line.step_id or ""
    if line.index is not None:
        where += f"[{line.index}]"
    return Text.assemble(
        (line.at.astimezone().strftime("%H:%M:%S"), "dim"),
        " ",
        (where, "cyan"),
        f" #{line.attempt or 1} ",
        (f"{level:<7}", _LEVEL_STYLES.get(level, "")),
        " ",
        line.message or "",
    )


async def _local_lines(
    settings: Settings, run_id: str, step: str | None, follow: bool
) -> AsyncIterator[RunEvent]:
    async with local_reader(settings) as backend:
        try:
            view = await backend.get(run_id)
        except RunNotFoundError:
            fail(f"no run with id {run_id!r} in {settings.db_path}")
        if step is not None and all(s.step_id != step for s in view.steps):
            fail(f"run {run_id} has no step {step!r}")
        after = 0
        while True:
            # Read the status first: lines written before the run ended are then all read.
            ended = (await backend.get(run_id)).status.is_terminal
            for line in await backend.step_logs(run_id, step, after, 1000):
                after = line.seq
                yield line
            if not follow or ended:
                return
            await asyncio.sleep(POLL_SECONDS)


async def _remote_lines(
    server: str, api_key: str | None, run_id: str, step: str | None, follow: bool
) -> AsyncIterator[RunEvent]:
    from conveyor.cli.remote import Remote
    from conveyor.runs import RunEvent

    async with Remote(server, api_key) as remote:
        if not follow:
            for item in await remote.step_logs(run_id, step):
                yield RunEvent.model_validate(item)
            return
        view = await remote.get_run(run_id)
        if step is not None and all(s.step_id != step for s in view.steps):
            raise RemoteError(f"run {run_id} has no step {step!r}")
        async for kind, data in remote.stream(run_id):
            if kind != "log":
                continue
            line = RunEvent.model_validate(json.loads(data))
            if step is None or line.step_id == step:
                yield line
