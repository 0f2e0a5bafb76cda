"""`conveyor runs ...`: list, show, follow and cancel runs recorded in a database or on a server.

These commands read the database without driving runs, so they work while an engine runs
elsewhere (SQLite's WAL lets them read alongside its writes). A cancel is handed to that engine
when there is one, and recorded directly otherwise. With `--server URL`, `list` and `show` ask
a Conveyor server instead, and `show --follow` reads the run's event stream.

Exit status of `show --follow`: 0 when the run completed; 1 when it failed, was cancelled or
timed out, or could not be followed (unknown run, refused key, unreachable server); 130 when
interrupted (the run itself goes on).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.text import Text

from conveyor.cli.app import app
from conveyor.cli.backends import on_temporal, reader, where
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    command_name,
    configure_logging,
    database_for,
    detail,
    error,
    fail,
    note,
    print_json,
    shown_path,
    stdout,
    warning,
)
from conveyor.cli.remote import ApiKeyOption, RemoteError, ServerOption
from conveyor.cli.tables import fit, local_time, table
from conveyor.config import Settings
from conveyor.errors import RunNotFoundError

if TYPE_CHECKING:
    # Imported when a command runs: see `commands_run`.
    from conveyor.backends.local import Store
    from conveyor.cli.remote import Remote
    from conveyor.runs import RunSummary, RunView

CANCEL_WAIT_SECONDS = 10.0
"""How long `runs cancel` waits for the engine holding the database to carry a cancel out."""
POLL_SECONDS = 0.2
"""How often `show --follow` reads a run again from a database another process writes."""

EXIT_INTERRUPTED = 130
ERROR_COLUMN_WIDTH = 100
"""The narrowest terminal `runs list` shows errors on (ids and times take about 80)."""

_T = TypeVar("_T")

runs_app = typer.Typer(help="List, inspect and cancel runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def list_command(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only runs with this status (repeatable): pending, running, completed, "
            "failed, cancelled, timed_out.",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline (by name).")
    ] = None,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help="Only runs started so: manual, schedule, webhook or event.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    db: DbOption = None,
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List runs, newest first."""
    from conveyor.cli.live import RUN_STYLES, format_duration

    statuses = _statuses(status or [])
    started_by = _trigger(trigger)
    configure_logging()
    if server is not None:
        no_db_with_server(db)
        place = f"on {server}"
        runs = remote_call(
            server, api_key, lambda r: r.list_runs(statuses, pipeline, limit, started_by)
        )
    else:
        settings = database_for(db)
        place = where(settings)
        runs = asyncio.run(_list(settings, statuses, pipeline, limit, started_by))
    if json_output:
        print_json([run.model_dump(mode="json") for run in runs])
        return
    if not runs:
        stdout.print(f"No runs {place}.")
        return
    # One line per run, unless it has an error: that column takes the width left and
    # wraps; on a narrow terminal it is left out (`runs show` has all of it).
    errors = stdout.width >= ERROR_COLUMN_WIDTH and any(run.error for run in runs)
    headers = ["run", "pipeline", "status", "trigger", "created", "time"]
    shown = table(*headers, *(["error"] if errors else []), title=f"Runs {place}")
    for run in runs:
        cells: list[str | Text] = [
            run.run_id,
            run.pipeline,
            Text(run.status.value, style=RUN_STYLES.get(run.status, "")),
            run.trigger.kind,
            local_time(run.created_at),
            format_duration(_seconds(run)),
        ]
        if errors:
            cells.append(Text(run.error or "", style="red"))
        shown.add_row(*cells)
    stdout.print(fit(shown, stdout))


def _statuses(values: list[str]) -> list[str]:
    from conveyor.engine.state import RunStatus

    known = [status.value for status in RunStatus]
    for value in values:
        if value.lower() not in known:
            raise typer.BadParameter(
                f"{value!r} is not one of {', '.join(known)}", param_hint="'--status'"
            )
    return [value.lower() for value in values]


def _trigger(value: str | None) -> str | None:
    known = ("manual", "schedule", "webhook", "event")
    if value is not None and value.lower() not in known:
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(known)}", param_hint="'--trigger'"
        )
    return value.lower() if value is not None else None


