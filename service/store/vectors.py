"""Embeddings in pgvector: one HNSW cosine index per model version (partial, with the model's
dimension); the shortlist of products nearest a query, and their views for exact ranking."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from psycopg import sql

from service.verify.pills.measurements import ReferenceView


def _index_name(model_version: str) -> str:
    return "reference_embedding_hnsw_" + hashlib.sha256(model_version.encode()).hexdigest()[:12]


def _vec_expr(dim: int) -> sql.Composable:
    return sql.SQL("(embedding::vector({}))").format(sql.Literal(dim))


async def ensure_index(
    conn: psycopg.AsyncConnection, model_version: str, dim: int, *, m: int = 16, ef: int = 64
) -> None:
    """Create the model version's HNSW index if it does not exist yet."""
    await conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON reference_embedding USING hnsw ({} vector_cosine_ops)"
            " WITH (m = {}, ef_construction = {}) WHERE model_version = {}"
        ).format(
            sql.Identifier(_index_name(model_version)),
            _vec_expr(dim),
            sql.Literal(m),
            sql.Literal(ef),
            sql.Literal(model_version),
        )
    )


async def add_views(
    conn: psycopg.AsyncConnection,
    image_id: int,
    product_id: str,
    model_version: str,
    views: Iterable[tuple[str, np.ndarray, dict[str, Any], str | None]],
) -> int:
    """Store (view, embedding, features, imprint_read) rows; replaces earlier ones."""
    rows = [
        (image_id, product_id, model_version, view, Vector(emb), json.dumps(feat), imprint)
        for view, emb, feat, imprint in views
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO reference_embedding
                 (image_id, product_id, model_version, view, embedding, features, imprint_read)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (image_id, model_version, view) DO UPDATE
                 SET embedding = EXCLUDED.embedding, features = EXCLUDED.features,
                     imprint_read = EXCLUDED.imprint_read""",
            rows,
        )
    return len(rows)


async def delete_model_version(conn: psycopg.AsyncConnection, model_version: str) -> int:
    cur = await conn.execute(
        "DELETE FROM reference_embedding WHERE model_version = %s", (model_version,)
    )
    return cur.rowcount


async def nearest_products(
    conn: psycopg.AsyncConnection,
    model_version: str,
    query: np.ndarray,
    *,
    views: int = 500,
) -> list[str]:
    """Distinct products among the `views` nearest reference views (ids only: a shortlist)."""
    dim = int(query.shape[0])
    query_sql = sql.SQL(
        "SELECT product_id, min(d) FROM (SELECT product_id, {} <=> %s::vector({}) AS d"
        " FROM reference_embedding WHERE model_version = {} ORDER BY d LIMIT %s) AS near"
        " GROUP BY product_id ORDER BY min(d)"
    ).format(_vec_expr(dim), sql.Literal(dim), sql.Literal(model_version))
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true)", (str(max(40, min(views, 1000))),)
        )
        cur = await conn.execute(query_sql, [Vector(query), views], binary=True)
        return [str(r[0]) for r in await cur.fetchall()]


async def enrolled_products(
    conn: psycopg.AsyncConnection, model_version: str, product_ids: Sequence[str]
) -> set[str]:
    """Which of these products have reference views under this model version."""
    cur = await conn.execute(
        "SELECT DISTINCT product_id FROM reference_embedding"
        " WHERE model_version = %s AND product_id = ANY(%s)",
        (model_version, list(product_ids)),
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def views_for_products(
    conn: psycopg.AsyncConnection, model_version: str, product_ids: Sequence[str] | None = None
) -> list[ReferenceView]:
    """All stored views of the given products (all products if None), for exact re-ranking."""
    query = (
        "SELECT product_id, image_id, view, embedding, features, imprint_read"
        " FROM reference_embedding WHERE model_version = %s"
    )
    args: list[Any] = [model_version]
    if product_ids is not None:
        query += " AND product_id = ANY(%s)"
        args.append(list(product_ids))
    cur = await conn.execute(
        query.encode() + b" ORDER BY product_id, image_id, view", args, binary=True
    )
    return [_to_view(r, model_version) for r in await cur.fetchall()]


def _to_view(row: Sequence[Any], model_version: str) -> ReferenceView:
    product_id, image_id, view, emb, features, imprint = row
    vec = emb.to_numpy() if isinstance(emb, Vector) else np.asarray(emb, dtype=np.float32)
    return ReferenceView(
        product_id=product_id,
        image_id=str(image_id),
        view=str(view),
        embedding=vec.astype(np.float32),
        features=features,
        imprint_read=imprint,
        model_version=model_version,
    )
