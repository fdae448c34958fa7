"""The async connection pool, opened in the app lifespan, with pgvector types registered, and
`connect` for the few places that need one connection outside it, configured the same way."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.config import DbSettings
from service.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# A connection factory: workflows take one around each database step, never across model work.
Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]]


def reuse(conn: psycopg.AsyncConnection) -> Connect:
    """A `Connect` that hands out one connection the caller already holds (CLI, evaluation)."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[psycopg.AsyncConnection]:
        yield conn

    return connect


async def _configure(conn: psycopg.AsyncConnection) -> None:
    """Register the vector type on each new connection (absent until migrations ran)."""
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        log.warning("vector type not found; run `verity db upgrade`")
    # register_vector_async runs a query; leave the connection idle for the pool.
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.rollback()


def _connect_kwargs(
    settings: DbSettings, statement_timeout_ms: int | None = None
) -> dict[str, Any]:
    """Connection parameters shared by the pool and `connect`; 0 ms = no statement timeout."""
    timeout_ms = (
        settings.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    )
    return {
        "connect_timeout": settings.connect_timeout_s,
        "options": f"-c statement_timeout={timeout_ms}",
        "application_name": "verity",
        "autocommit": True,  # explicit conn.transaction() blocks where atomicity matters
    }


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
        kwargs=_connect_kwargs(settings),
        name="verity",
    )


async def connect(
    url: str,
    settings: DbSettings | None = None,
    *,
    vector_types: bool = True,
    statement_timeout_ms: int | None = None,
) -> psycopg.AsyncConnection:
    """One connection configured as the pool's are, for commands and jobs that run outside it.

    `vector_types=False` skips the pgvector registration (before migrations created the type);
    `statement_timeout_ms` overrides the setting (0 = none, for migrations and their lock)."""
    conn = await psycopg.AsyncConnection.connect(
        url, **_connect_kwargs(settings or DbSettings(), statement_timeout_ms)
    )
    if vector_types:
        try:
            await _configure(conn)
        except BaseException:
            await conn.close()
            raise
    return conn


@asynccontextmanager
async def rolled_back(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection whose writes are undone: a dry run decides like a real one, stores nothing."""
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        yield conn


@asynccontextmanager
async def pooled(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection for a short step; pool exhaustion or a lost server is a retryable
    DatabaseUnavailable (5030), the same for every front door."""
    try:
        async with pool.connection() as conn:
            yield conn
    except PoolTimeout as exc:
        raise DatabaseUnavailable("no database connection free in time") from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable("database connection failed") from exc
