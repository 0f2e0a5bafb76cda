"""Liveness, readiness and metrics: the routes an orchestrator and Prometheus call, no key."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from conveyor.api.deps import ServiceDep
from conveyor.api.errors import responses
from conveyor.api.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the service can take requests, and each check's result."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


@router.get("/health", response_model=Health, summary="Liveness", responses=responses(422))
async def health() -> Health:
    """Answers while the process runs; checks nothing else."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A check failed."}, **responses(422)},
)
async def ready(service: ServiceDep) -> Response:
    """Ready when the engine has started and the database answers a query."""
    checks = {"engine": service.started, "database": _database_answers(service)}
    ok = all(checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}},
        **responses(422),
    },
)
async def metrics(service: ServiceDep) -> Response:
    """Runs by status, step durations, events received, queue depths (Prometheus text)."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


def _database_answers(service: ServiceDep) -> bool:
    try:
        service.store.db.execute("SELECT 1").fetchone()
    except Exception:  # noqa: BLE001 - any failure here means "not ready", which is the answer
        return False
    return True
