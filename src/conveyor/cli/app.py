"""The root `conveyor` command; each sub-command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="conveyor",
    help="Conveyor: a durable pipeline engine for pluggable actions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported for their side effect of adding commands to `app`; kept in one place so the
    # command tree is visible here.
    from conveyor.cli import (  # noqa: F401
        commands_actions,
        commands_events,
        commands_keys,
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
