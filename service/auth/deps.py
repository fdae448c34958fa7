"""FastAPI dependencies: `require_scopes(...)` turns a bearer token into a Principal or an error.

401 (Unauthenticated, with WWW-Authenticate) for a missing or invalid token, 403
(InsufficientScope) for a valid token without the scope the endpoint declares. The validator is
the app's single TokenValidator on `app.state.token_validator`.

One way to guard a route: take an alias below (`CanVerify`, `CanManageLibrary`, ...) as a
parameter, on a router whose `route_class` is `GuardedRoute`. FastAPI reads and parses a body
before it solves dependencies, so `GuardedRoute` runs the route's guards first: a caller without
a valid token or scope is refused before one byte of an upload is read. The dependency then
reuses the principal that the guard stored on `request.state` instead of validating twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.auth.scopes import missing_scopes, requirement
from service.auth.tokens import ANONYMOUS, Principal, TokenValidator, bearer_from_header
from service.errors import AuthNotConfigured, InsufficientScope, Unauthenticated


def _challenge(request: Request, extra: str = "") -> str:
    metadata = str(request.base_url).rstrip("/") + "/.well-known/oauth-protected-resource"
    return f'Bearer realm="verity", resource_metadata="{metadata}"' + (
        f", {extra}" if extra else ""
    )


def bearer_token(request: Request) -> str:
    """The token from `Authorization: Bearer ...` (the only bearer method Verity supports)."""
    token = bearer_from_header(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthenticated("bearer token required", www_authenticate=_challenge(request))
    return token


def require_scopes(*required: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: each spec (`Verification.c`, `system/Outbox.u`) must be granted."""
    for spec in required:
        requirement(spec)  # a malformed requirement fails when the route is declared

    async def dependency(request: Request) -> Principal:
        validator: TokenValidator | None = getattr(request.app.state, "token_validator", None)
        if validator is None:
            raise AuthNotConfigured("no token validator on this app")
        if not validator.enabled:
            return ANONYMOUS
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):  # not yet validated in this request
            principal = await _authenticate(request, validator)
            request.state.principal = principal
        missing = missing_scopes(principal.scopes, required)
        if missing:
            raise InsufficientScope(
                f"token lacks scope: {' '.join(missing)}",
                www_authenticate=_challenge(
                    request, f'error="insufficient_scope", scope="{" ".join(missing)}"'
                ),
                required_scopes=missing,
            )
        return principal

    dependency.required_scopes = tuple(required)  # type: ignore[attr-defined]
    return dependency


async def _authenticate(request: Request, validator: TokenValidator) -> Principal:
    """Validate the request's bearer token; a refusal carries the RFC 6750 challenge."""
    token = bearer_token(request)
    try:
        return await validator.validate(token)
    except Unauthenticated as exc:
        error = exc.extra.get("www_authenticate", 'Bearer error="invalid_token"')
        exc.extra["www_authenticate"] = _challenge(request, error.removeprefix("Bearer "))
        raise


ScopeGuard = Callable[[Request], Awaitable[Principal]]


def scope_guards(dependant: Dependant) -> list[ScopeGuard]:
    """Every `require_scopes` dependency in a dependency tree (the `required_scopes` marker)."""
    found: list[ScopeGuard] = []
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and hasattr(call, "required_scopes") and call not in found:
            found.append(call)
        found.extend(g for g in scope_guards(sub) if g not in found)
    return found


class GuardedRoute(APIRoute):
    """A route that checks its scope guards before FastAPI reads or parses the request body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = scope_guards(self.dependant)
        if not guards:
            return handler

        async def guarded(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            return await handler(request)

        return guarded


# Annotated aliases for Verity's own scopes (service/auth/scopes.py VERITY_SCOPES).
CanVerify = Annotated[Principal, Depends(require_scopes("Verification.c"))]
CanReadVerifications = Annotated[Principal, Depends(require_scopes("Verification.rs"))]
CanReadLibrary = Annotated[Principal, Depends(require_scopes("Library.rs"))]
CanManageLibrary = Annotated[Principal, Depends(require_scopes("Library.cud"))]
CanReadOutbox = Annotated[Principal, Depends(require_scopes("Outbox.rs"))]
CanRetryOutbox = Annotated[Principal, Depends(require_scopes("Outbox.u"))]
