"""`conveyor pipelines ...`: the stored pipeline catalog, in a database or on a server.

`push FILE` stores a pipeline (a new version when its name is taken), `pull NAME` writes one
back out as YAML, and `list`, `show`, `versions` and `delete` do what they say. A pipeline is
named by its name (or its id). Locally the catalog is the database's, as `conveyor serve`
sees it, and pipelines belong to `--owner` (`local` by default, the owner `make run` uses);
with `--server URL`, to the API key's owner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from conveyor.cli.app import app
from conveyor.cli.commands_runs import no_db_with_server, remote_call
from conveyor.cli.common import (
    DbOption,
    JsonOption,
    configure_logging,
    database_for,
    detail,
    error,
    fail,
    note,
    print_json,
    stdout,
)
from conveyor.cli.remote import ApiKeyOption, RemoteError, ServerOption
from conveyor.cli.tables import fit, local_time, table

if TYPE_CHECKING:
    from conveyor.api.catalog import Catalog
    from conveyor.cli.remote import Remote
    from conveyor.config import Settings

pipelines_app = typer.Typer(
    help="Store, list, show and delete pipelines of the catalog.", no_args_is_help=True
)
app.add_typer(pipelines_app, name="pipelines")

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The pipeline's name or id.")]
OwnerOption = Annotated[
    str,
    typer.Option(
        "--owner", metavar="NAME", help="Without --server: whose pipelines (default: local)."
    ),
]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="This version (default: the latest).")
]


# ---------------------------------------------------------------- the two catalogs


def _local(db: Path | None, work: Any) -> Any:
    """`work(catalog, settings)` on the database's catalog (no engine needed)."""
    from conveyor.api.catalog import Catalog
    from conveyor.backends.local.store import Store

    settings = database_for(db)
    store = Store(settings.db_path).open()
    try:
        return work(Catalog(store), settings)
    finally:
        store.close()


def _local_id(catalog: Catalog, owner: str, ref: str) -> str:
    found = catalog.get(ref)
    if found is not None:
        return found.id
    ident = catalog.id_by_name(owner, ref)
    if ident is None:
        fail(f"no pipeline named {ref!r} of owner {owner!r}")
    return ident


def _summary_json(stored: Any) -> dict[str, Any]:
    from conveyor.api.routes.pipelines import _summary

    return _summary(stored).model_dump(mode="json")


def _detail_json(stored: Any) -> dict[str, Any]:
    from conveyor.api.routes.pipelines import _detail

    return _detail(stored).model_dump(mode="json")


def _server(server: str, api_key: str | None, db: Path | None, call: Any) -> Any:
    no_db_with_server(db)
    return remote_call(server, api_key, call)


async def _remote_id(remote: Remote, ref: str) -> str:
    found = await remote.get_json(f"/pipelines/{ref}")
    return str(found["id"])


# ---------------------------------------------------------------- commands


@pipelines_app.command("list")
def list_command(
    db: DbOption = None,
    owner: OwnerOption = "local",
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List stored pipelines, by name."""
    configure_logging()
    if server is not None:
        page = _server(server, api_key, db, lambda r: r.get_json("/pipelines", limit=500))
        items: list[dict[str, Any]] = page["items"]
    else:
        items = _local(
            db,
            lambda catalog, _: [
                _summary_json(p) for p in catalog.list(owner=owner, limit=10_000)[0]
            ],
        )
    if json_output:
        print_json(items)
        return
    if not items:
        stdout.print("No pipelines stored.")
        return
    shown = table("name", "version", "owner", "updated", "description")
    for item in items:
        shown.add_row(
            item["name"],
            str(item["latest_version"]),
            item["owner"],
            local_time(item["updated_at"]),
            _first_sentence(item.get("description") or ""),
        )
    stdout.print(fit(shown, stdout))


def _first_sentence(text: str) -> str:
    # A table row says what a pipeline is; `pipelines show` has the rest.
    head, dot, _ = " ".join(text.split()).partition(". ")
    return head + ("." if dot else "")


@pipelines_app.command("show")
def show_command(
    name: NameArgument,
    version: VersionOption = None,
    db: DbOption = None,
    owner: OwnerOption = "local",
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a stored pipeline: its name, version and document."""
    found = _get(name, version, db, owner, server, api_key)
    if json_output:
        print_json(found)
        return
    stdout.print(
        f"[bold]{found['name']}[/] version {found['version']} of {found['latest_version']}, "
        f"owner {found['owner']}, id {found['id']}",
        soft_wrap=True,
    )
    typer.echo(_yaml(found["document"]), nl=False)


@pipelines_app.command("pull")
def pull_command(
    name: NameArgument,
    version: VersionOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Write to this file (default: stdout)."
        ),
    ] = None,
    db: DbOption = None,
    owner: OwnerOption = "local",
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Write a stored pipeline's document as YAML (to push again, or run with `conveyor run`)."""
    found = _get(name, version, db, owner, server, api_key)
    text = _yaml(found["document"])
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    note(f"{found['name']} version {found['version']} written to {output}")


