"""Liveness, readiness and metrics."""

from __future__ import annotations

import httpx


async def test_health_needs_no_key(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_engine_runs(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"engine": True, "database": True}}


async def test_unknown_route_has_the_error_body(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
