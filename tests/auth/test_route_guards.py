"""Every /v1 route the app serves, found by walking app.routes (no list kept by hand), is guarded
one way and refuses a caller before reading the body; the operational routes stay open.

Real tokens from the real authorization server; requests go through the real app with a body
streamed message by message, so the test sees how many body bytes the app pulled.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import fastapi.routing
from fastapi import APIRouter, Depends, FastAPI, File, UploadFile
from fastapi.routing import APIRoute

from service.api import problems
from service.auth.deps import CanManageLibrary, GuardedRoute, require_scopes, scope_guards
from service.auth.scopes import requirement, scope_allows
from tests.api.asgi import UPLOAD_HEADERS, call, multipart_upload
from tests.servers.servers import API_SCOPES

UPLOAD = 4 * 1024 * 1024  # offered to every route; a guard must refuse before pulling any of it


def served_routes(app: Any) -> list[Any]:
    """What the app serves, included routers flattened (FastAPI 0.16x keeps them nested)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten else list(app.routes)


def v1_operations(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, route) for every operation under /v1."""
    found = []
    for route in served_routes(app):
        path = str(getattr(route, "path", ""))
        if path == "/v1" or path.startswith("/v1/"):
            for method in sorted(getattr(route, "methods", None) or {"*"}):
                found.append((method, path, route))
    return found


def dummy_path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def grants_any(scope: str, specs: list[str]) -> bool:
    """Does this one scope grant any interaction that any of the specs requires?"""
    for spec in specs:
        contexts, resource, perms = requirement(spec)
        if any(scope_allows([scope], resource, p, contexts) for p in perms):
            return True
    return False


class Tokens:
    """Real tokens from the test authorization server, minted once per scope set."""

    def __init__(self, auth_server: Any) -> None:
        self.auth_server = auth_server
        self.cache: dict[str, str] = {}

    def lacking(self, specs: list[str]) -> str:
        """A valid token with every API scope that grants nothing the specs require."""
        keep = " ".join(s for s in API_SCOPES.split() if not grants_any(s, specs))
        assert keep, f"no API scope lacks {specs}"
        if keep not in self.cache:
            token = self.auth_server.mint_token(
                "api-caller", scope=keep, resource=self.auth_server.api_audience
            )
            assert token["scope"] == keep  # the server drops a scope it does not allow
            self.cache[keep] = token["access_token"]
        return self.cache[keep]


def _refused(answer: Any, status: int, code: str) -> str | None:
    """Why the answer is not the expected refusal, or None."""
    if answer.status != status:
        return f"answered {answer.status}, not {status}"
    if answer.headers.get("content-type") != "application/problem+json":
        return "not problem+json"
    if answer.json().get("code") != code:
        return f"code {answer.json().get('code')}, not {code}"
    if answer.pulled:
        return f"read {answer.pulled} body bytes before refusing"
    return None


async def route_failures(
    app: Any, method: str, template: str, route: Any, tokens: Tokens, api_token: str
) -> list[str]:
    """What is wrong with how this /v1 operation is guarded (nothing, for a good route)."""
    where = f"{method} {template}"
    if not isinstance(getattr(route, "original_route", route), APIRoute):
        return [f"{where}: not an APIRoute, so it cannot carry a scope guard"]
    specs = [s for guard in scope_guards(route.dependant) for s in guard.required_scopes]
    if not specs:
        return [f"{where}: (a) no scope guard (take an alias from service.auth.deps)"]
    failures = []
    if any(hasattr(d.dependency, "required_scopes") for d in route.dependencies):
        failures.append(f"{where}: guarded by dependencies=[...], not by its alias parameter")
    path = dummy_path(template)
    upload = multipart_upload("file", b"", UPLOAD)
    if why := _refused(await call(app, method, path, UPLOAD_HEADERS, upload), 401, "VERITY-4010"):
        failures.append(f"{where}: (b) without a token {why}")
    headers = {**UPLOAD_HEADERS, "authorization": f"Bearer {tokens.lacking(specs)}"}
    upload = multipart_upload("file", b"", UPLOAD)
    if why := _refused(await call(app, method, path, headers, upload), 403, "VERITY-4030"):
        failures.append(f"{where}: (c) with a token lacking {specs} {why}")
    # the 403 is the missing scope's doing: a token with every API scope gets past the guard
    allowed = await call(app, method, path, {"authorization": f"Bearer {api_token}"})
    if allowed.status in (401, 403):
        failures.append(f"{where}: refused a token with every API scope ({allowed.status})")
    return failures


async def test_every_v1_route_is_guarded_and_refuses_before_reading(api, auth_server, api_token):
    operations = v1_operations(api.app)
    # the walk sees included routers: the enrolment route (once unguarded) is among them
    assert ("POST", "/v1/library/products/{product_id}/images") in {
        (m, p) for m, p, _ in operations
    }
    tokens = Tokens(auth_server)
    failures = [
        failure
        for method, template, route in operations
        for failure in await route_failures(api.app, method, template, route, tokens, api_token)
    ]
    assert not failures, "\n".join(failures)


async def test_the_walk_catches_badly_guarded_routes(api, auth_server, api_token) -> None:
    """A new route with no guard, a `dependencies=` guard, or a router without GuardedRoute."""
    app = FastAPI()
    problems.install(app)
    app.state.token_validator = api.app.state.token_validator
    guarded = APIRouter(prefix="/v1", route_class=GuardedRoute)
    plain = APIRouter(prefix="/v1")

    @guarded.post("/open")
    async def open_upload(file: Annotated[UploadFile, File()]) -> None:
        return None

    @guarded.post("/listed", dependencies=[Depends(require_scopes("Library.cud"))])
    async def listed_upload(file: Annotated[UploadFile, File()]) -> None:
        return None

    @plain.post("/plain")
    async def plain_upload(caller: CanManageLibrary, file: Annotated[UploadFile, File()]) -> None:
        return None

    @guarded.post("/good")
    async def good_upload(caller: CanManageLibrary, file: Annotated[UploadFile, File()]) -> None:
        return None

    app.include_router(guarded)
    app.include_router(plain)
    tokens = Tokens(auth_server)
    found = {
        template: await route_failures(app, method, template, route, tokens, api_token)
        for method, template, route in v1_operations(app)
    }
    assert found["/v1/good"] == []
    assert [f.split(": ")[1][:3] for f in found["/v1/open"]] == ["(a)"]
    assert "dependencies=[...]" in found["/v1/listed"][0]
    assert [f.split(": ")[1][:3] for f in found["/v1/plain"]] == ["(b)", "(c)"]
    assert all("body bytes before refusing" in f for f in found["/v1/plain"])


async def test_operational_routes_stay_open(api):
    """/health, /metrics, /docs, /openapi.json, /errors and /.well-known/* need no token."""
    seen = set()
    for route in served_routes(api.app):
        path = str(getattr(route, "path", ""))
        if (
            path.startswith("/v1")
            or "{" in path
            or "GET" not in (getattr(route, "methods", None) or ())
        ):
            continue
        answer = await call(api.app, "GET", path)
        assert answer.status not in (401, 403), f"{path}: {answer.status}"
        seen.add(path)
    assert {"/health/live", "/metrics", "/docs", "/openapi.json", "/errors"} <= seen
    assert "/.well-known/oauth-protected-resource" in seen


async def test_a_guarded_request_validates_its_token_once(api, monkeypatch):
    """GuardedRoute checks the token before the body; the dependency reuses that principal."""
    validator = api.app.state.token_validator
    real, calls = validator.validate, []

    async def counting(token: str) -> Any:
        calls.append(token)
        return await real(token)

    monkeypatch.setattr(validator, "validate", counting)
    assert (await api.get("/v1/library/products", params={"limit": 1})).status_code == 200
    assert len(calls) == 1
