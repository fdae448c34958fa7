"""The OpenAPI document a client generator reads, and the docs pages on an offline network."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

from service.api.openapi import api_routes, documented_scope, route_scopes
from service.api.problems import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


async def _document(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = await api.get("/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


async def test_bearer_security_scheme(api):
    schemes = (await _document(api))["components"]["securitySchemes"]
    assert schemes == {"bearer": schemes["bearer"]}
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert "system/Library.cud" in schemes["bearer"]["description"]


async def test_every_v1_operation_requires_its_guards_scopes(api):
    doc = await _document(api)
    routes = [r for r in api_routes(api.app.routes) if r.path_format.startswith("/v1/")]
    assert len(routes) >= 13  # walked from the app, not listed here
    for route in routes:
        scopes = route_scopes(route)
        assert scopes, f"{route.path_format} has no scope guard"
        for method in route.methods:
            operation = doc["paths"][route.path_format][method.lower()]
            expected = [documented_scope(s) for s in scopes]
            assert operation["security"] == [{"bearer": expected}], route.path_format
            assert all(s.startswith("system/") for s in expected)


async def test_error_responses_are_problems_not_fastapi_validation_errors(api):
    doc = await _document(api)
    assert "HTTPValidationError" not in json.dumps(doc)
    assert set(Problem.model_fields) <= set(doc["components"]["schemas"]["Problem"]["properties"])
    for path, operations in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"401", "403", "422", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"] == {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
                    assert re.match(r"^VERITY-\d{4} ", response["description"])
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
            if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
                assert "415" in responses, (method, path)
    assert "409" in doc["paths"]["/v1/library/products"]["post"]["responses"]


async def test_real_problems_match_the_documented_schema(api):
    anonymous = await api.get("/v1/library/products", headers={"Authorization": ""})
    invalid = await api.get("/v1/library/products", params={"limit": 0})
    missing = await api.get("/v1/library/products/no-such-product")
    for resp, status in ((anonymous, 401), (invalid, 422), (missing, 404)):
        assert resp.status_code == status
        assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
        Problem.model_validate(resp.json())
    assert invalid.json()["errors"][0]["loc"] == ["query", "limit"]


def _referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", html)


async def test_docs_pages_load_only_same_origin_assets(api):
    for page in ("/docs", "/redoc"):
        resp = await api.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        html = resp.text
        assert "http:" not in html and "https:" not in html  # no CDN, no font service
        urls = _referenced_urls(html)
        assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls, urls
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            assert urlsplit(urljoin(f"http://verity.test{page}", url)).netloc == "verity.test"
            asset = await api.get(url)
            assert asset.status_code == 200 and asset.content, url
    assert '"validatorUrl": null' in (await api.get("/docs")).text
