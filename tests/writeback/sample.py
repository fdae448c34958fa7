"""Sample outbox rows (DetectedIssue + Provenance), shared by the relay tests and bench_relay."""

from __future__ import annotations

import uuid

from psycopg_pool import AsyncConnectionPool

from service.writeback.relay import queue_write


async def enqueue_issues(pool: AsyncConnectionPool, patient: str, n: int, system: str) -> list[str]:
    """Queue `n` DetectedIssue + Provenance writes for `patient`; returns their identifiers."""
    values = [str(uuid.uuid4()) for _ in range(n)]
    async with pool.connection() as conn, conn.transaction():
        for v in values:
            issue = {
                "resourceType": "DetectedIssue",
                "status": "preliminary",
                "patient": {"reference": patient},
                "detail": "AI-assisted check; a pharmacist must confirm.",
            }
            prov = {
                "resourceType": "Provenance",
                "recorded": "2026-01-01T00:00:00Z",
                "agent": [{"who": {"display": "Verity AI"}}],
            }
            assert await queue_write(conn, issue, prov, system, v) is not None
    return values
