"""Inbound bearer JWTs: Verity as an OAuth 2.0 resource server.

One TokenValidator per app (created from AuthSettings in the lifespan). Keys come from the
issuer's JWKS (configured `jwks_url`, else discovery), are cached, and are refetched on an
unknown `kid` at most once per `jwks_min_refresh_s`. Only asymmetric algorithms from the
configured list are accepted: `none` and HMAC are refused before any key is touched.

In development with no issuer configured it trusts the local development issuer instead
(service/auth/dev_issuer.py): same checks, keys from the data folder, nothing fetched.
`readiness()` tells /health/ready whether tokens can be checked at all: the issuer's
metadata and JWKS are reachable (probe bounded and cached briefly), auth is deliberately
off, or the development issuer is in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.auth.dev_issuer import DevIssuer, development_issuer
from service.auth.scopes import scope_allows
from service.config import AuthSettings, ConfigError
from service.errors import AuthNotConfigured, Unauthenticated

log = logging.getLogger(__name__)

_ASYMMETRIC = ("RS", "PS", "ES", "EdDSA", "Ed25519")


@dataclass(frozen=True)
class Principal:
    """Who is calling (from a validated token); recorded for audit, never the token itself."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    issuer: str | None

    def allows(self, resource: str, interaction: str) -> bool:
        return scope_allows(self.scopes, resource, interaction)


ANONYMOUS = Principal(subject="anonymous", client_id=None, scopes=frozenset(), issuer=None)


