"""The pictures kept with an imaging verification for the people who review it: windowed
thumbnails of the checked images (`verification_image`, names `image-N`, migration 0009)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

THUMBNAIL_PREFIX = "image"


async def add_thumbnails(
    conn: psycopg.AsyncConnection, verification_id: str, pngs: Sequence[bytes]
) -> int:
    """Keep the thumbnails as image-1..image-N (in the caller's transaction); a second call
    for the same verification keeps the first ones."""
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO verification_image (verification_id, name, media_type, data)
               VALUES (%s, %s, 'image/png', %s) ON CONFLICT DO NOTHING""",
            [(verification_id, f"{THUMBNAIL_PREFIX}-{n}", png)
             for n, png in enumerate(pngs, start=1)],
        )  # fmt: skip
    return len(pngs)


async def thumbnail(
    conn: psycopg.AsyncConnection, verification_id: str, number: int
) -> tuple[str, bytes] | None:
    """The media type and bytes of thumbnail `number` (1-based), or None."""
    cur = await conn.execute(
        """SELECT media_type, data FROM verification_image
            WHERE verification_id = %s::uuid AND name = %s""",
        (verification_id, f"{THUMBNAIL_PREFIX}-{number}"),
    )
    row = await cur.fetchone()
    return (str(row[0]), bytes(row[1])) if row is not None else None
