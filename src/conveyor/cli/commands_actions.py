"""`conveyor actions ...`: the action catalog."""

from __future__ import annotations

import typer

from conveyor.cli.app import app

actions_app = typer.Typer(help="List and inspect the installed actions.", no_args_is_help=True)
app.add_typer(actions_app, name="actions")
