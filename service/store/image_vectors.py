"""Imaging embeddings in pgvector: images (labelled references and archive history) and their
embedding per model version; the nearest labelled references of a query (content), the nearest
images of *other* patients (near-duplicates) and of the same patient (priors). One partial HNSW
cosine index per model version, with iterative scans so a filter never returns fewer than k."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import Vector
from psycopg import sql

Source = Literal["reference", "archive", "verification"]

EF_SEARCH = 200  # HNSW candidate list (pgvector's default is 40): filtered scans keep k
MAX_SCAN_TUPLES = 20_000  # tuples an iterative scan may visit before it gives up
CANDIDATES_PER_MATCH = 4  # relaxed-order scans: fetch this many per match, then order exactly
MIN_CANDIDATES = 40


@dataclass(frozen=True)
class ImageRecord:
    """One frame of one instance, with what it is of (labels) and its model input canvas."""

    sop_uid: str
    series_uid: str | None
    study_uid: str
    patient_key: str  # opaque key of the patient identity, never the MRN in clear
    frame: int
    canvas_png: bytes
    source: Source
    modality: str | None = None
    body_part: str | None = None  # DICOM BodyPartExamined defined term
    laterality: str | None = None  # R, L, B, U
    view: str | None = None  # free view label of a reference (PA, lateral, axial...)
    labelled: bool = False
    verification_id: str | None = None


@dataclass(frozen=True)
class ImageNeighbour:
    """A stored image near a query, with its labels and cosine distance."""

    record_id: int
    sop_uid: str
    study_uid: str
    frame: int
    modality: str | None
    body_part: str | None
    laterality: str | None
    labelled: bool
    source: str
    distance: float


def _index_name(model_version: str) -> str:
    return "image_embedding_hnsw_" + hashlib.sha256(model_version.encode()).hexdigest()[:12]


def _vec(dim: int) -> sql.Composable:
    return sql.SQL("(embedding::vector({}))").format(sql.Literal(dim))


async def ensure_index(conn: psycopg.AsyncConnection, model_version: str, dim: int) -> None:
    """Create the model version's partial HNSW index if it does not exist yet."""
    await conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON image_embedding USING hnsw ({} vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64) WHERE model_version = {}"
        ).format(sql.Identifier(_index_name(model_version)), _vec(dim), sql.Literal(model_version))
    )


async def add(
    conn: psycopg.AsyncConnection,
    records: Sequence[ImageRecord],
    model_version: str,
    embeddings: np.ndarray,
) -> int:
    """Store images and their embeddings under `model_version` (labels of an image stored
    again are updated); returns how many embeddings were written."""
    if not records:
        return 0
    if len(records) != len(embeddings):
        raise ValueError("one embedding per record")
    ids: list[int] = []
    for r in records:
        cur = await conn.execute(
            """INSERT INTO image_record (sop_uid, series_uid, study_uid, patient_key, frame,
                 modality, body_part, laterality, view, labelled, source, verification_id, canvas)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::uuid, %s)
               ON CONFLICT (sop_uid, frame, patient_key, source,
                            coalesce(verification_id, '00000000-0000-0000-0000-000000000000'::uuid))
               DO UPDATE SET modality = EXCLUDED.modality, body_part = EXCLUDED.body_part,
                             laterality = EXCLUDED.laterality, view = EXCLUDED.view,
                             labelled = EXCLUDED.labelled
               RETURNING id""",
            (
                r.sop_uid, r.series_uid, r.study_uid, r.patient_key, r.frame, r.modality,
                r.body_part, r.laterality, r.view, r.labelled, r.source, r.verification_id,
                r.canvas_png,
            ),
        )  # fmt: skip
        row = await cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
    await add_embeddings(conn, model_version, ids, embeddings)
    return len(ids)


