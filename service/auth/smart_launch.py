"""SMART App Launch 2.2 for the web app: discovery, the authorization URL with PKCE (S256),
the code exchange, and the launch context the token response carries (never guessed).

Only the EHR the hospital configured is ever contacted: `iss` from a launch must equal the
configured FHIR base before any request goes out. The id_token is verified (signature from
the issuer's JWKS, issuer, audience, expiry) before its `fhirUser` is believed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.auth.smart_client import ClientAssertion, load_signing_key
from service.config import WebSettings
from service.errors import FhirAuthFailed, FhirUnavailable, LaunchRefused

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class LaunchConfig:
    """What the EHR's smart-configuration says about user-facing launches."""

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None
    capabilities: frozenset[str]


@dataclass(frozen=True)
class Authorization:
    """A started authorization: the URL to send the browser to and what the callback needs."""

    url: str
    state: str
    code_verifier: str


@dataclass(frozen=True)
class UserToken:
    """The token response of an authorization code grant, as SMART defines its context."""

    access_token: str
    expires_at: float
    scopes: frozenset[str]
    patient: str | None
    encounter: str | None
    fhir_user: str | None
    user_name: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class SmartLaunch:
    """One long-lived client for the configured EHR's authorization server."""

    def __init__(
        self,
        settings: WebSettings,
        fhir_base: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.fhir_base = fhir_base.rstrip("/")
        self._assertion: ClientAssertion | None = None
        if settings.private_key is not None or settings.private_key_file is not None:
            key = load_signing_key(settings)
            kid = settings.key_id or str(key.kid or key.thumbprint())
            self._assertion = ClientAssertion(key, kid, settings.signing_alg)
        self._http = httpx.AsyncClient(
            timeout=settings.http_timeout_s, transport=transport, follow_redirects=False
        )
        self._config: LaunchConfig | None = None
        self._jwks: KeySet | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    def allowed_issuer(self, iss: str) -> bool:
        """Only the EHR the hospital configured; anything else is never contacted."""
        return iss.rstrip("/") == self.fhir_base

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            resp = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"{what}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise FhirUnavailable(f"{what} answered HTTP {resp.status_code}")
        body = resp.json()
        if not isinstance(body, dict):
            raise FhirUnavailable(f"{what} is not a JSON object")
        return body

    async def discover(self) -> LaunchConfig:
        """The EHR's smart-configuration; refused unless it offers the code flow with S256."""
        if self._config is not None:
            return self._config
        doc = await self._get_json(
            f"{self.fhir_base}/.well-known/smart-configuration", "SMART discovery"
        )
        if "S256" not in (doc.get("code_challenge_methods_supported") or []):
            raise FhirAuthFailed("the EHR does not offer PKCE with S256 (SMART App Launch 2)")
        if not doc.get("authorization_endpoint") or not doc.get("token_endpoint"):
            raise FhirAuthFailed("the EHR's SMART configuration has no authorization endpoint")
        self._config = LaunchConfig(
            issuer=doc.get("issuer"),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=doc.get("jwks_uri"),
            capabilities=frozenset(doc.get("capabilities") or ()),
        )
        return self._config

    async def authorize(self, *, launch: str | None) -> Authorization:
        """The authorization URL: EHR launch (with `launch`) or standalone (patient picked)."""
        config = await self.discover()
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id or "",
            "redirect_uri": self.settings.redirect_uri,
            "scope": self.settings.scopes if launch else self.settings.standalone_scopes,
            "state": state,
            "aud": self.fhir_base,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if launch:
            params["launch"] = launch
        url = f"{config.authorization_endpoint}?{urlencode(params)}"
        return Authorization(url, state, verifier)

    async def exchange(self, code: str, code_verifier: str) -> UserToken:
        """Trade the code for the user's token (PKCE verifier; private_key_jwt if configured)."""
        config = await self.discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.settings.client_id or "",
        }
        if self._assertion is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion.sign(
                _ClientRef(self.settings.client_id or ""), config.token_endpoint
            )
        try:
            resp = await self._http.post(config.token_endpoint, data=form)
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"token request: {type(exc).__name__}") from None
        if resp.status_code >= 500:
            raise FhirUnavailable(f"token endpoint answered HTTP {resp.status_code}")
        body = resp.json() if resp.content else {}
        if resp.status_code != 200 or not body.get("access_token"):
            raise LaunchRefused(f"the EHR refused the code: {body.get('error', resp.status_code)}")
        claims = await self._id_token_claims(body.get("id_token"), config)
        return UserToken(
            access_token=str(body["access_token"]),
            expires_at=time.time() + float(body.get("expires_in") or 300),
            scopes=frozenset(str(body.get("scope") or "").split()),
            patient=_str_or_none(body.get("patient")),
            encounter=_str_or_none(body.get("encounter")),
            fhir_user=_str_or_none(claims.get("fhirUser")),
            user_name=_str_or_none(claims.get("name")),
            extra={"need_patient_banner": bool(body.get("need_patient_banner", True))},
        )

    async def _id_token_claims(self, id_token: Any, config: LaunchConfig) -> dict[str, Any]:
        """Verified id_token claims ({} when none was issued, e.g. openid not granted)."""
        if not id_token:
            return {}
        if not config.jwks_uri:
            raise FhirAuthFailed("an id_token was issued but the EHR publishes no jwks_uri")
        if self._jwks is None:
            self._jwks = KeySet.import_key_set(
                await self._get_json(config.jwks_uri, "EHR JWKS")  # type: ignore[arg-type]
            )
        try:
            token = jwt.decode(str(id_token), self._jwks)
            expected: dict[str, Any] = {
                "aud": {"essential": True, "value": self.settings.client_id},
                "exp": {"essential": True},
            }
            if config.issuer:
                expected["iss"] = {"essential": True, "value": config.issuer}
            jwt.JWTClaimsRegistry(leeway=30, **expected).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise LaunchRefused(f"the id_token did not verify: {type(exc).__name__}") from None
        return dict(token.claims)


@dataclass(frozen=True)
class _ClientRef:
    """What ClientAssertion.sign reads from authlib's client object."""

    client_id: str


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None
