"""The FastAPI app over a `Service`.

The routes live in `conveyor.api.routes.<name>` modules, each exposing `router`, and are
included in the order of `ROUTERS`; a module that is not there (yet) is skipped, so a part of
the service is added by creating its module and naming it here.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from conveyor.api.deps import __doc__ as _auth_doc
from conveyor.api.deps import reject_unknown_query
from conveyor.api.docs_ui import install_docs_ui
from conveyor.api.errors import install_error_handlers
from conveyor.api.events_fastpath import EventsFastPath
from conveyor.api.json_input import JsonBodyCheck
from conveyor.api.limits import BodySizeLimit
from conveyor.api.media import YamlPipelines
from conveyor.api.openapi import install_openapi
from conveyor.api.service import Service

ROUTERS = (
    "health",
    "actions",
    "pipelines",
    "runs",
    "logs",
    "events",
    "stream",
    "human",
    "deliveries",
)
"""The route modules, in the order their routes are matched and documented."""

_DESCRIPTION = """Conveyor's HTTP service: the action catalog, a pipeline catalog, runs, events.

Every error answer has one body: `{"error": {"type", "message", "fields": [{"path", "message"}]}}`.

Bodies are JSON (`Content-Type: application/json`). The pipeline routes (`POST /pipelines`,
`PUT /pipelines/{id}`, `POST /pipelines/validate`) also take the pipeline as YAML text
(`Content-Type: application/yaml` or `text/yaml`).
"""


def create_app(service: Service, *, fast_events: bool = True) -> FastAPI:
    """The app serving `service`; it starts and stops the service with its lifespan.

    Args:
        service: What it serves.
        fast_events: Answer `POST /events` in front of the router (`EventsFastPath`);
            False leaves it to its FastAPI route, which answers the same, more slowly.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    from conveyor import __version__

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description=_DESCRIPTION + "\n## Auth\n" + _auth_section(),
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        # Served by install_docs_ui from the package; FastAPI's pages load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    if fast_events:
        # Added before the body limit, so it runs inside it: the limit holds here too.
        app.add_middleware(EventsFastPath, service=service)
    # Inside the body limit too, and after the events fast path: events check their own.
    app.add_middleware(JsonBodyCheck)
    # Inside the body limit too: it reads the whole (bounded) body to rewrite it.
    app.add_middleware(YamlPipelines)
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_body_bytes)
    for router in _routers():
        app.include_router(router)
    install_openapi(app)
    install_docs_ui(app)
    return app


def _routers() -> list[APIRouter]:
    found = []
    for name in ROUTERS:
        module_name = f"{__package__}.routes.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # Not written yet; a broken module still fails loudly.
            raise
        found.append(module.router)
    return found


def _auth_section() -> str:
    # The deps module's docstring is the one description of auth; skip its summary line.
    text = _auth_doc or ""
    return text.split("\n\n", 1)[-1]
