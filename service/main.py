"""create_app(): the lifespan opens the database, clients and models; routers are mounted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__, web
from service.api import (
    discovery,
    health,
    identify,
    imaging,
    imaging_library,
    library,
    medication,
    openapi,
    problems,
)
from service.api.middleware import RequestContextMiddleware
from service.auth.tokens import TokenValidator
from service.config import Settings, load_settings
from service.errors import VerityError
from service.fhir.client import create_fhir_client
from service.models.image_embedder import ImageEmbedder, load_image_embedder
from service.rpc.server import start_grpc
from service.store.database import Database
from service.workflows.imaging.jobs import serve_jobs
from service.writeback.relay import run_relay

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    """Build the app; nothing is connected until the lifespan starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        app.state.db = db
        stop_relay = asyncio.Event()
        background: list[asyncio.Task[None]] = []
        app.state.token_validator = TokenValidator(settings.auth)
        if settings.auth.enabled and not app.state.token_validator.configured:
            log.warning("auth is on but no issuer/audience is set: protected endpoints refuse")
        try:
            await db.start(run_migrations=run_migrations)
            await _load_models(app, settings)
            app.state.image_embedder = await _load_image_models(settings)
            if settings.fhir.base_url:
                app.state.fhir = await create_fhir_client(settings.fhir)
                if settings.outbox.relay_enabled:
                    background.append(asyncio.create_task(
                        run_relay(db.pool, app.state.fhir, settings.outbox, stop_relay,
                                  settings.writeback.max_transaction_entries)
                    ))  # fmt: skip
                if settings.imaging.worker_enabled:
                    background.append(asyncio.create_task(
                        serve_jobs(db.pool, settings, app.state.fhir, stop_relay,
                                   embedder=app.state.image_embedder)
                    ))  # fmt: skip
            if settings.grpc.port is not None:
                app.state.grpc = await start_grpc(app.state, settings)
            await web.start(app, settings)
            log.info("verity started", extra={"embedded_db": db.embedded})
            yield
        finally:
            if app.state.grpc is not None:
                await app.state.grpc.stop()
            await web.stop(app)
            stop_relay.set()
            for task in background:
                await task
            if app.state.fhir is not None:
                await app.state.fhir.aclose()
            await app.state.token_validator.aclose()
            await db.stop()
            log.info("verity stopped")

    app = FastAPI(
        title="Verity",
        version=__version__,
        summary="AI-assisted verification of dispensed pills and imaging studies, "
        "recorded in the EHR as FHIR resources.",
        lifespan=lifespan,
        docs_url=None,  # served by api/openapi.py from bundled assets, never a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.model_status = None
    app.state.pills = None
    app.state.image_embedder = None  # the imaging reference library's models (lifespan)
    app.state.fhir = None
    app.state.grpc = None
    problems.install(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.server.max_request_bytes)
    app.include_router(health.router)
    app.include_router(discovery.router)
    app.include_router(identify.router)
    app.include_router(library.router)
    app.include_router(medication.router)
    app.include_router(imaging.router)
    app.include_router(imaging_library.router)
    web.install(app, settings)
    openapi.install(app)
    return app


async def _load_models(app: FastAPI, settings: Settings) -> None:
    """Load every model once; a failure leaves the service up but not ready (503)."""
    from service.workflows.pills.service import load_pill_service

    try:
        service = await asyncio.to_thread(load_pill_service, settings)
    except (VerityError, OSError, ValueError) as exc:
        error = str(exc)
        log.error("models failed to load", extra={"error": error})
        failed = [{"name": settings.models.embedder, "version": None, "loaded": False}]
        app.state.model_status = lambda: [{**m, "error": error} for m in failed]
        return
    app.state.pills = service
    app.state.model_status = service.engine.registry.status


async def _load_image_models(settings: Settings) -> ImageEmbedder | None:
    """The imaging models, once; a failure leaves the imaging library unavailable (503)."""
    try:
        return await asyncio.to_thread(load_image_embedder, settings)
    except (VerityError, OSError, ValueError) as exc:
        log.error("imaging models failed to load", extra={"error": str(exc)})
        return None