def _get(
    name: str,
    version: int | None,
    db: Path | None,
    owner: str,
    server: str | None,
    api_key: str | None,
) -> dict[str, Any]:
    configure_logging()
    if server is not None:
        query = {"version": version} if version is not None else {}
        found: dict[str, Any] = _server(
            server, api_key, db, lambda r: r.get_json(f"/pipelines/{name}", **query)
        )
        return found

    def get(catalog: Catalog, _: Settings) -> dict[str, Any]:
        stored = catalog.get(_local_id(catalog, owner, name), version)
        if stored is None:
            fail(f"pipeline {name!r} has no version {version}")
        return _detail_json(stored)

    result: dict[str, Any] = _local(db, get)
    return result


def _yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@pipelines_app.command("versions")
def versions_command(
    name: NameArgument,
    db: DbOption = None,
    owner: OwnerOption = "local",
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List a stored pipeline's versions, newest first."""
    configure_logging()
    if server is not None:
        page = _server(
            server, api_key, db, lambda r: r.get_json(f"/pipelines/{name}/versions", limit=500)
        )
        items: list[dict[str, Any]] = page["items"]
    else:
        items = _local(
            db,
            lambda catalog, _: [
                {"version": v, "created_at": at.isoformat()}
                for v, at in catalog.versions(_local_id(catalog, owner, name))
            ],
        )
    if json_output:
        print_json(items)
        return
    shown = table("version", "created")
    for item in items:
        shown.add_row(str(item["version"]), local_time(item["created_at"]))
    stdout.print(fit(shown, stdout))


@pipelines_app.command("push")
def push_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", exists=True, dir_okay=False, help="The pipeline (.yaml or .json)."
        ),
    ],
    db: DbOption = None,
    owner: OwnerOption = "local",
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Store a pipeline: a new one, or the next version of the one with its name."""
    from conveyor.api.catalog import parse_text
    from conveyor.errors import PipelineLoadError

    configure_logging()
    text = file.read_text(encoding="utf-8")
    try:
        document = parse_text(text)
    except PipelineLoadError as exc:
        fail(f"{file}: {exc}")
    if server is not None:
        stored = _server(server, api_key, db, lambda r: _push_remote(r, text, document))
    else:
        stored = _local(db, lambda catalog, _: _push_local(catalog, owner, file, document))
    for warning in stored.get("warnings", []):
        detail(f"warning: {warning['path']}: {warning['message']}")
    if json_output:
        print_json(stored)
        return
    note(f"{stored['name']} version {stored['version']} stored (id {stored['id']})")


async def _push_remote(remote: Remote, text: str, document: dict[str, Any]) -> dict[str, Any]:
    try:
        created: dict[str, Any] = await remote.send_json("POST", "/pipelines", {"document": text})
        return created
    except RemoteError as exc:
        if "409" not in str(exc):
            raise
    name = str(document.get("name", ""))
    updated: dict[str, Any] = await remote.send_json(
        "PUT", f"/pipelines/{name}", {"document": text}
    )
    return updated


def _push_local(
    catalog: Catalog, owner: str, file: Path, document: dict[str, Any]
) -> dict[str, Any]:
    from conveyor.actions import ActionRegistry
    from conveyor.api.catalog import NameTakenError
    from conveyor.pipeline.loading import spec_from_document
    from conveyor.pipeline.validation import validate_pipeline

    report = validate_pipeline(document, ActionRegistry.default())
    if report.errors:
        error(f"{file}: the pipeline is invalid:")
        for issue in report.errors:
            detail(str(issue))
        raise typer.Exit(1)
    spec = spec_from_document(document)
    try:
        stored = catalog.create(owner, spec)
    except NameTakenError:
        updated = catalog.update(_local_id(catalog, owner, spec.name), spec)
        assert updated is not None
        stored = updated
    result = _detail_json(stored)
    result["warnings"] = [{"path": w.path, "message": w.message} for w in report.warnings]
    return result


@pipelines_app.command("delete")
def delete_command(
    name: NameArgument,
    db: DbOption = None,
    owner: OwnerOption = "local",
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a stored pipeline and all its versions (its runs are kept)."""
    configure_logging()
    if server is not None:
        _server(server, api_key, db, lambda r: r.send_json("DELETE", f"/pipelines/{name}"))
    else:
        _local(db, lambda catalog, _: catalog.delete(_local_id(catalog, owner, name)))
    note(f"pipeline {name} deleted")