async def _list(
    settings: Settings,
    status: list[str],
    pipeline: str | None,
    limit: int,
    trigger: str | None = None,
) -> list[RunSummary]:
    if not on_temporal(settings) and not settings.db_path.exists():
        return []
    async with reader(settings) as backend:
        return await backend.list_runs(
            status=status or None, pipeline=pipeline, trigger=trigger, limit=limit
        )


@runs_app.command("show")
def show_command(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    db: DbOption = None,
    json_output: JsonOption = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Show the run live until it ends (exit 1 unless it completed)."
        ),
    ] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a run: its steps, outputs and error; live with --follow."""
    from conveyor.cli.live import describe_trigger, render_outcome, render_run

    if follow:
        raise typer.Exit(
            follow_run(run_id, server=server, api_key=api_key, db=db, json_output=json_output)
        )
    configure_logging()
    if server is not None:
        no_db_with_server(db)
        view = remote_call(server, api_key, lambda r: r.get_run(run_id))
    else:
        view = asyncio.run(_show(database_for(db), run_id))
    if json_output:
        print_json(view)
        return
    stdout.print(render_run(view))
    if view.trigger.kind != "manual":
        stdout.print(describe_trigger(view.trigger))
    stdout.print(render_outcome(view))


async def _show(settings: Settings, run_id: str) -> RunView:
    require_db(settings, run_id)
    async with reader(settings) as backend:
        try:
            return await backend.get(run_id)
        except RunNotFoundError:
            fail(f"no run with id {run_id!r} {where(settings)}")


def follow_run(
    run_id: str,
    *,
    server: str | None,
    api_key: str | None,
    db: Path | None,
    json_output: bool,
) -> int:
    """Show a run live until it ends, then its outcome; the exit status (see the module).

    With `server`, from the server's event stream; otherwise by reading the database again
    every `POLL_SECONDS` (the engine that runs it is another process).
    """
    from conveyor.cli.live import render_outcome
    from conveyor.cli.remote import Remote

    configure_logging()

    async def remotely(url: str) -> RunView:
        async with Remote(url, api_key) as remote:
            return await _watch(remote.follow(run_id), json_output)

    try:
        if server is not None:
            no_db_with_server(db)
            view = asyncio.run(remotely(server))
        else:
            settings = database_for(db)
            require_db(settings, run_id)
            _hint_if_undriven(settings, run_id)
            view = asyncio.run(_watch(_poll(settings, run_id), json_output))
    except RemoteError as exc:
        report(exc)
        return 1
    except KeyboardInterrupt:
        note(f"stopped following run {run_id}; the run itself goes on")
        return EXIT_INTERRUPTED
    if json_output:
        print_json(view)
    else:
        stdout.print(render_outcome(view))
    return 0 if view.succeeded else 1


def _hint_if_undriven(settings: Settings, run_id: str) -> None:
    """Say how to go on when nothing drives the run being followed (its engine stopped)."""
    from conveyor.backends.local import Store

    store = Store(settings.db_path).open()
    try:
        try:
            status = store.run_record(run_id).status
        except RunNotFoundError:
            return  # Reported by the poll.
        holder = store.lock_holder()
    finally:
        store.close()
    if holder is None and not status.is_terminal:
        warning(
            f"no engine drives {shown_path(settings.db_path)}: run {run_id} stays "
            f"{status.value} until one does; drive it with "
            f"`{command_name()} runs resume {run_id}{db_flag(settings)}`"
        )


def db_flag(settings: Settings) -> str:
    """` --db PATH` for a hint, unless the database is the default one."""
    from conveyor.config import DEFAULT_DB_PATH

    if settings.db_path.absolute() == DEFAULT_DB_PATH.absolute():
        return ""
    return f" --db {shown_path(settings.db_path)}"


async def _watch(views: AsyncIterator[RunView], json_output: bool) -> RunView:
    from conveyor.cli.live import show_live

    if not json_output:
        return await show_live(views, stdout)
    last = None
    async for view in views:
        last = view
    assert last is not None  # A follow yields the run's view first.
    return last


async def _poll(settings: Settings, run_id: str) -> AsyncIterator[RunView]:
    async with reader(settings) as backend:
        while True:
            try:
                view = await backend.get(run_id)
            except RunNotFoundError:
                fail(f"no run with id {run_id!r} {where(settings)}")
            yield view
            if view.status.is_terminal:
                return
            await asyncio.sleep(POLL_SECONDS)


def remote_call(
    server: str, api_key: str | None, call: Callable[[Remote], Coroutine[Any, Any, _T]]
) -> _T:
    """The result of one call on the server; a failure is reported and exits 1."""
    from conveyor.cli.remote import Remote

    async def run() -> _T:
        async with Remote(server, api_key) as remote:
            return await call(remote)

    try:
        return asyncio.run(run())
    except RemoteError as exc:
        report(exc)
        raise typer.Exit(1) from None


def report(exc: RemoteError) -> None:
    """Print a server's refusal: its message, then each field it named."""
    error(str(exc))
    for field in exc.fields:
        detail(field)