async def add_embeddings(
    conn: psycopg.AsyncConnection, model_version: str, record_ids: Sequence[int], vectors: Any
) -> int:
    """Write (or replace) the embeddings of stored images under one model version."""
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO image_embedding (record_id, model_version, patient_key, labelled,
                 reference, embedding)
               SELECT id, %s, patient_key, labelled, source = 'reference', %s
                 FROM image_record WHERE id = %s
               ON CONFLICT (record_id, model_version) DO UPDATE
                 SET embedding = EXCLUDED.embedding, labelled = EXCLUDED.labelled""",
            [
                (model_version, Vector(np.asarray(v, dtype=np.float32)), rid)
                for rid, v in zip(record_ids, vectors, strict=True)
            ],
        )
    await ensure_index(conn, model_version, int(np.asarray(vectors[0]).shape[0]))
    return len(record_ids)


async def _nearest(
    conn: psycopg.AsyncConnection,
    model_version: str,
    query: np.ndarray,
    where: sql.Composable,
    args: dict[str, Any],
    *,
    k: int,
    max_distance: float | None,
) -> list[ImageNeighbour]:
    dim = int(query.shape[0])
    statement = sql.SQL(
        """WITH near AS MATERIALIZED (
             SELECT record_id, {vec} <=> %(q)s::vector({dim}) AS distance
               FROM image_embedding
              WHERE model_version = %(version)s AND {where}
              ORDER BY {vec} <=> %(q)s::vector({dim})
              LIMIT %(candidates)s)
           SELECT r.id, r.sop_uid, r.study_uid, r.frame, r.modality, r.body_part, r.laterality,
                  r.labelled, r.source, near.distance
             FROM near JOIN image_record r ON r.id = near.record_id
            WHERE %(max)s::float8 IS NULL OR near.distance <= %(max)s::float8
            ORDER BY near.distance, r.id LIMIT %(k)s"""
    ).format(vec=_vec(dim), dim=sql.Literal(dim), where=where)
    params = {
        "q": Vector(np.asarray(query, dtype=np.float32)),
        "version": model_version,
        "candidates": max(k * CANDIDATES_PER_MATCH, MIN_CANDIDATES),
        "k": k,
        "max": max_distance,
        **args,
    }
    async with conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true),"
            " set_config('hnsw.max_scan_tuples', %s, true)",
            (str(max(EF_SEARCH, k)), str(MAX_SCAN_TUPLES)),
        )
        cur = await conn.execute(statement, params)
        rows = await cur.fetchall()
    return [
        ImageNeighbour(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            int(r[3]),
            r[4],
            r[5],
            r[6],
            bool(r[7]),
            str(r[8]),
            float(r[9]),
        )  # fmt: skip
        for r in rows
    ]


async def nearest_labelled(
    conn: psycopg.AsyncConnection, model_version: str, query: np.ndarray, *, k: int
) -> list[ImageNeighbour]:
    """The k labelled references nearest the query (what the pixels look like)."""
    where = sql.SQL("labelled")
    return await _nearest(conn, model_version, query, where, {}, k=k, max_distance=None)


async def nearest_other_patients(
    conn: psycopg.AsyncConnection,
    model_version: str,
    query: np.ndarray,
    patient_key: str,
    *,
    k: int,
    max_distance: float,
) -> list[ImageNeighbour]:
    """Up to k images of other patients within `max_distance` (near-duplicates), nearest first.
    Library references are not patients' images and are left out."""
    where = sql.SQL("patient_key <> %(patient)s AND NOT reference")
    return await _nearest(
        conn, model_version, query, where, {"patient": patient_key}, k=k, max_distance=max_distance
    )


async def nearest_same_patient(
    conn: psycopg.AsyncConnection,
    model_version: str,
    query: np.ndarray,
    patient_key: str,
    *,
    exclude_study_uid: str,
    k: int,
) -> list[ImageNeighbour]:
    """The k nearest images of this patient's other studies (priors)."""
    where = sql.SQL(
        "patient_key = %(patient)s AND record_id NOT IN"
        " (SELECT id FROM image_record WHERE study_uid = %(study)s)"
    )
    args = {"patient": patient_key, "study": exclude_study_uid}
    return await _nearest(conn, model_version, query, where, args, k=k, max_distance=None)


async def records_without(
    conn: psycopg.AsyncConnection, model_version: str, *, limit: int = 256
) -> list[tuple[int, bytes]]:
    """(record id, canvas PNG) of images not yet embedded under `model_version` (re-embed)."""
    cur = await conn.execute(
        "SELECT r.id, r.canvas FROM image_record r WHERE NOT EXISTS (SELECT 1 FROM"
        " image_embedding e WHERE e.record_id = r.id AND e.model_version = %s)"
        " ORDER BY r.id LIMIT %s",
        (model_version, limit),
    )
    return [(int(r[0]), bytes(r[1])) for r in await cur.fetchall()]


async def forget_study(
    conn: psycopg.AsyncConnection, study_uid: str, *, source: Source | None = None
) -> int:
    """Delete a study's images (of one source, or all) and their embeddings."""
    query = "DELETE FROM image_record WHERE study_uid = %s"
    args: list[Any] = [study_uid]
    if source is not None:
        query += " AND source = %s"
        args.append(source)
    cur = await conn.execute(query.encode(), args)
    return cur.rowcount
