"""People's decisions on verifications (table `verification_decision`, migration 0009), with
the delivery state of the EHR write each one queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True)
class NewDecision:
    id: str
    verification_id: str
    action: str
    code: str
    reason: str | None
    author_ref: str
    author_display: str | None
    caller_client_id: str | None
    outbox_id: int | None


@dataclass(frozen=True)
class DecisionRow:
    id: str
    verification_id: str
    created_at: datetime
    action: str
    code: str
    reason: str | None
    author_ref: str
    author_display: str | None
    outbox_id: int | None
    delivery: str  # pending | delivered | dead | not_written


_SELECT = """SELECT d.id::text, d.verification_id::text, d.created_at, d.action, d.code, d.reason,
                    d.author_ref, d.author_display, d.outbox_id,
                    coalesce(o.status, 'not_written') AS delivery
             FROM verification_decision d LEFT JOIN outbox o ON o.id = d.outbox_id"""


async def insert(conn: psycopg.AsyncConnection, d: NewDecision) -> bool:
    """False when the verification already has a decision (the first one stands)."""
    cur = await conn.execute(
        """INSERT INTO verification_decision (id, verification_id, action, code, reason,
               author_ref, author_display, caller_client_id, outbox_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (verification_id) DO NOTHING""",
        (d.id, d.verification_id, d.action, d.code, d.reason, d.author_ref, d.author_display,
         d.caller_client_id, d.outbox_id),
    )  # fmt: skip
    return cur.rowcount == 1


async def get(conn: psycopg.AsyncConnection, verification_id: str) -> DecisionRow | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"{_SELECT} WHERE d.verification_id = %s", (verification_id,))
    row = await cur.fetchone()
    return DecisionRow(**row) if row else None