def bearer_from_header(value: str) -> str | None:
    """The token of an `authorization: Bearer ...` header or gRPC metadata value, else None."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _invalid(description: str) -> Unauthenticated:
    safe = description.replace('"', "'")
    return Unauthenticated(
        f"invalid token: {description}",
        www_authenticate=f'Bearer error="invalid_token", error_description="{safe}"',
    )


class TokenValidator:
    """Validates bearer JWTs against the configured issuer, audience and JWKS."""

    def __init__(
        self, settings: AuthSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        unsafe = [a for a in settings.algorithms if not a.startswith(_ASYMMETRIC)]
        if unsafe:
            raise ConfigError(f"auth.algorithms must be asymmetric; refusing {unsafe}")
        self.settings = settings
        self.enabled = settings.enabled
        self.algorithms = list(settings.algorithms)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout_s),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )
        self._keys: KeySet | None = None
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()
        self.jwks_fetches = 0
        self.dev: DevIssuer | None = None
        self.issuer, self.audience = settings.issuer, settings.audience
        if settings.enabled and settings.development_key_dir is not None:
            self.dev = development_issuer(settings)
            self.issuer, self.audience = self.dev.issuer, self.dev.audience
            self._keys = self.dev.public_keys()
            log.warning("development issuer trusted: tokens from `verity auth dev-token`")
        self._probe_lock = asyncio.Lock()
        self._probe: tuple[float, dict[str, Any]] | None = None
        self.issuer_probes = 0

    @property
    def configured(self) -> bool:
        return bool(self.issuer and self.audience)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def readiness(self) -> dict[str, Any]:
        """The auth part of /health/ready; an issuer probe is reused for `ready_cache_s`."""
        if not self.enabled:
            return {"ready": True, "mode": "disabled"}
        if self.dev is not None:
            return {"ready": True, "mode": "development", "issuer": self.issuer}
        if not self.configured:
            return {
                "ready": False,
                "mode": "not_configured",
                "error": "set VERITY_AUTH__ISSUER and VERITY_AUTH__AUDIENCE",
            }
        async with self._probe_lock:  # concurrent probes wait for one request, not N
            now = time.monotonic()
            if self._probe is None or now - self._probe[0] >= self.settings.ready_cache_s:
                self._probe = (now, await self._probe_issuer())
            return self._probe[1]

    async def _probe_issuer(self) -> dict[str, Any]:
        """Fetch the issuer's metadata (unless jwks_url is set) and JWKS within the bound."""
        self.issuer_probes += 1
        result: dict[str, Any] = {"ready": False, "mode": "issuer", "issuer": self.issuer}
        try:
            async with asyncio.timeout(self.settings.ready_timeout_s):
                resp = await self._http.get(await self._jwks_url())
                resp.raise_for_status()
                keys = KeySet.import_key_set(resp.json())
        except TimeoutError:
            return {**result, "error": f"no answer within {self.settings.ready_timeout_s} s"}
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            log.warning("issuer probe failed: %s", type(exc).__name__)
            return {**result, "error": f"issuer unreachable or invalid: {type(exc).__name__}"}
        if not keys.keys:
            return {**result, "error": "issuer JWKS has no keys"}
        return {**result, "ready": True}

    async def _jwks_url(self) -> str:
        if self.settings.jwks_url:
            return self.settings.jwks_url
        issuer = str(self.issuer).rstrip("/")
        resp = await self._http.get(f"{issuer}/.well-known/openid-configuration")
        if resp.status_code != 200:
            resp = await self._http.get(f"{issuer}/.well-known/oauth-authorization-server")
        resp.raise_for_status()
        doc = resp.json()
        if doc.get("issuer") != self.issuer or not doc.get("jwks_uri"):
            raise ValueError("issuer discovery document does not match the configured issuer")
        return str(doc["jwks_uri"])

    async def _refresh(self, *, force: bool) -> KeySet | None:
        """Fetch the JWKS when stale, or on `force` if the rate limit allows."""
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._keys is None or age > self.settings.jwks_cache_s
            fixed = self.dev is not None  # the development keys are never fetched
            if fixed or (not stale and not (force and age >= self.settings.jwks_min_refresh_s)):
                return self._keys
            self._fetched_at = time.monotonic()  # rate-limit failures as well as successes
            try:
                resp = await self._http.get(await self._jwks_url())
                resp.raise_for_status()
                self._keys = KeySet.import_key_set(resp.json())
                self.jwks_fetches += 1
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                log.warning("JWKS fetch failed: %s", type(exc).__name__)
            return self._keys

    async def _key(self, kid: str | None) -> Any:
        keys = await self._refresh(force=False)
        for attempt in range(2):
            if keys is not None:
                if kid is None and len(keys.keys) == 1:
                    return keys.keys[0]
                for k in keys.keys:
                    if k.kid == kid:
                        return k
            if attempt == 0:
                keys = await self._refresh(force=True)
        if keys is None:
            raise Unauthenticated(
                "issuer keys are unavailable; try again later",
                www_authenticate='Bearer error="invalid_token"',
            )
        raise _invalid("unknown signing key")

    async def validate(self, token: str) -> Principal:
        """Check signature, algorithm, iss, aud, exp/nbf/iat; return the caller."""
        if not self.configured:
            raise AuthNotConfigured("set VERITY_AUTH__ISSUER and VERITY_AUTH__AUDIENCE")
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError):
            raise _invalid("malformed token") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _invalid(f"algorithm {alg!r} not allowed")
        key = await self._key(header.get("kid"))
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
            registry = jwt.JWTClaimsRegistry(
                leeway=self.settings.leeway_s,
                iss={"essential": True, "value": str(self.issuer)},
                aud={"essential": True, "value": str(self.audience)},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise _invalid(exc.description or exc.error) from None
        except ValueError:
            raise _invalid("bad signature or claims") from None
        return _principal(decoded.claims)


def _principal(claims: dict[str, Any]) -> Principal:
    raw = claims.get("scope", claims.get("scp", ""))
    scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw or []]
    client_id = claims.get("client_id") or claims.get("azp")
    subject = claims.get("sub") or client_id
    if not subject:
        raise _invalid("token has no subject")
    return Principal(
        subject=str(subject),
        client_id=str(client_id) if client_id else None,
        scopes=frozenset(scopes),
        issuer=str(claims.get("iss")),
    )
