"""Inbound bearer tokens through a tiny FastAPI app using require_scopes, real issuer + JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey

from service.api import problems
from service.api.discovery import router as discovery_router
from service.auth.deps import CanVerify, require_scopes
from service.auth.scopes import scope_allows
from service.auth.tokens import Principal, TokenValidator
from service.config import AuthSettings, ConfigError, Settings
from service.errors import AuthNotConfigured


def make_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.include_router(discovery_router)
    app.state.settings = Settings(environment="test", auth=settings)
    app.state.token_validator = TokenValidator(settings)

    @app.post("/v1/verify")
    async def verify(who: CanVerify) -> dict[str, Any]:
        return {"subject": who.subject, "client_id": who.client_id}

    @app.post("/v1/outbox/retry")
    async def retry(
        who: Principal = Depends(require_scopes("system/Outbox.u")),  # noqa: B008
    ) -> dict[str, Any]:
        return {"subject": who.subject}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture(scope="module")
async def api(auth_server) -> AsyncIterator[httpx.AsyncClient]:
    settings = AuthSettings(
        issuer=auth_server.issuer, audience=auth_server.api_audience, jwks_min_refresh_s=1
    )
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://verity.test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.token_validator.aclose()


def claims(auth_server, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": auth_server.issuer,
        "aud": auth_server.api_audience,
        "sub": "api-caller",
        "client_id": "api-caller",
        "iat": now,
        "exp": now + 300,
        "scope": "system/Verification.c",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def call(api: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.post("/v1/verify", headers=headers)


async def test_valid_real_token(api, auth_server) -> None:
    token = auth_server.mint_token(
        "api-caller", scope="system/Verification.c", resource=auth_server.api_audience
    )
    assert token["scope"] == "system/Verification.c"
    r = await call(api, token["access_token"])
    assert r.status_code == 200, r.text
    assert r.json() == {"subject": "api-caller", "client_id": "api-caller"}


def _assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "VERITY-4010"
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="verity"')


async def test_missing_token(api) -> None:
    r = await call(api, None)
    _assert_401(r)
    assert "error=" not in r.headers["WWW-Authenticate"]  # RFC 6750: no error without a token


@pytest.mark.parametrize(
    "case",
    ["expired", "not_yet_valid", "wrong_issuer", "wrong_audience", "issued_in_future"],
)
async def test_bad_claims(api, auth_server, case: str) -> None:
    now = int(time.time())
    over = {
        "expired": {"iat": now - 900, "exp": now - 600},
        "not_yet_valid": {"nbf": now + 600},
        "wrong_issuer": {"iss": "http://127.0.0.1:1/evil"},
        "wrong_audience": {"aud": "http://some-other-api"},
        "issued_in_future": {"iat": now + 900, "exp": now + 1200},
    }[case]
    r = await call(api, auth_server.sign(claims(auth_server, **over)))
    _assert_401(r)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


async def test_alg_none(api, auth_server) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims(auth_server))}."
    _assert_401(await call(api, token))


async def test_hs256_signed_with_public_key(api, auth_server) -> None:
    # The classic key-confusion attack, built by hand: joserfc itself refuses to do it.
    public_pem = auth_server.signing_key.as_pem(private=False)
    signing_input = (
        f"{_b64({'alg': 'HS256', 'kid': auth_server.signing_key.kid})}.{_b64(claims(auth_server))}"
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    _assert_401(await call(api, token))


async def test_tampered_signature(api, auth_server) -> None:
    token = auth_server.sign(claims(auth_server))
    head, body, sig = token.split(".")
    forged = _b64(claims(auth_server, scope="system/Verification.c system/Outbox.u"))
    _assert_401(await call(api, f"{head}.{forged}.{sig}"))
    flipped = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    _assert_401(await call(api, f"{head}.{body}.{flipped}"))


async def test_unknown_kid_refreshes_once_then_refuses(api, auth_server) -> None:
    validator: TokenValidator = api.app.state.token_validator
    rogue = RSAKey.generate_key(2048, parameters={"kid": "rogue"}, private=True)
    token = jwt.encode(
        {"alg": "RS256", "kid": "rogue"}, claims(auth_server), rogue, algorithms=["RS256"]
    )
    before = validator.jwks_fetches
    _assert_401(await call(api, token))
    _assert_401(await call(api, token))  # second refusal inside the rate limit: no refetch
    assert validator.jwks_fetches - before <= 1


async def test_missing_scope_is_403(api, auth_server) -> None:
    token = auth_server.sign(claims(auth_server, scope="system/Verification.rs"))
    r = await call(api, token)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "VERITY-4030"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


async def test_v1_scope_syntax_accepted(api, auth_server) -> None:
    token = auth_server.sign(claims(auth_server, scope="user/Verification.write"))
    assert (await call(api, token)).status_code == 200


async def test_context_specific_requirement(api, auth_server) -> None:
    """`system/Outbox.u` is not satisfied by a user/ scope; `Verification.c` is by any context."""
    user = auth_server.sign(claims(auth_server, scope="user/Outbox.u"))
    system = auth_server.sign(claims(auth_server, scope="system/Outbox.cruds"))
    assert (
        await api.post("/v1/outbox/retry", headers={"Authorization": f"Bearer {user}"})
    ).status_code == 403
    assert (
        await api.post("/v1/outbox/retry", headers={"Authorization": f"Bearer {system}"})
    ).status_code == 200


async def test_discovery_document(api, auth_server) -> None:
    r = await api.get("/.well-known/oauth-protected-resource")
    doc = r.json()
    assert doc["resource"] == auth_server.api_audience
    assert doc["authorization_servers"] == [auth_server.issuer]
    assert "system/Verification.c" in doc["scopes_supported"]
    assert doc["bearer_methods_supported"] == ["header"]


async def test_fail_closed_without_issuer() -> None:
    app = make_app(AuthSettings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
    ) as c:
        r = await c.post("/v1/verify", headers={"Authorization": "Bearer x.y.z"})
        assert r.status_code == 503 and r.json()["code"] == AuthNotConfigured.code
        assert (await c.get("/plain")).status_code == 200


def test_hmac_algorithms_refused_in_config() -> None:
    with pytest.raises(ConfigError):
        TokenValidator(AuthSettings(algorithms=["RS256", "HS256"]))


@pytest.mark.parametrize(
    ("scopes", "resource", "interaction", "allowed"),
    [
        (["system/MedicationRequest.rs"], "MedicationRequest", "read", True),
        (["system/MedicationRequest.rs"], "MedicationRequest", "create", False),
        (["user/*.read"], "Patient", "search", True),
        (["patient/Observation.write"], "Observation", "update", True),
        (["system/*.cruds"], "DetectedIssue", "d", True),
        (["system/Observation.rs?category=laboratory"], "Observation", "read", False),
        (["system/Observation.sr"], "Observation", "read", False),  # v2 order is cruds
        (["openid", "launch"], "Patient", "read", False),
    ],
)
def test_scope_allows(scopes: list[str], resource: str, interaction: str, allowed: bool) -> None:
    assert scope_allows(scopes, resource, interaction) is allowed
