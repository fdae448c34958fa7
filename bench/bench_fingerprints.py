"""Duplicate lookup at archive scale on a throwaway embedded PostgreSQL: N stored fingerprints
(COPY; random 256-bit codes, which is how different patients' images look to the fingerprint:
about 128 bits apart), planted near-duplicates of other patients, and each query patient's own
near images that the lookup must skip. Prints the HNSW build time, p50/p99 of
`fingerprints.nearest_other_patients` and the recall of the planted duplicates.

    python bench/bench_fingerprints.py --size 1000000 --queries 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
import psycopg

from service.config import ImagingSettings
from service.store import fingerprints, migrate
from service.store.embedded import throwaway_database
from service.vision.dicom.fingerprint import FINGERPRINT_BITS

OWN_NEAR = 5  # each query patient's own images near the query (e.g. neighbouring slices)


def _text(bits: np.ndarray) -> str:
    return bits.astype(np.uint8).tobytes().translate(bytes.maketrans(b"\0\1", b"01")).decode()


def _flip(bits: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    out = bits.copy()
    out[rng.choice(FINGERPRINT_BITS, n, replace=False)] ^= True
    return out


async def _load(conn: psycopg.AsyncConnection, size: int, queries: int, seed: int) -> list:
    """COPY `size` rows; returns (query fingerprint, query patient, planted sop, distance)."""
    rng = np.random.default_rng(seed)
    planted = []
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY image_fingerprint (sop_uid, study_uid, patient_key, frame, fingerprint, source)"
            " FROM STDIN"
        ) as copy:
            for q in range(queries):
                base = rng.random(FINGERPRINT_BITS) < 0.5
                await copy.write_row(
                    (f"dup.{q}", f"s.dup.{q}", f"other-{q}", 0, _text(base), "archive")
                )
                distance = int(rng.integers(0, 41))
                query = _flip(base, distance, rng)
                for j in range(
                    OWN_NEAR
                ):  # the query patient's own images, nearer than the duplicate
                    own = _flip(query, int(rng.integers(1, max(2, distance))), rng)
                    await copy.write_row(
                        (f"own.{q}.{j}", f"s.own.{q}", f"query-{q}", 0, _text(own), "archive")
                    )
                planted.append((_text(query), f"query-{q}", f"dup.{q}", distance))
            block = 10_000
            for start in range(queries * (OWN_NEAR + 1), size, block):
                codes = rng.random((min(block, size - start), FINGERPRINT_BITS)) < 0.5
                for i, code in enumerate(codes):
                    n = start + i
                    await copy.write_row(
                        (f"r.{n}", f"s.{n // 4}", f"p{n // 40}", 0, _text(code), "archive")
                    )
    return planted


async def run(url: str, size: int, queries: int, k: int, ef_search: int) -> None:
    await migrate.upgrade(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP INDEX image_fingerprint_hnsw_idx")  # built after the load
        t0 = time.perf_counter()
        planted = await _load(conn, size, queries, seed=11)
        print(f"COPY {size:,} fingerprints: {time.perf_counter() - t0:.1f} s")
        await conn.execute("SET maintenance_work_mem = '2GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")
        t0 = time.perf_counter()
        await conn.execute(
            "CREATE INDEX image_fingerprint_hnsw_idx ON image_fingerprint"
            " USING hnsw (fingerprint bit_hamming_ops)"
        )
        print(f"HNSW build: {time.perf_counter() - t0:.1f} s")
        cur = await conn.execute(
            "SELECT pg_size_pretty(pg_relation_size('image_fingerprint_hnsw_idx'))"
        )
        print(f"HNSW size: {(await cur.fetchone())[0]}")
        await conn.execute("ANALYZE image_fingerprint")
        limit = ImagingSettings().duplicate_max_distance
        times, hits, own_leaks = [], 0, 0
        for query, patient, sop, _distance in planted:
            t0 = time.perf_counter()
            found = await fingerprints.nearest_other_patients(
                conn, query, patient, k=k, max_distance=limit, ef_search=ef_search
            )
            times.append((time.perf_counter() - t0) * 1000)
            hits += any(m.sop_uid == sop for m in found)
            own_leaks += any(m.sop_uid.startswith("own.") for m in found)
        times.sort()
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print(
            f"nearest_other_patients k={k} ef_search={ef_search} max_distance={limit}:"
            f" p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms over {len(times)} queries"
        )
        print(
            f"recall of planted duplicates (0-40 bits): {hits / len(planted):.3f};"
            f" own images returned: {own_leaks}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--ef-search", type=int, default=fingerprints.EF_SEARCH)
    args = parser.parse_args()
    async with throwaway_database("verity-bench-fp-") as url:
        await run(url, args.size, args.queries, args.k, args.ef_search)


if __name__ == "__main__":
    asyncio.run(main())
