"""SMART App Launch into Verity: /app/launch (EHR launch with `launch` + `iss`, or standalone),
/app/callback (state bound to this browser, PKCE verifier, the token's context kept server
side), /app/signout. Nothing here logs patient data or tokens."""

from __future__ import annotations

import hmac
import logging
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth.smart_launch import SmartLaunch
from service.config import Settings
from service.deps import connection
from service.errors import LaunchRefused
from service.store import web_sessions
from service.web.render import render
from service.web.security import LAUNCH_COOKIE, SESSION_COOKIE, CookieSigner, new_secret
from service.web.session import FormSession

log = logging.getLogger(__name__)
router = APIRouter(prefix="/app", include_in_schema=False)

Param = Annotated[str | None, Query(max_length=2048)]


def _cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/app", httponly=True,
        secure=settings.web.cookie_secure, samesite=settings.web.cookie_samesite,
    )  # fmt: skip


@router.get("/launch")
async def launch(request: Request, iss: Param = None, launch: Param = None) -> Response:
    """Start an authorization at the EHR: with `launch` (EHR launch) or without (standalone)."""
    settings: Settings = request.app.state.settings
    smart: SmartLaunch = request.app.state.web_launch
    signer: CookieSigner = request.app.state.web_signer
    if launch is not None and iss is None:
        raise LaunchRefused("an EHR launch must name its FHIR server (iss)")
    if iss is not None and not smart.allowed_issuer(iss):
        raise LaunchRefused("this EHR is not the one Verity is configured for")
    auth = await smart.authorize(launch=launch)
    nonce = signer.read_launch(request.cookies.get(LAUNCH_COOKIE)) or new_secret()
    pending = {"nonce": nonce, "code_verifier": auth.code_verifier, "ehr_launch": bool(launch)}
    async with connection(request) as conn:
        await web_sessions.create(
            conn, auth.state, "pending", pending, timedelta(seconds=settings.web.launch_ttl_s)
        )
    response = RedirectResponse(auth.url, status_code=302)
    _cookie(response, settings, LAUNCH_COOKIE, signer.launch(nonce), settings.web.launch_ttl_s)
    log.info("web launch started", extra={"ehr_launch": bool(launch)})
    return response


@router.get("/callback")
async def callback(
    request: Request, state: Param = None, code: Param = None, error: Param = None
) -> Response:
    """Finish the authorization: the state must be one this browser started, once."""
    settings: Settings = request.app.state.settings
    smart: SmartLaunch = request.app.state.web_launch
    signer: CookieSigner = request.app.state.web_signer
    if not state:
        raise LaunchRefused("the EHR's answer has no state")
    async with connection(request) as conn:
        pending = await web_sessions.take_pending(conn, state)
    nonce = signer.read_launch(request.cookies.get(LAUNCH_COOKIE))
    if pending is None or nonce is None or not hmac.compare_digest(pending["nonce"], nonce):
        log.warning("web launch refused: unknown, used or foreign state")
        raise LaunchRefused("this sign-in was not started here, was already used, or expired")
    if error:
        raise LaunchRefused(f"the EHR did not authorize Verity ({error[:64]})")
    if not code:
        raise LaunchRefused("the EHR's answer has no authorization code")
    token = await smart.exchange(code, pending["code_verifier"])
    session_id = new_secret()
    lifetime = max(1, min(settings.web.session_max_s, int(token.expires_at - time.time())))
    data = {
        "token": token.access_token,
        "token_expires_at": token.expires_at,
        "scopes": sorted(token.scopes),
        "patient": token.patient,
        "encounter": token.encounter,
        "fhir_user": token.fhir_user,
        "user_name": token.user_name,
        "need_patient_banner": token.extra.get("need_patient_banner", True),
        "csrf": new_secret(),
        "handles": {},
    }
    async with connection(request) as conn:
        await web_sessions.create(
            conn, session_id, "active", data, timedelta(seconds=settings.web.session_max_s)
        )
        # Ended sessions go as new ones start: no table of stale tokens, no extra timer.
        await web_sessions.purge_expired(conn, timedelta(seconds=settings.web.session_idle_s))
    response = RedirectResponse("/app/", status_code=303)
    _cookie(response, settings, SESSION_COOKIE, signer.session(session_id), lifetime)
    response.delete_cookie(LAUNCH_COOKIE, path="/app")
    log.info(
        "web session started",
        extra={"patient_context": token.patient is not None, "scopes": len(token.scopes)},
    )
    return response


@router.post("/signout")
async def signout(request: Request, session: FormSession) -> HTMLResponse:
    """End the session here (the EHR's own session is the EHR's)."""
    async with connection(request) as conn:
        await web_sessions.delete(conn, session.id)
    request.state.web_session = None
    response = render(request, "signed_out.html", title="Signed out")
    response.delete_cookie(SESSION_COOKIE, path="/app")
    return response
