"""Every page route of the web app refuses a request without a session (401, VERITY-4601),
before it reads anything: walked from the app's own routes, so a new page is covered."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

pytestmark = pytest.mark.slow
OPEN = {"/app/launch", "/app/callback"}  # the way in: they start or finish a session


async def test_every_page_route_refuses_without_a_session(web_app):
    web_app.cookies.clear()
    walked = 0
    for ctx in iter_route_contexts(web_app.app.routes):  # included routers stay nested
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not (ctx.path or "").startswith("/app"):
            continue
        if ctx.path in OPEN:
            continue
        # any value fits the path's parameters: the session is checked first
        path = re.sub(r"\{verification_id\}", str(uuid.uuid4()), str(ctx.path))
        path = re.sub(r"\{[^}]+\}", "1", path)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            r = await web_app.request(method, path)
            assert r.status_code == 401, (method, ctx.path, r.status_code, r.text[:200])
            assert "VERITY-4601" in r.text, (method, ctx.path)
            walked += 1
    assert walked >= 15  # start, medication, imaging and audit pages, their forms and images
