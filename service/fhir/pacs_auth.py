"""Credentials Verity presents to the PACS, each an `httpx.Auth` flow so no caller handles a
token: none, HTTP Basic (password inline or from a file), a bearer token from a file (re-read
once when the PACS answers 401, so a rotated token is picked up), or the SMART Backend Services
client of `service/auth/smart_client.py` for a PACS that shares the EHR's authorization server.

A missing username, password or token file is refused when the client is built (ConfigError),
not discovered on the first study.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import httpx

from service.config import ConfigError, PacsSettings

MAX_SECRET_FILE_BYTES = 64 * 1024  # a password or token file, never a whole document


def read_secret_file(path: Path, what: str) -> str:
    """The file's text, stripped; ConfigError if it is missing, empty or oversized."""
    try:
        if path.stat().st_size > MAX_SECRET_FILE_BYTES:
            raise ConfigError(f"PACS {what} file is over {MAX_SECRET_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"PACS {what} file cannot be read ({type(exc).__name__})") from None
    if not text:
        raise ConfigError(f"PACS {what} file is empty")
    return text


class FileBearerAuth(httpx.Auth):
    """`Authorization: Bearer <token from file>`; on a 401 the file is read again and the
    request re-sent once (a token rotated by the hospital's tooling), never more."""

    def __init__(self, token_file: Path) -> None:
        self.token_file = token_file
        self._token = read_secret_file(token_file, "token")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code != 401:
            return
        self._token = read_secret_file(self.token_file, "token")
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def pacs_auth(settings: PacsSettings, smart_auth: httpx.Auth | None = None) -> httpx.Auth | None:
    """The auth flow `settings.auth` names, built and checked now (ConfigError if incomplete)."""
    if settings.auth == "none":
        return None
    if settings.auth == "basic":
        if not settings.username:
            raise ConfigError("PACS basic auth needs VERITY_PACS__USERNAME")
        if settings.password is not None:
            password = settings.password.get_secret_value()
        elif settings.password_file is not None:
            password = read_secret_file(settings.password_file, "password")
        else:
            raise ConfigError("PACS basic auth needs VERITY_PACS__PASSWORD or PASSWORD_FILE")
        return httpx.BasicAuth(settings.username, password)
    if settings.auth == "bearer":
        if settings.token_file is None:
            raise ConfigError("PACS bearer auth needs VERITY_PACS__TOKEN_FILE")
        return FileBearerAuth(settings.token_file)
    if smart_auth is None:
        raise ConfigError("PACS smart auth needs the SMART backend client (FHIR settings)")
    return smart_auth
