"""The one place where errors become RFC 9457 application/problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import (
    ClientError,
    InternalError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestInvalid,
    RouteNotFound,
    VerityError,
)
from service.logs import request_id_var
from service.metrics import PROBLEMS

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_HEADER_EXTRAS = {"www_authenticate": "WWW-Authenticate", "retry_after": "Retry-After"}


class ValidationIssue(BaseModel):
    """One field that failed validation (VERITY-4000); the input itself is never echoed."""

    loc: list[str | int] = Field(description="where: body/query/path/header/form, then names")
    msg: str
    type: str = Field(description="pydantic error type, e.g. string_too_long")


class Problem(BaseModel):
    """The body of every error response: RFC 9457 members plus Verity's `code` and `retryable`.

    Some codes add members: `errors` (4000), `required_scopes` (4030), `limit_bytes` (4102),
    `width`/`height` (4102, 4106), `model` (5031), `upstream_status` (43xx, 502x).
    """

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="`/errors#CODE`: the code's entry in the error catalog")
    title: str = Field(description="short summary, the same for every problem with this code")
    status: int = Field(ge=400, le=599, description="the HTTP status code")
    detail: str = Field(description="what went wrong with this request")
    code: str = Field(pattern=r"^VERITY-[45][0-9]{3}$", description="stable error code")
    retryable: bool = Field(description="whether sending the same request later may succeed")
    instance: str | None = Field(None, description="the request path")
    request_id: str | None = Field(None, description="also in the X-Request-Id header and logs")
    errors: list[ValidationIssue] | None = Field(None, description="VERITY-4000: each failure")
    required_scopes: list[str] | None = Field(None, description="VERITY-4030: scopes missing")


def problem_body(exc: VerityError, instance: str | None = None) -> dict[str, Any]:
    """The JSON body for an error: RFC 9457 members plus Verity's code and retryable."""
    body: dict[str, Any] = {
        "type": f"/errors#{exc.code}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
        "retryable": exc.retryable,
    }
    if instance:
        body["instance"] = instance
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update({k: v for k, v in exc.extra.items() if k not in _HEADER_EXTRAS})
    return body


def problem_response(exc: VerityError, request: Request | None = None) -> JSONResponse:
    PROBLEMS.labels(exc.code).inc()
    headers = {
        header: str(exc.extra[key]) for key, header in _HEADER_EXTRAS.items() if key in exc.extra
    }
    return JSONResponse(
        problem_body(exc, request.url.path if request else None),
        status_code=exc.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _respond(request: Request, exc: VerityError) -> Response:
    """problem+json, or the web app's error page for its own pages (app.state.error_page)."""
    page = getattr(request.app.state, "error_page", None)
    if page is not None and request.url.path.startswith("/app"):
        PROBLEMS.labels(exc.code).inc()
        response: Response = page(request, exc)
        return response
    return problem_response(exc, request)


async def _verity_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VerityError)
    if not isinstance(exc, ClientError):
        log.warning("request failed", extra={"code": exc.code, "error": exc.detail})
    return _respond(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _respond(request, RequestInvalid("request failed validation", errors=errors))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    mapped: VerityError
    if exc.status_code == 404:
        mapped = RouteNotFound(f"no endpoint at {request.url.path}")
    elif exc.status_code == 405:
        mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 413:
        mapped = PayloadTooLarge(str(exc.detail))
    elif exc.status_code < 500:
        mapped = RequestInvalid(str(exc.detail))
    else:
        mapped = InternalError()
    return _respond(request, mapped)


def install(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions are caught in api/middleware.py."""
    app.add_exception_handler(VerityError, _verity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
