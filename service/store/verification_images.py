"""Pictures kept with a verification (photos as submitted, pills as cropped, imaging
thumbnails), written in the transaction of its audit row and read back for the people who
review it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from service.errors import RouteNotFound


@dataclass(frozen=True)
class StoredImage:
    name: str  # photo-N, pill-N, image-N (the table's CHECK says the form)
    media_type: str  # image/png, image/jpeg or image/webp
    data: bytes


async def insert(
    conn: psycopg.AsyncConnection, verification_id: str, images: Iterable[StoredImage]
) -> int:
    """Keep the images of one verification once (a retried write adds nothing)."""
    rows = [(verification_id, i.name, i.media_type, i.data) for i in images]
    if not rows:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO verification_image (verification_id, name, media_type, data)
               VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            rows,
        )
        return max(cur.rowcount, 0)


async def names(conn: psycopg.AsyncConnection, verification_id: str) -> list[str]:
    """The names of the pictures kept for a verification, in name order."""
    cur = await conn.execute(
        "SELECT name FROM verification_image WHERE verification_id = %s ORDER BY name",
        (verification_id,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def get(conn: psycopg.AsyncConnection, verification_id: str, name: str) -> StoredImage:
    """One kept picture; not found when the verification kept none of that name."""
    cur = await conn.execute(
        """SELECT name, media_type, data FROM verification_image
           WHERE verification_id = %s AND name = %s""",
        (verification_id, name),
    )
    row = await cur.fetchone()
    if row is None:
        raise RouteNotFound("no such picture for this verification")
    return StoredImage(str(row[0]), str(row[1]), bytes(row[2]))
