"""The database as the app sees it: where it is (embedded or DATABASE_URL), its schema, its pool."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.store import migrate
from service.store.embedded import EmbeddedPostgres
from service.store.pool import create_pool

log = logging.getLogger(__name__)


@dataclass
class DbHealth:
    reachable: bool
    pending_migrations: list[str] = field(default_factory=list)
    changed_migrations: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.reachable and not self.pending_migrations


class Database:
    """Starts the embedded server if needed, migrates, and owns the connection pool."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedded: EmbeddedPostgres | None = None
        self._pool: AsyncConnectionPool | None = None
        self.url: str | None = None

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise DatabaseUnavailable("database pool is not open")
        return self._pool

    async def resolve_url(self) -> str:
        """The configured URL, or the embedded server's after starting it."""
        if self.url is None:
            external = self._settings.effective_database_url
            if external:
                self.url = external
            else:
                self._embedded = EmbeddedPostgres(self._settings.data_dir)
                self.url = await asyncio.to_thread(self._embedded.start)
        return self.url

    async def start(self, *, run_migrations: bool = True) -> None:
        """Resolve the database, apply migrations, and open the pool without blocking on it."""
        url = await self.resolve_url()
        if run_migrations:
            try:
                applied = await migrate.upgrade(url)
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(f"cannot reach the database: {exc}") from exc
            for mig in applied:
                log.info("migration applied", extra={"version": mig.version, "migration": mig.name})
        self._pool = create_pool(url, self._settings.db)
        await self._pool.open(wait=False)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None

    async def health(self, timeout_s: float = 2.0) -> DbHealth:
        """Can we run a query, and is every migration applied?"""
        try:
            async with self.pool.connection(timeout=timeout_s) as conn:
                await conn.execute("SELECT 1")
                states = await migrate.status(conn)
        except (PoolTimeout, psycopg.Error, DatabaseUnavailable) as exc:
            return DbHealth(reachable=False, error=type(exc).__name__)
        return DbHealth(
            reachable=True,
            pending_migrations=[
                f"{s.version:04d}_{s.name}" for s in states if s.applied_at is None
            ],
            changed_migrations=[f"{s.version:04d}_{s.name}" for s in states if s.changed],
        )
