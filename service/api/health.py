"""Liveness, readiness, metrics and the error catalog: open endpoints, no auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.auth.tokens import TokenValidator
from service.errors import catalog

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
    db = await state.db.health()
    models: list[dict[str, Any]] = state.model_status() if state.model_status else []
    checks = {
        "database": {
            "ready": db.reachable,
            **({"error": db.error} if db.error else {}),
        },
        "migrations": {
            "ready": db.reachable and not db.pending_migrations,
            "pending": db.pending_migrations,
            "changed_since_applied": db.changed_migrations,
        },
        "models": {"ready": all(m["loaded"] for m in models), "models": models},
        "auth": await _auth(state),
    }
    ok = all(c["ready"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks},
        status_code=200 if ok else 503,
    )


async def _auth(state: Any) -> dict[str, Any]:
    """Whether bearer tokens can be checked: every /v1 call depends on it."""
    validator: TokenValidator | None = getattr(state, "token_validator", None)
    if validator is None:
        return {"ready": False, "error": "no token validator"}
    return await validator.readiness()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/errors", summary="Catalog of every problem code Verity returns")
async def errors() -> list[dict[str, Any]]:
    return [e.__dict__ for e in catalog()]
