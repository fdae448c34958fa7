"""The async connection pool, opened in the app lifespan, with pgvector types registered."""

from __future__ import annotations

import logging

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

from service.config import DbSettings

log = logging.getLogger(__name__)


async def _configure(conn: psycopg.AsyncConnection) -> None:
    """Register the vector type on each new connection (absent until migrations ran)."""
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        log.warning("vector type not found; run `verity db upgrade`")
    # register_vector_async runs a query; leave the connection idle for the pool.
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.rollback()


def create_pool(url: str, settings: DbSettings) -> AsyncConnectionPool:
    """A closed pool with every limit explicit; the caller opens it in the lifespan."""
    return AsyncConnectionPool(
        conninfo=url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        max_lifetime=settings.max_lifetime_s,
        max_idle=settings.max_idle_s,
        reconnect_timeout=60.0,
        open=False,
        configure=_configure,
        kwargs={
            "connect_timeout": settings.connect_timeout_s,
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "application_name": "verity",
            "autocommit": True,  # explicit conn.transaction() blocks where atomicity matters
        },
        name="verity",
    )
