"""The SMART-launched web app for people (pharmacists, nurses, radiographers, auditors).

    launch.py    /app/launch, /app/callback, /app/signout: SMART App Launch 2.2, PKCE S256
    session.py   the server-side session as dependencies (CurrentSession, FormSession, UserFhir)
    security.py  signed cookies, CSRF, the page security headers (CSP frame-ancestors)
    render.py    Jinja templates (autoescaped); errors.py: errors as pages with their code
    pages.py     the start page; one module per further page group:
    medication.py  the medication check: order, photos, verdict with pictures, decision, library
    audit.py     the audit view: search, one verification in full, chart (charts.py), CSV
    imaging.py   the imaging check: study, live progress, result, thumbnails, decision

Pages call the same workflows as the REST API; the EHR is read with the person's token.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from service.auth.smart_launch import SmartLaunch
from service.config import Settings
from service.web import audit, imaging, launch, medication, pages
from service.web.errors import error_page
from service.web.render import STATIC
from service.web.security import CookieSigner, PageHeadersMiddleware

ROUTERS: tuple[APIRouter, ...] = (
    launch.router,
    pages.router,
    medication.router,
    imaging.router,
    audit.router,
)


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the app's pages and assets when VERITY_WEB__ENABLED; nothing otherwise."""
    if not settings.web.enabled:
        return
    app.state.web_signer = CookieSigner(settings.web)
    app.state.error_page = error_page
    app.add_middleware(PageHeadersMiddleware, settings=settings.web)
    app.mount("/app/static", StaticFiles(directory=STATIC), name="web-static")
    for router in ROUTERS:
        app.include_router(router)


async def start(app: FastAPI, settings: Settings) -> None:
    """Open the long-lived client for the EHR's authorization server (lifespan)."""
    if settings.web.enabled and settings.fhir.base_url:
        app.state.web_launch = SmartLaunch(settings.web, settings.fhir.base_url)


async def stop(app: FastAPI) -> None:
    client: SmartLaunch | None = getattr(app.state, "web_launch", None)
    if client is not None:
        await client.aclose()
