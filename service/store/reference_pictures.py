"""Reference images of the pill library as pictures for people: one product's first image, and
an image's bytes by id (what the review pages show beside a pill)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from service.errors import RouteNotFound


async def first_images(conn: psycopg.AsyncConnection, product_ids: Sequence[str]) -> dict[str, int]:
    """The first stored reference image (with pixels) of each product that has one."""
    cur = await conn.execute(
        """SELECT DISTINCT ON (product_id) product_id, id FROM reference_image
           WHERE product_id = ANY(%s) AND image IS NOT NULL ORDER BY product_id, id""",
        (list(product_ids),),
    )
    return {str(p): int(i) for p, i in await cur.fetchall()}


async def picture(conn: psycopg.AsyncConnection, image_id: int) -> tuple[str, bytes]:
    """(product id, image bytes) of one reference image; not found without pixels."""
    cur = await conn.execute(
        "SELECT product_id, image FROM reference_image WHERE id = %s AND image IS NOT NULL",
        (image_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise RouteNotFound("no such reference picture")
    return str(row[0]), bytes(row[1])
