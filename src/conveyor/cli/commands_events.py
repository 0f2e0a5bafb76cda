"""`conveyor events ...`: send an event to waiting runs, and list the stored events.

`events send` is how a script or an external service resumes a waiting step without an HTTP
endpoint: when an engine holds the database the event is handed to it through the database's
inbox (it takes requests within a tenth of a second); otherwise it is stored and routed here, and
the engine that next drives the database applies it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from conveyor.cli.app import app
from conveyor.cli.backends import on_temporal, reader, refuse_on_temporal
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    configure_logging,
    database_for,
    fail,
    print_json,
    read_json_file,
    settings_for,
    stdout,
)
from conveyor.config import Settings

if TYPE_CHECKING:
    from conveyor.backends.local.eventlog import StoredEvent
    from conveyor.events import EventReceipt

events_app = typer.Typer(
    help="Send events to waiting runs, and list stored events.", no_args_is_help=True
)
app.add_typer(events_app, name="events")


class EventStatus(StrEnum):
    """What became of a stored event."""

    ROUTED = "routed"
    PENDING = "pending"
    UNROUTABLE = "unroutable"
    EXPIRED = "expired"


_STATUS_STYLES = {
    "routed": "green",
    "pending": "yellow",
    "unroutable": "red",
    "expired": "dim",
    "duplicate": "dim",
}


@events_app.command("send")
def send_command(
    correlation_id: Annotated[
        str,
        typer.Option(
            "--correlation-id",
            "-c",
            metavar="ID",
            help="The id the waiting step waits on (sent as the event's workflow_id).",
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            metavar="JSON",
            help="The event's data: a JSON object, or @file.json to read one.",
        ),
    ] = "{}",
    event_type: Annotated[
        str | None,
        typer.Option("--type", "-t", metavar="TYPE", help="The event's type.", show_default=False),
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="EVENT_ID",
            help="The event's id; an event with an id seen before is applied once.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Send an event to the steps waiting on a correlation id."""
    body = build_body(correlation_id, _data_option(data), event_type, event_id)
    settings = database_for(db)
    configure_logging()
    asyncio.run(_send(settings, body, correlation_id, event_id))


def build_body(
    correlation_id: str,
    data: dict[str, Any],
    event_type: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The event's JSON body: `data` with the correlation id as `workflow_id`.

    The same body goes to an engine's inbox or to `send_event`, so both read the correlation
    id, type and id from it in the same way.

    Raises:
        typer.BadParameter: `data` carries a different `workflow_id`.
    """
    body = dict(data)
    existing = body.get("workflow_id")
    if existing is not None and str(existing) != correlation_id:
        raise typer.BadParameter(
            f"the data's workflow_id {existing!r} differs from --correlation-id {correlation_id!r}",
            param_hint="'--data'",
        )
    body["workflow_id"] = correlation_id
    if event_type is not None:
        body["type"] = event_type
    if event_id is not None:
        body["id"] = event_id
    return body


def _data_option(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        value = read_json_file(text[1:], option="--data")
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                param_hint="'--data'",
            ) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f"must be a JSON object, got {type(value).__name__}", param_hint="'--data'"
        )
    return value


async def _send(
    settings: Settings, body: dict[str, Any], correlation_id: str, event_id: str | None
) -> None:
    from conveyor.backends.local import Store
    from conveyor.errors import EventError
    from conveyor.events import event_from_body

    # The common case when a service publishes: an engine runs, and only needs the request.
    # The store alone is enough for that, and much quicker to open than a backend.
    holder = None
    if not on_temporal(settings):
        store = Store(settings.db_path).open()
        try:
            holder = store.lock_holder()
            if holder is not None:
                store.post_inbox("event", body)
        finally:
            store.close()
    if holder is not None:
        named = f" {event_id}" if event_id else ""
        stdout.print(
            f"Event{named} for {correlation_id} handed to the engine (pid {holder}); "
            "it routes it within a moment."
        )
        return
    async with reader(settings) as backend:
        try:
            event = event_from_body(
                body,
                paths=settings.correlation_paths,
                correlation_id=correlation_id,
                event_id=event_id,
            )
            receipt = await backend.send_event(event)
        except EventError as exc:
            fail(f"the event was not accepted: {exc}")
    _print_receipt(receipt)


def _print_receipt(receipt: EventReceipt) -> None:
    status = receipt.status.value
    line = Text.assemble(
        f"Event {receipt.event_id} for {receipt.correlation_id}: ",
        (status, _STATUS_STYLES.get(status, "")),
    )
    explanations = {
        "routed": f" to {receipt.deliveries} waiting step(s); applied when an engine runs",
        "pending": "; nobody waits on it yet: kept for a step that starts waiting on it",
        "duplicate": "; an event with this id was accepted before: not applied again",
        "unroutable": "; no correlation id found in it",
    }
    line.append(explanations.get(status, ""))
    stdout.print(line)


@events_app.command("list")
def list_command(
    status: Annotated[
        list[EventStatus] | None,
        typer.Option("--status", "-s", help="Only events with this status (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """List stored events, newest first."""
    refuse_on_temporal(
        settings_for(db),
        "events list",
        "Temporal keeps events in its mailbox workflows; see them with `temporal workflow list`",
    )
    settings = database_for(db)
    configure_logging()
    events = (
        asyncio.run(_list(settings, [s.value for s in status or []], limit))
        if settings.db_path.exists()
        else []
    )
    if json_output:
        print_json([dataclasses.asdict(event) for event in events])
        return
    if not events:
        stdout.print(f"No events in {settings.db_path}.")
        return
    table = Table(
        title=f"Events in {settings.db_path}", title_justify="left", box=None, pad_edge=False
    )
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("correlation", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("received", no_wrap=True)
    for event in events:
        table.add_row(
            str(event.seq),
            event.id,
            event.correlation_id or "",
            event.type,
            Text(event.status, style=_STATUS_STYLES.get(event.status, "")),
            datetime.fromtimestamp(event.received_at).strftime("%m-%d %H:%M:%S"),
        )
    stdout.print(table)


async def _list(settings: Settings, status: list[str], limit: int) -> list[StoredEvent]:
    from conveyor.backends.local import LocalBackend

    async with reader(settings) as backend:
        assert isinstance(backend, LocalBackend)  # Refused on Temporal before.
        return await backend.list_events(status=status or None, limit=limit)
