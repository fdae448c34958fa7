"""Annotated dependency aliases that read long-lived resources from app.state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import Depends, Request

from service.config import Settings as SettingsModel
from service.errors import ModelNotLoaded
from service.store.pool import pooled
from service.workflows.pills.service import PillService


def _settings(request: Request) -> SettingsModel:
    settings: SettingsModel = request.app.state.settings
    return settings


@asynccontextmanager
async def connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection for a short step; pool exhaustion is a retryable 503. Handlers that
    also call the FHIR server or run models take one only around their database steps."""
    async with pooled(request.app.state.db.pool) as conn:
        yield conn


async def _conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection for the whole of a request that only talks to the database."""
    async with connection(request) as conn:
        yield conn


def _pills(request: Request) -> PillService:
    pills: PillService | None = request.app.state.pills
    if pills is None:
        raise ModelNotLoaded("the pill models are not loaded")
    return pills


Settings = Annotated[SettingsModel, Depends(_settings)]
Pills = Annotated[PillService, Depends(_pills)]
DbConn = Annotated[psycopg.AsyncConnection, Depends(_conn)]
