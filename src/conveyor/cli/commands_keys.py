"""`conveyor keys ...`: the API keys of the HTTP service.

A key's token is printed once, when it is made; only a hash of its secret is stored. These
commands open the database directly (no engine), so they work while `conveyor serve` runs:
a new or revoked key takes effect on the server's next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import tables
from conveyor.cli.app import app
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    command_name,
    database_for,
    fail,
    note,
    print_json,
    stdout,
)

if TYPE_CHECKING:
    from conveyor.backends.local.store import Store

keys_app = typer.Typer(
    help="Make, list and revoke API keys of the HTTP service.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


class ScopeChoice(StrEnum):
    """The scopes a key may have, weakest first."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@contextmanager
def _store(db: DbOption) -> Iterator[Store]:
    from conveyor.backends.local.store import Store

    store = Store(database_for(db).db_path).open()
    try:
        yield store
    finally:
        store.close()


@keys_app.command("create")
def create_command(
    owner: Annotated[str, typer.Option("--owner", metavar="NAME", help="Who the key acts as.")],
    scope: Annotated[
        ScopeChoice,
        typer.Option("--scope", help="read: read; write: also change; admin: every owner."),
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a key and print its token (shown this once; keep it secret)."""
    from conveyor.api.keys import create_key

    with _store(db) as store:
        try:
            key, token = create_key(store, owner, scope.value)
        except ValueError as exc:
            fail(str(exc), code=2)
    if as_json:
        print_json({"id": key.id, "owner": key.owner, "scope": key.scope, "token": token})
        return
    # The token alone on stdout, so `TOKEN=$(conveyor keys create ...)` works.
    typer.echo(token)
    note(f"key {key.id} for {key.owner!r} ({key.scope}); the token is not shown again")


@keys_app.command("list")
def list_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the keys (never their secrets), revoked ones too."""
    from conveyor.api.keys import list_keys

    with _store(db) as store:
        keys = list_keys(store)
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "owner": k.owner,
                    "scope": k.scope,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in keys
            ]
        )
        return
    if not keys:
        note(f"no API keys; make one with `{command_name()} keys create --owner NAME --scope read`")
        return
    table = tables.table("id", "owner", "scope", "created", "revoked", text="owner")
    for k in keys:
        revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else ""
        table.add_row(k.id, k.owner, k.scope, k.created_at.strftime("%Y-%m-%d %H:%M"), revoked)
    stdout.print(tables.fit(table, stdout))


@keys_app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see `keys list`).")],
    db: DbOption = None,
) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    from conveyor.api.keys import revoke_key

    with _store(db) as store:
        if not revoke_key(store, key_id):
            fail(f"no active key with id {key_id!r}")
    note(f"key {key_id} revoked")
