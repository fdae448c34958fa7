"""The labelled images of the imaging reference library, for people: counts per label and
model version, and a paginated list. The images and their embeddings are written and searched
by `image_vectors`; this module only reads them (and removes one study's references)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

LIBRARY_SOURCES = ("reference", "archive")  # labelled images of these sources are references


@dataclass(frozen=True)
class LabelCount:
    """How many labelled images of one label are embedded under one model version."""

    source: str
    modality: str
    body_part: str
    laterality: str | None
    view: str | None
    model_version: str | None  # None: images not embedded under any version yet
    images: int


@dataclass(frozen=True)
class ReferenceImage:
    """One labelled image (a frame of an instance) and the model versions it is embedded under."""

    record_id: int
    source: str
    study_uid: str
    series_uid: str | None
    sop_uid: str
    frame: int
    modality: str
    body_part: str
    laterality: str | None
    view: str | None
    model_versions: list[str]
    created_at: datetime


def _filters(
    source: str | None, modality: str | None, body_part: str | None
) -> tuple[str, list[Any]]:
    where = ["r.labelled", "r.source = ANY(%s)"]
    args: list[Any] = [[source] if source else list(LIBRARY_SOURCES)]
    if modality:
        where.append("r.modality = %s")
        args.append(modality)
    if body_part:
        where.append("r.body_part = %s")
        args.append(body_part)
    return " AND ".join(where), args


async def label_counts(
    conn: psycopg.AsyncConnection,
    *,
    source: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
) -> list[LabelCount]:
    """Labelled images per (source, label, model version), most common label first."""
    where, args = _filters(source, modality, body_part)
    cur = await conn.execute(
        f"""SELECT r.source, r.modality, r.body_part, r.laterality, r.view, e.model_version,
                   count(*) AS images
              FROM image_record r LEFT JOIN image_embedding e ON e.record_id = r.id
             WHERE {where}
             GROUP BY 1, 2, 3, 4, 5, 6
             ORDER BY images DESC, 1, 2, 3, 4 NULLS FIRST, 5 NULLS FIRST, 6 NULLS FIRST""",
        args,
    )
    return [LabelCount(*row) for row in await cur.fetchall()]


async def list_images(
    conn: psycopg.AsyncConnection,
    *,
    source: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[ReferenceImage]]:
    """(total, one page) of labelled images, newest first."""
    where, args = _filters(source, modality, body_part)
    cur = await conn.execute(f"SELECT count(*) FROM image_record r WHERE {where}", args)
    row = await cur.fetchone()
    total = int(row[0]) if row else 0
    cur = await conn.execute(
        f"""SELECT r.id, r.source, r.study_uid, r.series_uid, r.sop_uid, r.frame, r.modality,
                   r.body_part, r.laterality, r.view,
                   coalesce(array_agg(e.model_version ORDER BY e.model_version)
                            FILTER (WHERE e.model_version IS NOT NULL), '{{}}'),
                   r.created_at
              FROM image_record r LEFT JOIN image_embedding e ON e.record_id = r.id
             WHERE {where}
             GROUP BY r.id
             ORDER BY r.created_at DESC, r.id DESC
             LIMIT %s OFFSET %s""",
        [*args, limit, offset],
    )
    rows = await cur.fetchall()
    return total, [
        ReferenceImage(
            int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8], r[9], list(r[10]), r[11]
        )
        for r in rows
    ]
