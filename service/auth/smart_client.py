"""Outbound SMART Backend Services: client_credentials with private_key_jwt, as an httpx.Auth.

Discovery (`{fhir_base}/.well-known/smart-configuration`) and the access token are cached; the
token is renewed before it expires, and a 401 from the FHIR server forces one renewal and retry.
Assertions are built by authlib's rfc7523 PrivateKeyJWT (signed by joserfc); the token request
is a plain form POST on our own httpx client (authlib's httpx integration is deprecated in 1.9).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from joserfc.jwk import ECKey, RSAKey

from service.config import FhirSettings, WebSettings
from service.errors import FhirAuthFailed, FhirUnavailable

log = logging.getLogger(__name__)

MAX_ASSERTION_LIFETIME_S = 300  # SMART Backend Services: exp no more than 5 minutes ahead


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of the FHIR server's SMART discovery document a backend client uses."""

    token_endpoint: str
    auth_methods: tuple[str, ...]
    signing_algs: tuple[str, ...]


def load_signing_key(settings: FhirSettings | WebSettings) -> RSAKey | ECKey:
    """The client's private key from a PEM/JWK file or the env value, typed by signing_alg."""
    raw: bytes
    if settings.private_key is not None:
        raw = settings.private_key.get_secret_value().encode()
    elif settings.private_key_file is not None:
        raw = settings.private_key_file.read_bytes()
    else:
        raise FhirAuthFailed("no private key configured (VERITY_FHIR__PRIVATE_KEY[_FILE])")
    key_cls: type[RSAKey] | type[ECKey] = ECKey if settings.signing_alg.startswith("ES") else RSAKey
    data: Any = json.loads(raw) if raw.lstrip().startswith(b"{") else raw
    try:
        key = key_cls.import_key(data)
    except (ValueError, TypeError) as exc:
        raise FhirAuthFailed(f"private key is not a {settings.signing_alg} key: {exc}") from None
    if not key.is_private:
        raise FhirAuthFailed("configured key has no private part")
    return key


class ClientAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """private_key_jwt with a fresh jti, a kid and a short exp on every token request."""

    name = "private_key_jwt"

    def __init__(self, key: RSAKey | ECKey, kid: str, alg: str, lifetime_s: int = 300) -> None:
        super().__init__(alg=alg)
        self.key, self.kid = key, kid
        self.lifetime_s = min(lifetime_s, MAX_ASSERTION_LIFETIME_S)

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        return str(
            private_key_jwt_sign(
                self.key,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                claims={"jti": secrets.token_urlsafe(24)},
                header={"kid": self.kid, "typ": "JWT"},
                issued_at=now,
                expires_at=now + self.lifetime_s,
            )
        )


class SmartBackendAuth(httpx.Auth):
    """Bearer tokens for FHIR requests, fetched with SMART Backend Services and cached."""

    requires_response_body = False

    def __init__(
        self,
        settings: FhirSettings,
        *,
        assertion: ClientAssertion | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.base_url or not settings.client_id:
            raise FhirAuthFailed("FHIR base_url and client_id must be configured for SMART")
        self.base_url = settings.base_url.rstrip("/")
        self.client_id = settings.client_id
        self.scopes = settings.scopes
        self.renew_margin_s = settings.token_renew_margin_s
        if assertion is None:
            key = load_signing_key(settings)
            kid = settings.key_id or str(key.kid or key.thumbprint())
            assertion = ClientAssertion(
                key, kid, settings.signing_alg, settings.assertion_lifetime_s
            )
        self.assertion = assertion
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._config: SmartConfiguration | None = None
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.granted_scopes: frozenset[str] = frozenset()
        self.token_fetches = 0

    async def discover(self) -> SmartConfiguration:
        """Read and cache the server's smart-configuration; refuse one we cannot satisfy."""
        if self._config is not None:
            return self._config
        url = f"{self.base_url}/.well-known/smart-configuration"
        try:
            resp = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"SMART discovery failed: {type(exc).__name__}") from None
        if resp.status_code in (404, 410):
            raise FhirAuthFailed(f"no SMART configuration at {url} (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise FhirUnavailable(f"SMART discovery answered HTTP {resp.status_code}")
        doc = resp.json()
        config = SmartConfiguration(
            token_endpoint=str(doc.get("token_endpoint") or ""),
            auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported") or ()),
            signing_algs=tuple(doc.get("token_endpoint_auth_signing_alg_values_supported") or ()),
        )
        if not config.token_endpoint:
            raise FhirAuthFailed("SMART configuration has no token_endpoint")
        if config.auth_methods and "private_key_jwt" not in config.auth_methods:
            raise FhirAuthFailed("authorization server does not accept private_key_jwt")
        if config.signing_algs and self.assertion.alg not in config.signing_algs:
            raise FhirAuthFailed(f"authorization server does not accept {self.assertion.alg}")
        self._config = config
        return config

    async def access_token(self, *, rejected: str | None = None) -> str:
        """A valid access token; renews when close to expiry or when `rejected` is current."""
        async with self._lock:
            now = time.monotonic()
            if self._token and now < self._renew_at and self._token != rejected:
                return self._token
            return await self._fetch()

    async def _fetch(self) -> str:
        config = await self.discover()
        form = {
            "grant_type": "client_credentials",
            "scope": self.scopes,
            "client_id": self.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion.sign(self, config.token_endpoint),
        }
        try:
            resp = await self._http.post(
                config.token_endpoint, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None
        try:
            token = resp.json()
        except ValueError:
            token = None
        if not isinstance(token, dict):
            raise FhirAuthFailed(f"token endpoint answered HTTP {resp.status_code} without JSON")
        if resp.status_code != 200 or "error" in token:
            raise FhirAuthFailed(
                f"authorization server refused client {self.client_id!r}: "
                f"{token.get('error', resp.status_code)}: "
                f"{token.get('error_description') or 'no description'}"
            )
        self.token_fetches += 1
        access = token.get("access_token")
        if not access:
            raise FhirAuthFailed("token response has no access_token")
        lifetime = float(token.get("expires_in") or 300)
        margin = min(self.renew_margin_s, lifetime / 2)
        self._token, self._renew_at = str(access), time.monotonic() + lifetime - margin
        self.granted_scopes = frozenset(str(token.get("scope") or "").split())
        missing = set(self.scopes.split()) - self.granted_scopes
        if missing:
            log.warning("authorization server did not grant scopes: %s", " ".join(sorted(missing)))
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (next request fetches a new one)."""
        self._token, self._renew_at = None, 0.0

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise TypeError("SmartBackendAuth is for httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self.access_token(rejected=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def aclose(self) -> None:
        await self._http.aclose()
