import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from pydantic import BaseModel

from service.errors import ImageCorrupt, catalog
from service.main import create_app


class Body(BaseModel):
    count: int


probe = APIRouter()


@probe.post("/probe/body")
async def takes_body(body: Body) -> dict[str, int]:
    return {"count": body.count}


@probe.get("/probe/crash")
async def crashes() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@probe.get("/probe/verity-error")
async def verity_error() -> None:
    raise ImageCorrupt("JPEG ends early")


@pytest.fixture
async def client(settings):
    app = create_app(settings)
    app.include_router(probe)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://verity.test",
        ) as c,
    ):
        yield c


def _problem(resp, status, code, retryable):
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code
    assert body["retryable"] is retryable
    assert body["status"] == status
    assert body["type"] == f"/errors#{code}"
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


async def test_unknown_route(client):
    _problem(await client.get("/nope"), 404, "VERITY-4040", False)


async def test_wrong_method(client):
    _problem(await client.delete("/health/live"), 405, "VERITY-4050", False)


async def test_bad_body(client):
    body = _problem(
        await client.post("/probe/body", json={"count": "many"}), 422, "VERITY-4000", False
    )
    assert body["errors"][0]["loc"] == ["body", "count"]


async def test_internal_error_hides_internals(client):
    body = _problem(await client.get("/probe/crash"), 500, "VERITY-5000", True)
    assert "hunter2" not in str(body) and "RuntimeError" not in str(body)


async def test_domain_error(client):
    body = _problem(await client.get("/probe/verity-error"), 422, "VERITY-4103", False)
    assert body["detail"] == "JPEG ends early"


async def test_body_over_limit_refused_before_reading(client, settings):
    big = b"x" * (settings.server.max_request_bytes + 1)
    _problem(await client.post("/probe/body", content=big), 413, "VERITY-4130", False)


async def test_request_id_echoed_when_safe(client):
    resp = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    resp = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith tab"})
    assert resp.headers["x-request-id"] != "bad id\twith tab"


def test_catalog_codes_follow_the_convention_and_docs_list_them():
    from tests.conftest import REPO_ROOT

    docs = (REPO_ROOT / "docs" / "errors.md").read_text()
    for entry in catalog():
        assert entry.code.startswith("VERITY-4") == (entry.status < 500), entry
        assert not (entry.code.startswith("VERITY-4") and entry.retryable), entry
        assert entry.code in docs, f"{entry.code} missing from docs/errors.md"
