"""Liveness, readiness, metrics and the error catalog: open endpoints, no auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import catalog
from service.workflows.readiness import readiness

router = APIRouter(tags=["operations"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Database reachable, migrations current, models loaded, tokens can be checked",
    responses={503: {"description": "Some part is not ready; the body says which"}},
)
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    found = await readiness(state.db, state.model_status, getattr(state, "token_validator", None))
    return JSONResponse(
        {"status": "ready" if found.ready else "not_ready", "checks": found.checks},
        status_code=200 if found.ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/errors", summary="Catalog of every problem code Verity returns")
async def errors() -> list[dict[str, Any]]:
    return [e.__dict__ for e in catalog()]
