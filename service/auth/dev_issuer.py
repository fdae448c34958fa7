"""The development issuer: a local key pair that mints bearer tokens for trying the API.

It exists only when `VERITY_ENVIRONMENT=development`, auth is on and no other issuer is
configured (`AuthSettings.development_key_dir`, set by `Settings`). The private key lives in
the data folder as a PEM file created on first use with 0600 permissions; a key file that
others can read is refused. The service trusts only its public half, through the same
TokenValidator checks as any issuer (signature, iss, aud, exp, scopes).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from service.auth.scopes import parse_scope
from service.config import AuthSettings, ConfigError

DEV_ISSUER = "urn:verity:development-issuer"
DEV_AUDIENCE = "urn:verity:api"
DEV_ALG = "ES256"
KEY_FILE = "dev-issuer-key.pem"
MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class DevIssuer:
    """The development signing key and the issuer/audience its tokens carry."""

    key: ECKey
    audience: str
    key_path: Path

    @property
    def issuer(self) -> str:
        return DEV_ISSUER

    def public_keys(self) -> KeySet:
        """The JWKS the validator trusts (public half only)."""
        return KeySet([ECKey.import_key(self.key.as_dict(private=False))])

    def mint(self, scopes: Sequence[str], *, minutes: int = 60, subject: str = "developer") -> str:
        """A signed access token with these scopes, valid for `minutes`."""
        bad = [s for s in scopes if parse_scope(s) is None]
        if not scopes or bad:
            raise ConfigError(
                f"not a SMART scope: {' '.join(bad) or '(none given)'}; e.g. system/Library.rs"
            )
        if not 1 <= minutes <= MAX_MINUTES:
            raise ConfigError(f"--minutes must be between 1 and {MAX_MINUTES}")
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": self.audience,
            "sub": subject,
            "client_id": "verity-dev-token",
            "iat": now,
            "nbf": now,
            "exp": now + minutes * 60,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes),
        }
        header = {"alg": DEV_ALG, "typ": "at+jwt", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=[DEV_ALG])


def development_issuer(auth: AuthSettings) -> DevIssuer:
    """The development issuer for these settings, its key created on first use."""
    key_dir = auth.development_key_dir
    if key_dir is None:
        raise ConfigError(development_refusal(auth))
    key = _load_or_create(key_dir / KEY_FILE)
    return DevIssuer(key=key, audience=auth.audience or DEV_AUDIENCE, key_path=key_dir / KEY_FILE)


def development_refusal(auth: AuthSettings) -> str:
    """Why there is no development issuer under these settings (one line)."""
    if not auth.enabled:
        return "auth is disabled (VERITY_AUTH__ENABLED=false): no token is needed"
    if auth.issuer or auth.jwks_url:
        return (
            "an issuer is configured (VERITY_AUTH__ISSUER): get a token from it; "
            "the development issuer is used only when none is"
        )
    return "the development issuer exists only when VERITY_ENVIRONMENT=development"


def _load_or_create(path: Path) -> ECKey:
    """Read the key, or write a new one atomically (0600) so concurrent starts agree."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            with contextlib.suppress(FileExistsError):  # another process won the race: use its
                os.link(tmp, path)
        finally:
            tmp.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} has permissions {mode:04o}; run: chmod 600 {path}")
    try:
        key = ECKey.import_key(path.read_bytes())
    except (JoseError, ValueError) as exc:
        raise ConfigError(f"{path} is not an EC private key: {type(exc).__name__}") from None
    if not key.is_private:
        raise ConfigError(f"{path} holds no private key")
    key.ensure_kid()
    return key
