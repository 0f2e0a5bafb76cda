"""The root `conveyor` command; each sub-command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="conveyor",
    help="Conveyor: a durable pipeline engine for pluggable actions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"conveyor {version('conveyor')}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Conveyor: a durable pipeline engine for pluggable actions."""


def _register() -> None:
    # Imported for their side effect of adding commands to `app`; kept in one place so the
    # command tree is visible here.
    from conveyor.cli import (  # noqa: F401
        commands_actions,
        commands_db,
        commands_events,
        commands_keys,
        commands_logs,
        commands_pipelines,
        commands_recovery,
        commands_requests,
        commands_run,
        commands_runs,
        commands_serve,
        commands_validate,
        commands_worker,
    )


def main() -> None:
    """Entry point of the `conveyor` console script."""
    from conveyor.cli.backends import exit_now_if_connected

    _register()
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        exit_now_if_connected(code)
        raise
