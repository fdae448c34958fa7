"""Outbound SMART Backend Services against the real oidc-provider and FHIR launcher."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import RSAKey

from service.auth.smart_client import ClientAssertion, SmartBackendAuth
from service.errors import FhirAuthFailed
from service.fhir.client import FhirClient


async def _read_metadata_and_patient_search(settings: Any, auth: SmartBackendAuth) -> None:
    client = FhirClient(settings, auth=auth)
    try:
        await client.search("Patient", {"_count": "1"})
    finally:
        await client.aclose()


@pytest.mark.parametrize("client_id", ["verity-rs384", "verity-es384"])
async def test_token_success(fhir_server, client_id: str) -> None:
    settings = fhir_server.settings_for(client_id)
    auth = SmartBackendAuth(settings)
    token = await auth.access_token()
    assert token.count(".") == 2
    assert auth.granted_scopes >= {"system/MedicationRequest.rs", "system/DetectedIssue.crus"}
    assert auth.assertion.alg == settings.signing_alg
    await _read_metadata_and_patient_search(settings, auth)
    assert auth.token_fetches == 1  # cached for the FHIR call


async def test_unallowed_scope_is_dropped_not_granted(fhir_server) -> None:
    settings = fhir_server.settings_for(
        "verity-limited", scopes="system/Patient.rs system/DetectedIssue.cu"
    )
    auth = SmartBackendAuth(settings)
    try:
        await auth.access_token()
        assert auth.granted_scopes == {"system/Patient.rs"}
    finally:
        await auth.aclose()


async def test_wrong_key_refused(fhir_server) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "rogue", "alg": "RS384"}, private=True)
    settings = fhir_server.settings_for("verity-rs384")
    auth = SmartBackendAuth(settings, assertion=ClientAssertion(other, "rogue", "RS384"))
    with pytest.raises(FhirAuthFailed, match="refused client 'verity-rs384': invalid_client"):
        await auth.access_token()
    await auth.aclose()


class _ExpiredAssertion(ClientAssertion):
    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time()) - 900
        return str(
            private_key_jwt_sign(
                self.key,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                claims={"jti": uuid.uuid4().hex},
                header={"kid": self.kid},
                issued_at=now,
                expires_at=now + 60,
            )
        )


class _ReplayedAssertion(ClientAssertion):
    jti = uuid.uuid4().hex

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        return str(
            private_key_jwt_sign(
                self.key,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                claims={"jti": self.jti},
                header={"kid": self.kid},
                issued_at=now,
                expires_at=now + 120,
            )
        )


def _assertion(auth_server, client_id: str, cls: type[ClientAssertion]) -> ClientAssertion:
    c = auth_server.clients[client_id]
    return cls(c.key, c.kid, c.alg)


async def test_expired_assertion_refused(fhir_server, auth_server) -> None:
    auth = SmartBackendAuth(
        fhir_server.settings_for("verity-rs384"),
        assertion=_assertion(auth_server, "verity-rs384", _ExpiredAssertion),
    )
    with pytest.raises(FhirAuthFailed, match="refused client 'verity-rs384': invalid_client"):
        await auth.access_token()
    await auth.aclose()


async def test_replayed_jti_refused(fhir_server, auth_server) -> None:
    auth = SmartBackendAuth(
        fhir_server.settings_for("verity-rs384"),
        assertion=_assertion(auth_server, "verity-rs384", _ReplayedAssertion),
    )
    await auth.access_token()
    auth.invalidate()
    with pytest.raises(FhirAuthFailed, match="refused client 'verity-rs384': invalid_client"):
        await auth.access_token()
    await auth.aclose()


async def test_unknown_client_refused(fhir_server) -> None:
    settings = fhir_server.settings_for("verity-rs384", client_id="nobody-registered-this")
    auth = SmartBackendAuth(settings)
    with pytest.raises(FhirAuthFailed, match="'nobody-registered-this': invalid_client"):
        await auth.access_token()
    await auth.aclose()


async def test_assertion_claims(fhir_server, auth_server) -> None:
    """kid set, unique jti, exp <= 5 min, aud = token URL."""
    from joserfc import jwt

    c = auth_server.clients["verity-es384"]
    a = ClientAssertion(c.key, c.kid, c.alg, lifetime_s=3600)

    class _A:
        client_id = c.client_id

    t1, t2 = a.sign(_A, auth_server.token_endpoint), a.sign(_A, auth_server.token_endpoint)
    d1 = jwt.decode(t1, c.key, algorithms=["ES384"])
    d2 = jwt.decode(t2, c.key, algorithms=["ES384"])
    assert d1.header["kid"] == c.kid and d1.header["alg"] == "ES384"
    assert d1.claims["aud"] == auth_server.token_endpoint
    assert d1.claims["iss"] == d1.claims["sub"] == c.client_id
    assert d1.claims["exp"] - d1.claims["iat"] <= 300
    assert d1.claims["jti"] != d2.claims["jti"]


async def test_renewal_before_expiry(fhir_server) -> None:
    auth = SmartBackendAuth(fhir_server.settings_for("verity-short"))  # 4 s tokens
    first = await auth.access_token()
    assert await auth.access_token() == first
    await asyncio.sleep(2.2)  # past half the lifetime, before expiry
    second = await auth.access_token()
    assert second != first and auth.token_fetches == 2
    await auth.aclose()


async def test_forced_401_triggers_one_renewal(fhir_server) -> None:
    settings = fhir_server.settings_for("verity-rs384")
    auth = SmartBackendAuth(settings)
    client = FhirClient(settings, auth=auth)
    await auth.access_token()
    auth._token = auth._token[:-8] + "AAAAAAAA"  # the server now rejects the cached token
    await client.search("Patient", {"_count": "1"})
    assert auth.token_fetches == 2
    await client.aclose()


async def test_persistent_401_is_auth_failure(fhir_server) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Authorization"])
        return httpx.Response(
            401,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "login"}],
            },
        )

    settings = fhir_server.settings_for("verity-rs384")
    auth = SmartBackendAuth(settings)
    client = FhirClient(settings, auth=auth, transport=httpx.MockTransport(handler))
    with pytest.raises(FhirAuthFailed):
        await client.read("Patient", "x")
    assert len(calls) == 2 and calls[0] != calls[1] and auth.token_fetches == 2
    await client.aclose()
