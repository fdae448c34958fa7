"""`store.pool.connect`: one connection outside the pool, configured as the pool's are, and
the only way the package opens one."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from pgvector import Vector

from service.config import DbSettings
from service.store.pool import connect

PACKAGE = Path(__file__).resolve().parents[2] / "service"


async def test_connect_applies_the_pool_configuration(db_url: str) -> None:
    settings = DbSettings(statement_timeout_ms=250)
    async with await connect(db_url, settings) as conn:
        assert conn.autocommit
        timeout = await (await conn.execute("SHOW statement_timeout")).fetchone()
        assert timeout == ("250ms",)
        name = await (await conn.execute("SHOW application_name")).fetchone()
        assert name == ("verity",)
        # pgvector types registered: a vector comes back as a Vector, not text.
        row = await (await conn.execute("SELECT '[1,2,3]'::vector")).fetchone()
        assert row is not None and isinstance(row[0], Vector)
        with pytest.raises(psycopg.errors.QueryCanceled):
            await conn.execute("SELECT pg_sleep(1)")


async def test_connect_for_migrations_has_no_statement_timeout_and_no_vector_lookup(
    make_database,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database("pool")  # no migrations: the vector type does not exist yet
    async with await connect(url, vector_types=False, statement_timeout_ms=0) as conn:
        timeout = await (await conn.execute("SHOW statement_timeout")).fetchone()
        assert timeout == ("0",)


def test_no_raw_async_connection_outside_the_helper() -> None:
    """Every connection the package opens outside the pool goes through store.pool.connect."""
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if path.name != "pool.py" and re.search(r"AsyncConnection\.connect\(", path.read_text())
    ]
    assert offenders == []
