"""RFC 9728 protected resource metadata: what a caller needs to get a token for Verity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.auth.scopes import VERITY_SCOPES
from service.auth.tokens import TokenValidator
from service.errors import AuthNotConfigured

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/oauth-protected-resource")
async def protected_resource_metadata(request: Request) -> dict[str, Any]:
    """Issuer, audience and the SMART-style scopes Verity's API understands (no auth)."""
    auth = request.app.state.settings.auth
    # The validator knows the issuer in force (the configured one, or the development issuer).
    validator: TokenValidator = request.app.state.token_validator
    if validator.enabled and not validator.configured:
        raise AuthNotConfigured("set VERITY_AUTH__ISSUER and VERITY_AUTH__AUDIENCE")
    return {
        "resource": validator.audience or str(request.base_url).rstrip("/"),
        "authorization_servers": [validator.issuer] if validator.issuer else [],
        "scopes_supported": list(VERITY_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": list(auth.algorithms),
        "resource_name": "Verity verification service",
        "x_scope_descriptions": VERITY_SCOPES,
    }