def no_db_with_server(db: Path | None) -> None:
    if db is not None:
        raise typer.BadParameter("--db and --server exclude each other", param_hint="'--db'")


@runs_app.command("cancel")
def cancel_command(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded with the run.")
    ] = "cancelled from the command line",
    db: DbOption = None,
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel a run: stop scheduling its steps, cancel the running ones, clean up.

    When an engine holds the database, the cancel is handed to it and this waits (up to 10 s)
    for the run to end; otherwise it is recorded here and the steps' cleanup runs here. With
    --server, the server cancels it.
    """
    configure_logging()
    if server is not None:
        no_db_with_server(db)
        view = remote_call(server, api_key, lambda r: r.cancel_run(run_id, reason))
        if json_output:
            print_json(view)
        else:
            stdout.print(f"Run {run_id} is {view.status.value}.")
        return
    settings = database_for(db)
    raise typer.Exit(asyncio.run(_cancel(settings, run_id, reason)))


async def _cancel(settings: Settings, run_id: str, reason: str) -> int:
    from conveyor.backends.local import Store

    if on_temporal(settings):
        async with reader(settings) as backend:
            try:
                view = await backend.cancel(run_id, reason)
            except RunNotFoundError:
                fail(f"no run with id {run_id!r} {where(settings)}")
        stdout.print(f"Run {run_id} is {view.status.value}.")
        return 0
    require_db(settings, run_id)
    # The store alone first: handing the cancel to a running engine needs no actions loaded.
    store = Store(settings.db_path).open()
    try:
        try:
            record = store.run_record(run_id)
        except RunNotFoundError:
            fail(f"no run with id {run_id!r} {where(settings)}")
        if record.status.is_terminal:
            stdout.print(f"Run {run_id} already ended ({record.status.value}); nothing to do.")
            return 0
        holder = store.lock_holder()
        if holder is not None:
            store.post_inbox("cancel", {"run_id": run_id, "reason": reason})
            stdout.print(f"Cancel handed to the engine (pid {holder}) that runs {run_id}.")
            return await _await_end(store, run_id, holder)
    finally:
        store.close()
    # No engine: record the cancel here; the steps' cleanup runs in this process.
    async with reader(settings) as backend:
        view = await backend.cancel(run_id, reason)
    stdout.print(f"Run {run_id} is {view.status.value}.")
    return 0 if view.status.is_terminal else 1


async def _await_end(store: Store, run_id: str, holder: int) -> int:
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = store.run_record(run_id).status
        if status.is_terminal:
            stdout.print(f"Run {run_id} is {status.value}.")
            return 0
    fail(
        f"run {run_id} is still {store.run_record(run_id).status.value} after "
        f"{CANCEL_WAIT_SECONDS:g}s; the engine (pid {holder}) has the request and may "
        f"still carry it out: check with `{command_name()} runs show {run_id}`"
    )


def require_db(settings: Settings, run_id: str) -> None:
    # Looking a run up must not leave an empty database behind at a mistyped path.
    if not on_temporal(settings) and not settings.db_path.exists():
        fail(f"no run with id {run_id!r}: there is no database at {settings.db_path}")


def _seconds(run: RunSummary) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at or datetime.now(UTC)
    return max(0.0, (end - run.started_at).total_seconds())
