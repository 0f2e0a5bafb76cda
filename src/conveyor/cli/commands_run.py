"""`conveyor run FILE`: run a pipeline on the configured backend and watch it live.

On the embedded engine (the default) the run happens in this process; with
`CONVEYOR_BACKEND=temporal` it is started on the Temporal cluster, where `conveyor worker`
processes run its steps, and this process follows it (Ctrl-C cancels it there).

`conveyor run FILE --server URL` starts it on a Conveyor server instead, and
`conveyor run --follow RUN_ID --server URL` watches a run already there; both follow the
server's event stream (without `--server`, `--follow` reads the local database).

Exit status: 0 when the run completed; 1 when it failed, was cancelled or timed out, when the
pipeline is invalid, when another engine holds the database, or when the server could not be
used (its message says why); 2 for bad parameters; 130 when interrupted (a local run is
cancelled first; a run on a server goes on).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from conveyor.cli.app import app
from conveyor.cli.backends import on_temporal, temporal
from conveyor.cli.commands_runs import follow_run
from conveyor.cli.common import (
    DbOption,
    configure_logging,
    detail,
    error,
    note,
    parse_params,
    print_json,
    settings_for,
    stdout,
    warning,
)
from conveyor.cli.remote import ApiKeyOption, RemoteError, ServerOption
from conveyor.config import Settings
from conveyor.errors import (
    ConveyorError,
    EngineBusyError,
    ParamValidationError,
    PipelineLoadError,
    PipelineValidationError,
)

if TYPE_CHECKING:
    # The engine is imported when a command runs, not when the CLI starts: every `conveyor`
    # invocation imports all command modules, and most never start an engine.
    from conveyor.actions import ActionRegistry
    from conveyor.backends.local import LocalBackend
    from conveyor.backends.temporal.backend import TemporalBackend
    from conveyor.pipeline.spec import PipelineSpec
    from conveyor.runs import RunView

_T = TypeVar("_T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunOutcome:
    """How `execute` ended: the process exit status and, if a run started, its last view."""

    exit_code: int
    view: RunView | None = None


@app.command("run")
def run_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="The pipeline file (.yaml, .yml or .json).", metavar="FILE", show_default=False
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            help="A parameter as key=value (repeatable); key=@file.json reads JSON from a file.",
            metavar="KEY=VALUE",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the final run as JSON, with no live view.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0,
            metavar="SECONDS",
            help="Cancel the run if it has not ended after this many seconds.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Reuse the run started before with this key instead of starting another.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        str | None,
        typer.Option(
            "--follow",
            metavar="RUN_ID",
            help="Instead of starting a run, watch this one until it ends.",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Run a pipeline on the configured backend (or a server), with a live view of its steps."""
    if follow is not None:
        if file is not None or param or timeout is not None or idempotency_key is not None:
            raise typer.BadParameter(
                "--follow watches a run that exists: it takes no FILE, -p, --timeout or "
                "--idempotency-key",
                param_hint="'--follow'",
            )
        raise typer.Exit(
            follow_run(follow, server=server, api_key=api_key, db=db, json_output=json_output)
        )
    if file is None:
        raise typer.BadParameter(
            "give the pipeline FILE to run, or --follow RUN_ID", param_hint="'FILE'"
        )
    params = parse_params(param or [])
    if server is not None:
        if db is not None or timeout is not None:
            raise typer.BadParameter(
                "--db and --timeout are for runs on this machine", param_hint="'--server'"
            )
        raise typer.Exit(
            _start_remotely(file, params, server, api_key, idempotency_key, json_output)
        )
    settings = settings_for(db)
    configure_logging()
    try:
        outcome = asyncio.run(
            execute(
                file,
                params,
                settings,
                json_output=json_output,
                timeout=timeout,
                idempotency_key=idempotency_key,
            )
        )
    except KeyboardInterrupt:
        # Ctrl-C before the run started (while loading): nothing to cancel.
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(outcome.exit_code)


def _start_remotely(
    file: Path,
    params: Mapping[str, Any],
    server: str,
    api_key: str | None,
    key: str | None,
    json_output: bool,
) -> int:
    """Start the pipeline in `file` on the server, then follow it there; the exit status."""
    from conveyor.cli.remote import Remote

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        error(f"cannot read {file}: {exc.strerror}")
        return EXIT_FAILED
    configure_logging()

    async def start() -> str:
        async with Remote(server, api_key) as remote:
            view = await remote.start_run(text, params, key)
            return view.run_id

    try:
        run_id = asyncio.run(start())
    except RemoteError as exc:
        error(f"cannot start {file}: {exc}")
        for field in exc.fields:
            detail(field)
        return EXIT_FAILED
    note(f"run {run_id} started on {server}")
    return follow_run(run_id, server=server, api_key=api_key, db=None, json_output=json_output)


async def execute(
    source: Path | str,
    params: Mapping[str, Any],
    settings: Settings,
    *,
    json_output: bool = False,
    timeout: float | None = None,
    idempotency_key: str | None = None,
    registry: ActionRegistry | None = None,
) -> RunOutcome:
    """Load, validate and run a pipeline to its end on the configured backend, as `conveyor run`.

    Errors are printed on stderr; the live view (or, with `json_output`, the final run as
    JSON) on stdout. Ctrl-C (SIGINT) or SIGTERM cancels the run.

    Args:
        source: The pipeline file.
        params: Parameter values, typed or as strings.
        settings: The settings: `settings.backend` says where the run happens.
        json_output: Print the final run as JSON instead of showing it live.
        timeout: Cancel the run past this many seconds.
        idempotency_key: Follow the run started before with this key, if any.
        registry: The actions; the installed ones when None.

    Returns:
        The exit status and the run's final view.
    """
    from conveyor.backends.local import LocalBackend
    from conveyor.pipeline.loading import load_pipeline

    try:
        spec = load_pipeline(source)
    except PipelineLoadError as exc:
        error(str(exc))
        return RunOutcome(EXIT_FAILED)
    except PipelineValidationError as exc:
        _print_issues(str(source), exc.issues)
        return RunOutcome(EXIT_FAILED)
    if on_temporal(settings):
        async with temporal(settings, registry) as remote:
            return await _run(
                remote,
                spec,
                str(source),
                params,
                json_output=json_output,
                timeout=timeout,
                idempotency_key=idempotency_key,
            )
    backend = LocalBackend(registry, settings)
    try:
        try:
            await backend.start()
        except EngineBusyError as exc:
            error(f"cannot run: {exc}")
            return RunOutcome(EXIT_FAILED)
        return await _run(
            backend,
            spec,
            str(source),
            params,
            json_output=json_output,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )
    finally:
        await backend.stop()


