"""Plain-SQL migrations (`migrations/NNNN_name.sql`) applied in order, each in its own
transaction, under an advisory lock so concurrent upgraders each see every file run once."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path

import psycopg

from service.store.pool import connect

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Arbitrary constant shared by every Verity process: "verity" in ASCII.
ADVISORY_LOCK_ID = 0x766572697479
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migration IS 'Migrations applied by `verity db upgrade`, one row per file.';
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: datetime | None
    changed: bool  # applied, but the file differs from what was applied


@lru_cache(maxsize=8)
def discover(directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    """The migration files in version order; refuses duplicate versions. Read once per process:
    the readiness probe asks for them on every call, and the files do not change under it."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        version = int(m.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version:04d}")
        found[version] = Migration(version, m.group(2), path)
    return tuple(found[v] for v in sorted(found))


async def upgrade(url: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; returns those this call applied."""
    migrations = discover(directory)
    applied_now: list[Migration] = []
    # No statement timeout: a migration, or waiting for another upgrader's lock, may take long.
    async with await connect(url, vector_types=False, statement_timeout_ms=0) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            await conn.execute(_CREATE_TABLE)
            done = await _applied(conn)
            for mig in migrations:
                if mig.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(mig.path.read_text().encode())
                    await conn.execute(
                        "INSERT INTO schema_migration (version, name, sha256) VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.sha256),
                    )
                applied_now.append(mig)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return applied_now


async def status(
    conn: psycopg.AsyncConnection, directory: Path = MIGRATIONS_DIR
) -> list[MigrationState]:
    """Every known migration with when it was applied (None = pending)."""
    exists = await (await conn.execute("SELECT to_regclass('schema_migration')")).fetchone()
    rows: dict[int, tuple[datetime, str]] = {}
    if exists and exists[0] is not None:
        cur = await conn.execute("SELECT version, applied_at, sha256 FROM schema_migration")
        rows = {v: (at, sha) for v, at, sha in await cur.fetchall()}
    states = []
    for mig in discover(directory):
        at, sha = rows.get(mig.version, (None, None))
        states.append(
            MigrationState(mig.version, mig.name, at, sha is not None and sha != mig.sha256)
        )
    return states


async def _applied(conn: psycopg.AsyncConnection) -> set[int]:
    cur = await conn.execute("SELECT version FROM schema_migration")
    return {row[0] for row in await cur.fetchall()}
