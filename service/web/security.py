"""What keeps the web app's pages safe in a browser: the signed session cookie, the CSRF token
of every form, and the headers of every page (Content-Security-Policy with the EHR's
frame-ancestors, no referrer, no caching of patient pages)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import WebSettings
from service.errors import FormCheckFailed

SESSION_COOKIE = "verity_session"
LAUNCH_COOKIE = "verity_launch"
CSRF_FIELD = "csrf_token"
PREFIX = "/app"


class CookieSigner:
    """Signs the random ids the cookies carry; a tampered or too old cookie reads as none."""

    def __init__(self, settings: WebSettings) -> None:
        secret = settings.cookie_secret()
        self._session = TimestampSigner(secret, salt="verity-web-session")
        self._launch = TimestampSigner(secret, salt="verity-web-launch")
        self.max_age_s = settings.session_max_s
        self.launch_age_s = settings.launch_ttl_s

    def session(self, session_id: str) -> str:
        return self._session.sign(session_id).decode()

    def read_session(self, cookie: str | None) -> str | None:
        return _unsign(self._session, cookie, self.max_age_s)

    def launch(self, nonce: str) -> str:
        return self._launch.sign(nonce).decode()

    def read_launch(self, cookie: str | None) -> str | None:
        return _unsign(self._launch, cookie, self.launch_age_s)


def _unsign(signer: TimestampSigner, cookie: str | None, max_age: int) -> str | None:
    if not cookie or len(cookie) > 512:
        return None
    try:
        return signer.unsign(cookie, max_age=max_age).decode()
    except BadSignature:  # also SignatureExpired
        return None


def new_secret() -> str:
    """A random, URL-safe id for sessions, launches and CSRF tokens (256 bits)."""
    return secrets.token_urlsafe(32)


def check_csrf(expected: str, sent: object, origin: str | None, public_url: str) -> None:
    """Refuse a form without this session's token, or posted from another origin."""
    if not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise FormCheckFailed("the form's check token is missing or wrong; reload the page")
    if origin is not None and origin != "null" and _origin(origin) != _origin(public_url):
        raise FormCheckFailed("the form was posted from another site")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def content_security_policy(settings: WebSettings) -> str:
    """Everything from Verity itself (no CDN); framing only by the EHR origins configured."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {' '.join(settings.frame_ancestors)}",
        )
    )


class PageHeadersMiddleware:
    """Adds the page security headers to every response under /app (pages and assets)."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.headers = {
            "content-security-policy": content_security_policy(settings),
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "permissions-policy": "camera=(self), microphone=(), geolocation=()",
            "cross-origin-resource-policy": "same-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if not static:  # patient pages are never cached, nor kept in the back cache
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
