"""`conveyor serve`: the HTTP service on the embedded engine.

Auth is on by default: requests need an API key (`conveyor keys create`). `--insecure` turns
it off for local use, and is refused on anything but a loopback address, where nobody else
can reach the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.app import app
from conveyor.cli.common import DbOption, configure_logging, fail, note, settings_for, warning

if TYPE_CHECKING:
    from conveyor.api import Service
    from conveyor.api.service import Hook

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
"""The hosts `--insecure` may listen on."""


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")
    ] = 8080,
    db: DbOption = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="No API keys: every request is an admin. Loopback hosts only."
        ),
    ] = False,
    pipelines: Annotated[
        Path | None,
        typer.Option(
            "--pipelines",
            metavar="DIR",
            file_okay=False,
            exists=True,
            help="Store every *.yaml pipeline of DIR in the catalog at start (owner 'local').",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) on the embedded engine."""
    if insecure and host not in LOOPBACK:
        fail(
            f"--insecure serves without API keys, so it listens on loopback only "
            f"({', '.join(sorted(LOOPBACK))}), not on {host!r}",
            code=2,
        )
    settings = settings_for(db)
    _refuse_if_busy(settings.db_path)
    configure_logging()

    import uvicorn

    from conveyor.api import Service, create_app

    service = Service.create(settings, auth_enabled=not insecure)
    if pipelines is not None:
        service.on_start.append(_loader(pipelines))
    if insecure:
        warning(f"auth is off (--insecure): anyone who can reach {host}:{port} is an admin")
    else:
        service.on_start.append(_hint_without_keys)
    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        lifespan="on",
        ws="none",
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


def _refuse_if_busy(db_path: Path) -> None:
    """Exit with a clear message when another engine holds the database."""
    from conveyor.backends.local.store import Store

    store = Store(db_path).open()
    try:
        holder = store.lock_holder()
    finally:
        store.close()
    if holder is not None:
        fail(f"the database {db_path} is in use by another engine (pid {holder})")


def _loader(directory: Path) -> Hook:
    async def load(service: Service) -> None:
        from conveyor.api.catalog import Catalog, load_directory
        from conveyor.api.deps import LOCAL_OWNER

        loaded, problems = load_directory(
            Catalog(service.store), service.registry, directory, LOCAL_OWNER
        )
        for problem in problems:
            warning(f"skipped {problem}")
        note(f"{len(loaded)} pipeline(s) from {directory} in the catalog")

    return load


async def _hint_without_keys(service: Service) -> None:
    from conveyor.api.keys import list_keys

    if not any(key.active for key in list_keys(service.store)):
        note("no API keys yet: make one with `conveyor keys create --owner NAME --scope admin`")