async def _run(
    backend: LocalBackend | TemporalBackend,
    spec: PipelineSpec,
    source: str,
    params: Mapping[str, Any],
    *,
    json_output: bool,
    timeout: float | None,
    idempotency_key: str | None,
) -> RunOutcome:
    from conveyor.cli.live import follow, render_outcome, render_run
    from conveyor.pipeline.validation import validate_pipeline

    report = validate_pipeline(spec, backend.registry)
    for issue in report.warnings:
        warning(str(issue))
    if report.errors:
        _print_issues(source, report.errors)
        return RunOutcome(EXIT_FAILED)
    if idempotency_key is not None:
        earlier = await _run_for_key(backend, idempotency_key)
        if earlier is not None:
            warning(f"idempotency key {idempotency_key!r} was used before: showing run {earlier}")
    try:
        run_id = await backend.start_run(spec, params, idempotency_key=idempotency_key)
    except PipelineValidationError as exc:
        _print_issues(source, exc.issues)
        return RunOutcome(EXIT_FAILED)
    except ParamValidationError as exc:
        error("invalid parameters:")
        for problem in exc.problems:
            detail(f"{problem.name}: {problem.message}")
        return RunOutcome(EXIT_USAGE)
    except ConveyorError as exc:
        error(str(exc))
        return RunOutcome(EXIT_FAILED)

    # On stderr in every mode: a script reading --json output can still learn the id early,
    # to cancel the run or send it events from elsewhere.
    note(f"run {run_id} started ({spec.name}, {_place(backend)})")
    interrupted = asyncio.Event()
    restore = _on_signals(interrupted.set)
    watcher = asyncio.ensure_future(
        backend.wait(run_id) if json_output else follow(backend, run_id, stdout)
    )
    stopper = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({watcher, stopper}, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        restore()
        stopper.cancel()
        if not watcher.done():
            watcher.cancel()
        await asyncio.gather(watcher, stopper, return_exceptions=True)

    failure = watcher.exception() if watcher.done() and not watcher.cancelled() else None
    if isinstance(failure, ConveyorError):
        # The run goes on (on Temporal, with no worker answering, for instance).
        error(f"cannot follow run {run_id}: {failure}")
        return RunOutcome(EXIT_FAILED)
    if failure is not None:
        raise failure
    if watcher.done() and not watcher.cancelled():
        view = watcher.result()
        code = EXIT_OK if view.succeeded else EXIT_FAILED
    else:
        reason = "interrupted" if interrupted.is_set() else f"timed out after {timeout:g}s"
        view = await backend.cancel(run_id, f"{reason} (conveyor run)")
        view = await _settled(backend, run_id, view)
        code = EXIT_INTERRUPTED if interrupted.is_set() else EXIT_FAILED
        if json_output:
            error(f"{reason}: run {run_id} was cancelled")
        else:
            # Once: the outcome below says it (the run's error is the reason).
            stdout.print(render_run(view))
    if json_output:
        print_json(view)
    else:
        stdout.print(render_outcome(view))
    return RunOutcome(code, view)


async def _run_for_key(backend: LocalBackend | TemporalBackend, key: str) -> str | None:
    from conveyor.backends.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return backend.store.run_for_key(key)
    return await backend.run_for_key(key)


def _place(backend: LocalBackend | TemporalBackend) -> str:
    from conveyor.backends.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return f"database {backend.store.path}"
    return f"on Temporal at {backend.settings.temporal_address}"


async def _settled(backend: LocalBackend | TemporalBackend, run_id: str, view: RunView) -> RunView:
    """The run's view once a cancel has been carried out (bounded to one second)."""
    for _ in range(20):
        if view.status.is_terminal:
            break
        await asyncio.sleep(0.05)
        view = await backend.get(run_id)
    return view


async def interruptible(awaitable: Awaitable[_T]) -> _T | None:
    """`awaitable`'s result, or None when Ctrl-C (or SIGTERM) came first (it is cancelled)."""
    interrupted = asyncio.Event()
    restore = _on_signals(interrupted.set)
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({work, stopper}, return_when="FIRST_COMPLETED")
    finally:
        restore()
        stopper.cancel()
        if not work.done():
            work.cancel()
        await asyncio.gather(work, stopper, return_exceptions=True)
    if interrupted.is_set() and not (work.done() and not work.cancelled()):
        return None
    return work.result()


def _on_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Call `handler` on SIGINT/SIGTERM instead of raising; returns the undo function.

    Without this, Ctrl-C would raise KeyboardInterrupt wherever the loop happens to be, and the
    run would be left half-cancelled in the database.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # Not the main thread, or a platform without loop signal handlers.
        installed.append(signum)

    def restore() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return restore


def _print_issues(source: str, issues: Sequence[object]) -> None:
    error(f"{source}: the pipeline is invalid:")
    for issue in issues:
        detail(str(issue))
