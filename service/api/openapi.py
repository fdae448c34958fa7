"""OpenAPI a client generator can use, and docs pages that work on an offline network.

- Security: one `http` bearer (JWT) scheme; each guarded operation requires it with the scopes
  its route guard declares (read from the `required_scopes` attribute that `require_scopes`
  puts on its dependency, so the document cannot drift from the guards). Not an `oauth2`
  clientCredentials scheme: that needs the token URL, which belongs to each hospital's
  authorization server and is discovered at run time from
  `/.well-known/oauth-protected-resource`; OpenAPI 3.1 allows roles (here: scopes) in the
  requirement of any scheme, and the scheme's description lists them.
- Errors: every 4xx/5xx an operation can return is `application/problem+json` with the
  `Problem` schema, each status listing its VERITY codes; FastAPI's `HTTPValidationError` 422
  is gone.
- `/docs` (Swagger UI) and `/redoc` load their scripts from `/docs/assets`, served from the
  files that the `fastapi-offline` package bundles, never from a CDN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.params import File
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from service import deps
from service.api.problems import PROBLEM_MEDIA_TYPE, Problem
from service.auth.scopes import VERITY_SCOPES
from service.errors import (
    AuthNotConfigured,
    DatabaseUnavailable,
    DicomInvalid,
    DicomTooLarge,
    FhirAuthFailed,
    FhirForbidden,
    FhirNotConfigured,
    FhirReferenceInvalid,
    FhirRejected,
    FhirResourceGone,
    FhirResourceNotFound,
    FhirUnavailable,
    IdempotencyConflict,
    ImageCorrupt,
    ImageEmpty,
    ImageTooLarge,
    ImageTooSmall,
    InsufficientScope,
    ModelNotLoaded,
    NoPillFound,
    OrderUnsupported,
    PayloadTooLarge,
    ProductExists,
    RequestInvalid,
    TooManyPills,
    Unauthenticated,
    UnknownImagingReference,
    UnknownProduct,
    UnknownVerification,
    UnsupportedMediaType,
    VerityError,
)

SCHEME = "bearer"
DOCS_ASSETS = "/docs/assets"

Errors = tuple[type[VerityError], ...]
_GUARD: Errors = (Unauthenticated, InsufficientScope, AuthNotConfigured)
_UPLOAD: Errors = (
    ImageEmpty, UnsupportedMediaType, ImageTooLarge, ImageCorrupt, ImageTooSmall, NoPillFound,
    TooManyPills,
)  # fmt: skip
# The service's own dependencies (service/deps.py) and what each can raise.
_DEPENDENCY_ERRORS: dict[Any, Errors] = {
    deps._conn: (DatabaseUnavailable,),
    deps._pills: (ModelNotLoaded,),
}
# What a handler raises itself, beyond what its guard, dependencies, parameters and body imply.
ROUTE_ERRORS: dict[str, Errors] = {
    "protected_resource_metadata": (AuthNotConfigured,),
    "create_product": (ProductExists,),
    "get_product": (UnknownProduct,),
    "replace_product": (UnknownProduct,),
    "delete_product": (UnknownProduct,),
    "add_image": (UnknownProduct,),
    "delete_image": (UnknownProduct,),
    "get_verification": (UnknownVerification,),
    "get_imaging_verification": (UnknownVerification,),
    "enrol_imaging_references": (DicomInvalid, DicomTooLarge, ModelNotLoaded, DatabaseUnavailable),
    "list_imaging_references": (DatabaseUnavailable,),
    "remove_imaging_reference": (UnknownImagingReference, DatabaseUnavailable),
    "create_imaging_verification": (
        IdempotencyConflict,
        FhirReferenceInvalid,
        FhirNotConfigured,
        DatabaseUnavailable,
    ),  # fmt: skip
    "create_verification": (
        IdempotencyConflict,
        FhirReferenceInvalid,
        FhirResourceNotFound,
        FhirResourceGone,
        FhirForbidden,
        OrderUnsupported,
        FhirUnavailable,
        FhirAuthFailed,
        FhirRejected,
        FhirNotConfigured,
        DatabaseUnavailable,
    ),  # fmt: skip
}


def _dependants(root: Dependant) -> Iterable[Dependant]:
    stack = [root]
    while stack:
        dependant = stack.pop()
        yield dependant
        stack.extend(dependant.dependencies)


def api_routes(routes: Sequence[BaseRoute]) -> list[RouteContext]:
    """Every API route as served (FastAPI keeps included routers as nested contexts)."""
    return [c for c in iter_route_contexts(routes) if isinstance(c.original_route, APIRoute)]


def route_scopes(route: RouteContext) -> tuple[str, ...]:
    """The scope specs of every guard on the route (the shared `required_scopes` contract)."""
    specs: list[str] = []
    for dependant in _dependants(route.dependant):
        specs.extend(getattr(dependant.call, "required_scopes", ()))
    return tuple(dict.fromkeys(specs))


def documented_scope(spec: str) -> str:
    """A guard's spec as a client requests it: `Library.rs` (any context) -> `system/Library.rs`."""
    return spec if "/" in spec else f"system/{spec}"


