"""`conveyor runs resume` and `conveyor runs retry`: carry on runs that did not finish.

A run is driven by the engine that holds its database: `conveyor run` or `conveyor serve`.
When that process died (a crash, a closed terminal), the run stays `running` in the database
until an engine opens it again: `runs resume` is that engine, for as long as the runs take.
It carries on as any restarted engine does: waiting steps keep waiting (send their events with
`conveyor events send`), timers keep their deadlines, steps that were running are run again
when their action is idempotent and failed as interrupted when not.

`runs retry` starts a new run of one that failed, was cancelled or timed out; its completed
steps keep their outputs. The new run is driven by the engine holding the database when there
is one (`conveyor serve`), else here, as `runs resume` would.

Exit status: 0 when every run driven here completed; 1 when one did not, or when another
engine holds the database; 130 when interrupted (the runs stay where they are, to be resumed).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.backends import local_reader
from conveyor.cli.commands_runs import (
    EXIT_INTERRUPTED,
    db_flag,
    follow_run,
    no_db_with_server,
    remote_call,
    require_db,
    runs_app,
)
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    command_name,
    configure_logging,
    database_for,
    fail,
    note,
    print_json,
    stdout,
)
from conveyor.cli.remote import ApiKeyOption, ServerOption
from conveyor.config import Settings
from conveyor.errors import EngineBusyError, RunNotFoundError, RunStateError

if TYPE_CHECKING:
    from conveyor.backends.local import LocalBackend
    from conveyor.runs import RunView


@runs_app.command("resume")
def resume_command(
    run_id: Annotated[
        str | None,
        typer.Argument(help="The run to drive to its end (default: every unfinished run)."),
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Drive unfinished runs of a database no engine holds (after a crash), until they end."""
    settings = database_for(db)
    if run_id is not None:
        require_db(settings, run_id)
    elif not settings.db_path.exists():
        stdout.print("No unfinished runs: there is no database yet.")
        return
    configure_logging()
    try:
        code = asyncio.run(_resume(settings, run_id, json_output))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


async def _resume(settings: Settings, run_id: str | None, json_output: bool) -> int:
    from conveyor.backends.local import LocalBackend

    backend = LocalBackend(settings=settings)
    try:
        await backend.start()
    except EngineBusyError as exc:
        fail(
            f"{exc}: it drives the runs already; follow one with "
            f"`{command_name()} runs show RUN_ID --follow{db_flag(settings)}`"
        )
    try:
        if run_id is not None:
            try:
                await backend.get(run_id)
            except RunNotFoundError:
                fail(f"no run with id {run_id!r} in {settings.db_path}")
            return await _drive_one(backend, run_id, json_output)
        return await _drive_all(backend, json_output)
    finally:
        await backend.stop()


async def _drive_one(backend: LocalBackend, run_id: str, json_output: bool) -> int:
    """Drive one run to its end, live (the engine is started); the exit status."""
    from conveyor.cli.commands_run import interruptible
    from conveyor.cli.live import follow, render_outcome

    view = await backend.get(run_id)
    if view.status.is_terminal:
        note(f"run {run_id} already ended ({view.status.value})")
    else:
        note(f"driving run {run_id} ({view.pipeline}); Ctrl-C stops driving, the run stays")
        watched = await interruptible(
            backend.wait(run_id) if json_output else follow(backend, run_id, stdout)
        )
        if watched is None:
            note(f"stopped driving run {run_id}; it is {(await backend.get(run_id)).status.value}")
            return EXIT_INTERRUPTED
        view = watched
    if json_output:
        print_json(view)
    else:
        stdout.print(render_outcome(view))
    return 0 if view.succeeded else 1


async def _drive_all(backend: LocalBackend, json_output: bool) -> int:
    """Drive every unfinished run to its end, saying as each ends; the exit status."""
    from conveyor.cli.commands_run import interruptible

    ids = backend.store.run_ids("unfinished_runs")
    if not ids:
        if json_output:
            print_json([])
        else:
            stdout.print("No unfinished runs.")
        return 0
    note(f"driving {len(ids)} unfinished run(s); Ctrl-C stops driving, the runs stay")

    async def each(run_id: str) -> RunView:
        view = await backend.wait(run_id)
        if not json_output:
            stdout.print(f"Run {run_id} ({view.pipeline}) {view.status.value}")
        return view

    finished = await interruptible(asyncio.gather(*(each(run_id) for run_id in ids)))
    if finished is None:
        return EXIT_INTERRUPTED
    if json_output:
        print_json([view.model_dump(mode="json") for view in finished])
    return 0 if all(view.succeeded for view in finished) else 1


@runs_app.command("retry")
def retry_command(
    run_id: Annotated[str, typer.Argument(help="The run that failed, was cancelled or timed out.")],
    db: DbOption = None,
    json_output: JsonOption = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Print the new run's id and return, without following it."),
    ] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Start a new run of one that did not complete; its completed steps are kept."""
    configure_logging()
    if server is not None:
        no_db_with_server(db)
        view = remote_call(server, api_key, lambda r: r.retry_run(run_id))
        note(f"run {view.run_id} started on {server}, retrying {run_id}")
        if detach:
            _print_started(view, json_output)
            return
        raise typer.Exit(
            follow_run(
                view.run_id, server=server, api_key=api_key, db=None, json_output=json_output
            )
        )
    settings = database_for(db)
    require_db(settings, run_id)
    if detach or _engine_holds(settings):
        # Recorded only: the engine holding the database starts it (or the next one).
        view = asyncio.run(_record_retry(settings, run_id))
        note(f"run {view.run_id} retries {run_id}")
        if detach:
            _print_started(view, json_output)
            return
        raise typer.Exit(
            follow_run(
                view.run_id, server=None, api_key=None, db=settings.db_path, json_output=json_output
            )
        )
    try:
        code = asyncio.run(_retry_here(settings, run_id, json_output))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


def _print_started(view: RunView, json_output: bool) -> None:
    if json_output:
        print_json(view)
    else:
        typer.echo(view.run_id)


def _engine_holds(settings: Settings) -> bool:
    from conveyor.backends.local import Store

    store = Store(settings.db_path).open()
    try:
        return store.lock_holder() is not None
    finally:
        store.close()


async def _record_retry(settings: Settings, run_id: str) -> RunView:
    async with local_reader(settings) as recorder:
        return await recorder.get(await _retried(recorder, run_id))


async def _retry_here(settings: Settings, run_id: str, json_output: bool) -> int:
    from conveyor.backends.local import LocalBackend

    backend = LocalBackend(settings=settings)
    try:
        await backend.start()
    except EngineBusyError as exc:  # Taken since we looked.
        fail(str(exc))
    try:
        new_id = await _retried(backend, run_id)
        note(f"run {new_id} started, retrying {run_id}")
        return await _drive_one(backend, new_id, json_output)
    finally:
        await backend.stop()


async def _retried(backend: LocalBackend, run_id: str) -> str:
    try:
        return await backend.retry(run_id)
    except RunNotFoundError:
        fail(f"no run with id {run_id!r} in {backend.store.path}")
    except RunStateError as exc:
        fail(str(exc))
