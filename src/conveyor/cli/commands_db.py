"""`conveyor db backup` and `conveyor runs prune`: keeping a database safe and small.

A backup uses SQLite's online backup API, so it is a consistent copy even while an engine or
`conveyor serve` writes to the database. To restore one: stop whatever uses the database,
then copy the backup over it (and delete the `-wal` and `-shm` files beside it).

`runs prune` deletes finished runs past an age, with their timeline, step logs, events and
deliveries. `conveyor serve` prunes on its own when a retention policy is set
(`CONVEYOR_RETENTION`, `CONVEYOR_RETENTION_BY_OWNER`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.app import app
from conveyor.cli.commands_runs import runs_app
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    database_for,
    fail,
    note,
    print_json,
    shown_path,
    stdout,
)

db_app = typer.Typer(help="Back up the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_PAGES_A_STEP = 1024
"""Pages copied between two chances for writers to go on (4 MiB at the default page size)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `3600s` or `2w`.

    Raises:
        typer.BadParameter: any other text (names `--older-than`).
    """
    found = _DURATION.match(text.lower())
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is not an age like 30d, 12h, 90m, 3600s or 2w",
            param_hint="'--older-than'",
        )
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


@db_app.command("backup")
def backup_command(
    target: Annotated[
        Path, typer.Argument(metavar="PATH", dir_okay=False, help="Where to write the copy.")
    ],
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Copy the database to PATH, consistently, even while it is in use."""
    settings = database_for(db)
    source_path = settings.db_path
    if not source_path.exists():
        fail(f"there is no database at {shown_path(source_path)} to back up")
    if target.exists():
        if not force:
            fail(f"{target} exists; pass --force to replace it")
        target.unlink()
    if target.absolute() == source_path.absolute():
        fail("the backup must go to another file than the database")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(source_path)
    try:
        copy = sqlite3.connect(target)
        try:
            source.execute("PRAGMA busy_timeout=10000")
            source.backup(copy, pages=_PAGES_A_STEP)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        fail(f"backup failed: {exc}")
    finally:
        source.close()
    note(f"backed up {shown_path(source_path)} to {target}")


@runs_app.command("prune")
def prune_command(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="AGE", help="Runs that ended longer ago: 30d, 12h, 90m, 2w."
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only runs with this status (repeatable): completed, failed, cancelled, "
            "timed_out (default: all four).",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", metavar="NAME", help="Only this owner's runs.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete finished runs past an age, with their timeline, logs, events and deliveries."""
    from conveyor.backends.local.retention import FINISHED, prune
    from conveyor.backends.local.store import Store

    seconds = parse_age(older_than)
    statuses = [value.lower() for value in status or FINISHED]
    for value in statuses:
        if value not in FINISHED:
            raise typer.BadParameter(
                f"{value!r}: only finished runs are pruned ({', '.join(FINISHED)})",
                param_hint="'--status'",
            )
    settings = database_for(db)
    if not settings.db_path.exists():
        fail(f"there is no database at {shown_path(settings.db_path)}")
    store = Store(settings.db_path).open()
    try:
        pruned = prune(
            store, older_than_seconds=seconds, statuses=statuses, owner=owner, dry_run=dry_run
        )
    finally:
        store.close()
    if json_output:
        print_json({"dry_run": dry_run, **asdict(pruned)})
        return
    verb = "Would delete" if dry_run else "Deleted"
    stdout.print(
        f"{verb} {pruned.runs} run(s), {pruned.events} event(s) and "
        f"{pruned.deliveries} lifecycle deliver(ies) from {shown_path(settings.db_path)}."
    )
