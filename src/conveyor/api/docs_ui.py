"""`/docs`: Swagger UI over the OpenAPI description, its files served by the service itself.

FastAPI's own `/docs` page loads Swagger UI from a CDN, so it is blank wherever that cannot
be reached (offline, or behind a firewall that lets only the service through). Here the
page and its assets come from the `fastapi-swagger` package's copy of the Swagger UI
distribution (version 5: it reads OpenAPI 3.1, which FastAPI writes), under `/docs/assets/`.
ReDoc, which FastAPI would also load from a CDN, is not served.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
"""The files the page loads, all from `ASSETS_URL`."""


def assets_directory() -> Path:
    """Where the installed Swagger UI files are."""
    return Path(str(resources.files("fastapi_swagger").joinpath("resources")))


def install_docs_ui(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` with its assets from the package (no outside address)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_directory()), name="docs-assets")

    async def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            # Swagger UI would otherwise send the description to an outside validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route(DOCS_URL, docs_page, methods=["GET"], include_in_schema=False)
