"""The transactional outbox (table `outbox`, migration 0004): the only SQL for it lives here.

Rows are enqueued inside the caller's transaction, next to the verification they belong to.
A relay claims due rows with `FOR UPDATE SKIP LOCKED` and leases them by pushing
`next_attempt_at` forward in the same short transaction, so no connection is held while the
FHIR server is called and a crashed relay's rows come due again when the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_COLUMNS = """id, verification_id::text, resource_type, identifier_system, identifier_value,
              payload, status, attempts, next_attempt_at, last_error, fhir_location,
              created_at, delivered_at"""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    verification_id: str | None
    resource_type: str
    identifier_system: str
    identifier_value: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    fhir_location: str | None
    created_at: datetime
    delivered_at: datetime | None


async def enqueue(
    conn: psycopg.AsyncConnection,
    *,
    resource_type: str,
    identifier_system: str,
    identifier_value: str,
    payload: dict[str, Any],
    verification_id: str | None = None,
) -> int | None:
    """Queue a transaction Bundle in the caller's transaction; None if already queued."""
    cur = await conn.execute(
        """INSERT INTO outbox (verification_id, resource_type, identifier_system,
                               identifier_value, payload)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (identifier_system, identifier_value) DO NOTHING
           RETURNING id""",
        (verification_id, resource_type, identifier_system, identifier_value, Jsonb(payload)),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def claim_due(
    conn: psycopg.AsyncConnection, *, limit: int, lease_s: float
) -> list[OutboxRow]:
    """Lock due rows other relays are not holding, count the attempt, lease them, commit."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""WITH due AS (
                    SELECT id FROM outbox
                    WHERE status = 'pending' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED)
                UPDATE outbox o
                   SET attempts = o.attempts + 1,
                       next_attempt_at = now() + make_interval(secs => %s)
                  FROM due WHERE o.id = due.id
                RETURNING {_COLUMNS.replace("id,", "o.id,", 1)}""",
            (limit, lease_s),
        )
        rows = await cur.fetchall()
    return sorted((OutboxRow(**r) for r in rows), key=lambda r: r.id)


async def mark_delivered(conn: psycopg.AsyncConnection, row_id: int, location: str | None) -> None:
    """The FHIR server accepted the Bundle."""
    await conn.execute(
        """UPDATE outbox SET status = 'delivered', delivered_at = now(), fhir_location = %s,
                  last_error = NULL
           WHERE id = %s AND status = 'pending'""",
        (location, row_id),
    )


async def mark_failed(
    conn: psycopg.AsyncConnection, row_id: int, error: str, retry_in_s: float
) -> None:
    """A transient failure: try again after `retry_in_s`."""
    await conn.execute(
        """UPDATE outbox SET last_error = %s, next_attempt_at = now() + make_interval(secs => %s)
           WHERE id = %s AND status = 'pending'""",
        (error[:1000], retry_in_s, row_id),
    )


async def mark_dead(conn: psycopg.AsyncConnection, row_id: int, error: str) -> None:
    """Give up: permanent rejection or too many attempts. Visible in `verity outbox status`."""
    await conn.execute(
        "UPDATE outbox SET status = 'dead', last_error = %s WHERE id = %s AND status = 'pending'",
        (error[:1000], row_id),
    )


async def retry(conn: psycopg.AsyncConnection, row_id: int) -> bool:
    """Put a dead (or waiting) row back in the queue, due now, attempts reset."""
    cur = await conn.execute(
        """UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),
                  last_error = NULL
           WHERE id = %s AND status IN ('dead', 'pending')""",
        (row_id,),
    )
    return cur.rowcount == 1


async def get(conn: psycopg.AsyncConnection, row_id: int) -> OutboxRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = %s", (row_id,))
        r = await cur.fetchone()
    return OutboxRow(**r) if r else None


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[str, int]
    oldest_pending_s: float | None
    dead: list[OutboxRow]


async def status(conn: psycopg.AsyncConnection, *, dead_limit: int = 50) -> OutboxStatus:
    """Counts per status, age of the oldest pending row, and the newest dead letters."""
    cur = await conn.execute("SELECT status, count(*) FROM outbox GROUP BY status")
    counts = {"pending": 0, "delivered": 0, "dead": 0}
    counts.update({str(s): int(n) for s, n in await cur.fetchall()})
    cur = await conn.execute(
        """SELECT extract(epoch FROM now() - min(created_at))::float8
           FROM outbox WHERE status = 'pending'"""
    )
    oldest = (await cur.fetchone() or (None,))[0]
    async with conn.cursor(row_factory=dict_row) as dcur:
        await dcur.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY id DESC LIMIT %s",
            (dead_limit,),
        )
        dead = [OutboxRow(**r) for r in await dcur.fetchall()]
    return OutboxStatus(counts, float(oldest) if oldest is not None else None, dead)


async def for_verification(conn: psycopg.AsyncConnection, verification_id: str) -> list[OutboxRow]:
    """Every write queued for one verification (its own, then a decision's), oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE verification_id = %s ORDER BY id",
            (verification_id,),
        )
        return [OutboxRow(**r) for r in await cur.fetchall()]
