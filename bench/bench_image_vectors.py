"""Imaging near-duplicate search at scale on a throwaway embedded PostgreSQL, through the query
the product runs (`image_vectors.nearest_other_patients`: the k nearest images of *other*
patients, HNSW + iterative scan): load and HNSW build time, table and index size, p50/p99 query
latency and recall@10 against exact search with the same patient filter, next to the same
query without the index. Sizes whose extrapolated build would not finish within the budget are
printed with the measured rate and "not run".

    python bench/bench_image_vectors.py --sizes 10000,100000,1000000,10000000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

from service.store import image_vectors, migrate
from service.store.embedded import throwaway_database

MODEL = "bench-image@1"
IMAGES_PER_PATIENT = 4  # a patient's archive: a few studies of a few images
EXAMS = 60  # clusters: kinds of image (modality x body part x view) that look alike
K = 10


def synthetic(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors shaped like an imaging archive: every image belongs to one of EXAMS
    look-alike clusters, a patient's images are near each other; returns vectors, patient."""
    n_patients = max(2, n // IMAGES_PER_PATIENT)
    exams = rng.standard_normal((EXAMS, dim), dtype=np.float32)
    exam_of = rng.integers(0, EXAMS, n_patients)
    patients = exams[exam_of] + 0.6 * rng.standard_normal((n_patients, dim), dtype=np.float32)
    owner = np.minimum(np.arange(n) // IMAGES_PER_PATIENT, n_patients - 1)
    data = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 50_000):  # in chunks: the noise of 1M x 1280 would double the peak
        e = min(n, s + 50_000)
        data[s:e] = patients[owner[s:e]] + 0.5 * rng.standard_normal((e - s, dim), np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data, owner


async def load(conn: psycopg.AsyncConnection, data: np.ndarray, owner: np.ndarray) -> None:
    """COPY the archive rows and their embeddings (no index yet: HNSW is built after)."""
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY image_record (id, sop_uid, study_uid, patient_key, frame, source, canvas)"
            " FROM STDIN"
        ) as copy:
            for i in range(len(data)):
                p = int(owner[i])
                await copy.write_row((i + 1, f"1.2.{i}", f"1.3.{p}", f"pk{p}", 0, "archive", b""))
        async with cur.copy(
            "COPY image_embedding (record_id, model_version, patient_key, labelled, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "text", "bool", "vector"])
            for i, vec in enumerate(data):
                await copy.write_row((i + 1, MODEL, f"pk{int(owner[i])}", False, vec))


def exact_other_patients(data: np.ndarray, owner: np.ndarray, q: np.ndarray, patient: int) -> set:
    """Record ids of the K nearest images of other patients, exactly (numpy)."""
    sims = data @ q
    sims[owner == patient] = -np.inf
    top = np.argpartition(-sims, K)[:K]
    return {int(i) + 1 for i in top}


async def exact_sql_ms(
    conn: psycopg.AsyncConnection, queries: list[tuple[np.ndarray, int]]
) -> float:
    """The same product query with index scans off (a sequential scan): p50 ms."""
    times = []
    for q, patient in queries:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_indexscan = off")
            t0 = time.perf_counter()
            await image_vectors.nearest_other_patients(
                conn, MODEL, q, f"pk{patient}", k=K, max_distance=2.0
            )
            times.append((time.perf_counter() - t0) * 1000)
    return float(statistics.median(times))


async def run_size(url: str, n: int, dim: int, n_queries: int) -> float:
    """Benchmark one size; returns the measured build rate (vectors per second, load + HNSW)."""
    rng = np.random.default_rng(n)
    t0 = time.perf_counter()
    data, owner = synthetic(n, dim, rng)
    gen_s = time.perf_counter() - t0
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await register_vector_async(conn)
        await conn.execute("TRUNCATE image_record CASCADE")
        await conn.execute(f'DROP INDEX IF EXISTS "{image_vectors._index_name(MODEL)}"')
        t0 = time.perf_counter()
        await load(conn, data, owner)
        load_s = time.perf_counter() - t0
        await conn.execute("SET maintenance_work_mem = '8GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: leader + 1
        t0 = time.perf_counter()
        await image_vectors.ensure_index(conn, MODEL, dim)
        build_s = time.perf_counter() - t0
        await conn.execute("ANALYZE image_embedding")
        sizes = await (
            await conn.execute(
                "SELECT pg_total_relation_size('image_embedding') - pg_relation_size(%s),"
                " pg_relation_size(%s), pg_total_relation_size('image_record')",
                (image_vectors._index_name(MODEL),) * 2,
            )
        ).fetchone()
        assert sizes is not None
        lat, recalls, queries = [], [], []
        for _ in range(n_queries):
            # A near-duplicate of a stored image, asked for by a patient who is not its owner.
            src = int(rng.integers(n))
            q = data[src] + (0.3 / np.sqrt(dim)) * rng.standard_normal(dim, dtype=np.float32)
            q /= np.linalg.norm(q)
            patient = int(rng.integers(owner.max() + 1))
            queries.append((q, patient))
            t0 = time.perf_counter()
            got = await image_vectors.nearest_other_patients(
                conn, MODEL, q, f"pk{patient}", k=K, max_distance=2.0
            )
            lat.append((time.perf_counter() - t0) * 1000)
            assert all(int(owner[g.record_id - 1]) != patient for g in got), "own image returned"
            recalls.append(
                len(exact_other_patients(data, owner, q, patient) & {g.record_id for g in got}) / K
            )
        lat.sort()
        exact_ms = await exact_sql_ms(conn, queries[:20])
    rate = n / (load_s + build_s)
    print(
        f"{n:>10,} vectors x {dim}: generate {gen_s:.1f} s, load {load_s:.1f} s, HNSW build"
        f" {build_s:.1f} s ({rate:,.0f} vectors/s load+build)"
    )
    print(
        f"{'':>12}table {sizes[0] / 2**20:,.0f} MiB (+ image_record {sizes[2] / 2**20:,.0f} MiB),"
        f" HNSW index {sizes[1] / 2**20:,.0f} MiB (m=16, ef_construction=64)"
    )
    print(
        f"{'':>12}nearest_other_patients k={K}: HNSW p50 {statistics.median(lat):.2f} ms,"
        f" p99 {lat[int(0.99 * (len(lat) - 1))]:.2f} ms, recall@{K} {np.mean(recalls):.3f}"
        f" (exact, filtered); sequential scan p50 {exact_ms:.1f} ms",
        flush=True,
    )
    return rate


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000,10000000")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--budget-s", type=float, default=900, help="run a size only if its extrapolated load and"
        " build (from the last measured rate, assumed to slow as n log n) fits in this",
    )  # fmt: skip
    args = ap.parse_args()
    async with throwaway_database("verity-bench-") as url:
        await migrate.upgrade(url)
        rate: float | None = None
        last_n = 0
        for n in sorted(int(s) for s in args.sizes.split(",")):
            if rate is not None:
                expected_s = n / rate * np.log(n) / np.log(last_n)
                if expected_s > args.budget_s:
                    print(
                        f"{n:>10,} vectors x {args.dim}: not run: at the measured"
                        f" {rate:,.0f} vectors/s (n log n) load + build would take about"
                        f" {expected_s / 60:,.0f} min, over the {args.budget_s / 60:.0f} min"
                        f" budget; memory for the vectors alone {n * args.dim * 4 / 2**30:.1f} GiB"
                    )
                    continue
            rate = await run_size(url, n, args.dim, args.queries)
            last_n = n


if __name__ == "__main__":
    asyncio.run(main())
