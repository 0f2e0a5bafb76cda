"""`/docs` works offline: the page names only the service's own addresses, and they load."""

from __future__ import annotations

import re

import httpx


def _addresses(html: str) -> list[str]:
    quoted = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    in_script = re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", html)
    return quoted + in_script


async def test_docs_loads_swagger_ui_from_the_service_only(anon: httpx.AsyncClient) -> None:
    page = await anon.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert '"validatorUrl": null' in html  # no outside validator either
    addresses = _addresses(html)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(addresses)
    assert "/openapi.json" in addresses
    for address in addresses:
        assert address.startswith("/") and not address.startswith("//"), address
        loaded = await anon.get(address)
        assert loaded.status_code == 200, address
        assert len(loaded.content) > 100, address
    bundle = await anon.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text
    assert (await anon.get("/openapi.json")).json()["openapi"].startswith("3.1")


async def test_no_page_loads_from_a_cdn(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/redoc")).status_code == 404
    assert (await anon.get("/docs/assets/nothing.js")).status_code == 404
