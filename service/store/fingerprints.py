"""Image fingerprints in PostgreSQL: store them, find the nearest images of *other* patients
(HNSW over bit Hamming distance, iterative scan so a patient's own images never crowd out the
others), and find a SOP Instance UID already stored under another patient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg

# HNSW candidate list: raised above pgvector's default 40 so that filtering out the patient's
# own images (iterative scan, relaxed order) still leaves k real neighbours.
EF_SEARCH = 200
# Tuples an iterative scan may visit before it gives up (pgvector's default is 20000).
MAX_SCAN_TUPLES = 20_000
# A relaxed-order scan emits candidates only roughly nearest first: take this many per match
# wanted (at least MIN_CANDIDATES), then order them exactly and keep k.
CANDIDATES_PER_MATCH = 4
MIN_CANDIDATES = 40

Source = Literal["archive", "verification"]


@dataclass(frozen=True)
class FingerprintRow:
    sop_uid: str
    series_uid: str | None
    study_uid: str
    patient_key: str  # opaque key of the patient identity, never the MRN in clear
    frame: int
    fingerprint: str  # '0'/'1' * FINGERPRINT_BITS
    source: Source
    verification_id: str | None = None


@dataclass(frozen=True)
class FingerprintMatch:
    sop_uid: str
    study_uid: str
    distance: int | None  # Hamming distance for 'pixels'; None for 'sop_uid'
    kind: Literal["pixels", "sop_uid"]


async def add(conn: psycopg.AsyncConnection, rows: Sequence[FingerprintRow]) -> int:
    """Store fingerprints in one statement; a row already stored is skipped. Returns rows added."""
    if not rows:
        return 0
    cur = await conn.execute(
        """INSERT INTO image_fingerprint
             (sop_uid, series_uid, study_uid, patient_key, frame, fingerprint, source,
              verification_id)
           SELECT s, se, st, p, f, fp::bit(256), src, v::uuid
             FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[],
                         %s::text[], %s::text[], %s::text[]) AS t(s, se, st, p, f, fp, src, v)
           ON CONFLICT DO NOTHING""",
        (
            [r.sop_uid for r in rows],
            [r.series_uid for r in rows],
            [r.study_uid for r in rows],
            [r.patient_key for r in rows],
            [r.frame for r in rows],
            [r.fingerprint for r in rows],
            [r.source for r in rows],
            [r.verification_id for r in rows],
        ),
    )
    return cur.rowcount


async def nearest_other_patients(
    conn: psycopg.AsyncConnection,
    fingerprint: str,
    patient_key: str,
    *,
    k: int,
    max_distance: int,
    ef_search: int = EF_SEARCH,
) -> list[FingerprintMatch]:
    """Up to k nearest stored images of other patients within `max_distance` bits, nearest
    first (the index finds candidates; the distance filter and order are exact)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true),"
            " set_config('hnsw.max_scan_tuples', %s, true)",
            (str(max(ef_search, k)), str(MAX_SCAN_TUPLES)),
        )
        cur = await conn.execute(
            """WITH near AS MATERIALIZED (
                 SELECT sop_uid, study_uid, fingerprint <~> %(fp)s::bit(256) AS distance
                   FROM image_fingerprint
                  WHERE patient_key <> %(patient)s
                  ORDER BY fingerprint <~> %(fp)s::bit(256)
                  LIMIT %(candidates)s)
               SELECT sop_uid, study_uid, distance::int FROM near
                WHERE distance <= %(max)s ORDER BY distance, sop_uid LIMIT %(k)s""",
            {
                "fp": fingerprint,
                "patient": patient_key,
                "candidates": max(k * CANDIDATES_PER_MATCH, MIN_CANDIDATES),
                "k": k,
                "max": max_distance,
            },
        )
        rows = await cur.fetchall()
    return [FingerprintMatch(str(r[0]), str(r[1]), int(r[2]), "pixels") for r in rows]


async def sop_uids_elsewhere(
    conn: psycopg.AsyncConnection, sop_uids: Sequence[str], patient_key: str
) -> list[FingerprintMatch]:
    """SOP Instance UIDs of this list already stored under another patient."""
    if not sop_uids:
        return []
    cur = await conn.execute(
        "SELECT DISTINCT sop_uid, study_uid FROM image_fingerprint"
        " WHERE sop_uid = ANY(%s) AND patient_key <> %s ORDER BY sop_uid, study_uid",
        (list(sop_uids), patient_key),
    )
    return [FingerprintMatch(str(r[0]), str(r[1]), None, "sop_uid") for r in await cur.fetchall()]


async def forget_study(
    conn: psycopg.AsyncConnection, study_uid: str, *, source: Source | None = None
) -> int:
    """Delete a study's fingerprints (of one source, or all); returns rows deleted."""
    if source is None:
        cur = await conn.execute("DELETE FROM image_fingerprint WHERE study_uid = %s", (study_uid,))
    else:
        cur = await conn.execute(
            "DELETE FROM image_fingerprint WHERE study_uid = %s AND source = %s",
            (study_uid, source),
        )
    return cur.rowcount