def route_errors(route: RouteContext) -> Errors:
    """Every error the operation can answer with, derived from its shape plus ROUTE_ERRORS."""
    dependant = route.dependant
    found: list[type[VerityError]] = []
    if route_scopes(route):
        found.extend(_GUARD)
    for sub in _dependants(dependant):
        found.extend(_DEPENDENCY_ERRORS.get(sub.call, ()))
    has_params = any(
        d.path_params or d.query_params or d.header_params or d.body_params
        for d in _dependants(dependant)
    )
    if has_params:
        found.append(RequestInvalid)
    if route.body_field is not None:
        found.append(PayloadTooLarge)
        if any(isinstance(f.field_info, File) for f in dependant.body_params):
            found.extend(_UPLOAD)
    found.extend(ROUTE_ERRORS.get(route.name or "", ()))
    return tuple(dict.fromkeys(found))


def _problem_response(errors: Sequence[type[VerityError]]) -> dict[str, Any]:
    codes = "; ".join(f"{e.code} {e.title}" for e in errors)
    response: dict[str, Any] = {
        "description": codes,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if any(e.status == 401 or e is InsufficientScope for e in errors):
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "Bearer challenge with the resource metadata URL",
                "schema": {"type": "string"},
            }
        }
    return response


def _security_scheme() -> dict[str, Any]:
    scopes = "\n".join(f"- `{name}`: {what}" for name, what in VERITY_SCOPES.items())
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from the hospital's authorization server (issuer and "
        "audience: `/.well-known/oauth-protected-resource`), SMART v2 or v1 scopes; each "
        f"operation lists the scopes it needs.\n\n{scopes}",
    }


def describe(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add security and problem responses to a generated OpenAPI document, in place."""
    components = schema.setdefault("components", {})
    _, defs = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    components.setdefault("schemas", {}).update(defs["$defs"])
    components.setdefault("securitySchemes", {})[SCHEME] = _security_scheme()
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        scopes = [documented_scope(s) for s in route_scopes(route)]
        by_status: dict[int, list[type[VerityError]]] = {}
        for error in route_errors(route):
            by_status.setdefault(error.status, []).append(error)
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            if scopes:
                operation["security"] = [{SCHEME: scopes}]
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's HTTPValidationError shape
            for status, errors in sorted(by_status.items()):
                responses[str(status)] = _problem_response(errors)
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)


def _static_dir() -> str:
    return str(files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Generate the described OpenAPI once, and serve the docs pages from bundled assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary,
                description=app.description, routes=app.routes,
            )  # fmt: skip
            describe(schema, app.routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(DOCS_ASSETS, StaticFiles(directory=_static_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            # the online validator badge would call out of the hospital network
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
