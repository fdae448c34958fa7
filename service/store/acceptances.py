"""Dispensing photos accepted as reference views of a product (reference_acceptance): who
accepted which photo of which verification for which product, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class Acceptance:
    id: int
    verification_id: str
    image_name: str
    product_id: str
    reference_image_id: int | None
    accepted_by: str
    created_at: datetime


_FIELDS = """id, verification_id::text, image_name, product_id, reference_image_id, accepted_by,
             created_at"""


async def insert(
    conn: psycopg.AsyncConnection,
    verification_id: str,
    image_name: str,
    product_id: str,
    reference_image_id: int,
    accepted_by: str,
) -> tuple[Acceptance, bool]:
    """Record the acceptance once per photo; (the acceptance, whether this call made it)."""
    async with conn.cursor(row_factory=class_row(Acceptance)) as cur:
        await cur.execute(
            f"""INSERT INTO reference_acceptance (verification_id, image_name, product_id,
                    reference_image_id, accepted_by)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (verification_id, image_name) DO NOTHING
                RETURNING {_FIELDS}""".encode(),
            (verification_id, image_name, product_id, reference_image_id, accepted_by),
        )
        made = await cur.fetchone()
        if made is not None:
            return made, True
        found = await get(conn, verification_id, image_name)
        assert found is not None  # the conflicting row exists in this snapshot
        return found, False


async def get(
    conn: psycopg.AsyncConnection, verification_id: str, image_name: str
) -> Acceptance | None:
    async with conn.cursor(row_factory=class_row(Acceptance)) as cur:
        await cur.execute(
            f"""SELECT {_FIELDS} FROM reference_acceptance
                WHERE verification_id = %s AND image_name = %s""".encode(),
            (verification_id, image_name),
        )
        return await cur.fetchone()


async def for_verification(conn: psycopg.AsyncConnection, verification_id: str) -> list[Acceptance]:
    async with conn.cursor(row_factory=class_row(Acceptance)) as cur:
        await cur.execute(
            f"""SELECT {_FIELDS} FROM reference_acceptance WHERE verification_id = %s
                ORDER BY image_name""".encode(),
            (verification_id,),
        )
        return await cur.fetchall()
