"""RFC 9728 protected resource metadata: what a caller needs to get a token for Verity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.auth.scopes import VERITY_SCOPES
from service.errors import AuthNotConfigured

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/oauth-protected-resource")
async def protected_resource_metadata(request: Request) -> dict[str, Any]:
    """Issuer, audience and the SMART-style scopes Verity's API understands (no auth)."""
    auth = request.app.state.settings.auth
    if auth.enabled and not (auth.issuer and auth.audience):
        raise AuthNotConfigured("set VERITY_AUTH__ISSUER and VERITY_AUTH__AUDIENCE")
    return {
        "resource": auth.audience or str(request.base_url).rstrip("/"),
        "authorization_servers": [auth.issuer] if auth.issuer else [],
        "scopes_supported": list(VERITY_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": list(auth.algorithms),
        "resource_name": "Verity verification service",
        "x_scope_descriptions": VERITY_SCOPES,
    }
