"""Readiness of the whole service, computed once for every front door (REST /health/ready, the
gRPC health service): database reachable, migrations current, models loaded, tokens checkable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.auth.tokens import TokenValidator
from service.store.database import Database

ModelStatus = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]]


async def readiness(
    db: Database, model_status: ModelStatus | None, validator: TokenValidator | None
) -> Readiness:
    """Every check with its reason; ready only when all of them are."""
    health = await db.health()
    models: list[dict[str, Any]] = model_status() if model_status else []
    checks = {
        "database": {
            "ready": health.reachable,
            **({"error": health.error} if health.error else {}),
        },
        "migrations": {
            "ready": health.reachable and not health.pending_migrations,
            "pending": health.pending_migrations,
            "changed_since_applied": health.changed_migrations,
        },
        "models": {"ready": all(m["loaded"] for m in models), "models": models},
        "auth": await _auth(validator),
    }
    return Readiness(all(c["ready"] for c in checks.values()), checks)


async def _auth(validator: TokenValidator | None) -> dict[str, Any]:
    """Whether bearer tokens can be checked: every /v1 call (and every RPC) depends on it."""
    if validator is None:
        return {"ready": False, "error": "no token validator"}
    return await validator.readiness()
