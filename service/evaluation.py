"""`verity evaluate pills DIR`: the dataset protocol run through the product's own pipeline
(import, enrol, pgvector shortlist, fused ranking) on a throwaway embedded database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg

from service.config import Settings
from service.dataset import read_dataset
from service.errors import ClientError
from service.evaluate_pills import score_rows
from service.models.registry import ModelRegistry
from service.pipeline import PillService
from service.store import library, migrate
from service.store.embedded import throwaway_database
from service.store.pool import connect
from service.verify.records import Candidate, ProductInfo
from service.vision.engine import PillEngine
from service.vision.fusion_io import load_fusion


def build_service(settings: Settings) -> PillService:
    """Models loaded once, engine with the configured limits and thresholds."""
    registry = ModelRegistry(settings.models).load()
    engine = PillEngine(
        registry, settings.limits, settings.decision, load_fusion(settings.models.dir)
    )
    return PillService(engine, search=settings.search)


async def evaluate_pills(
    dataset_dir: Path, settings: Settings, *, details: bool = False
) -> dict[str, Any]:
    """Run the protocol; the user's library is never touched (a temporary database is used)."""
    t_start = time.perf_counter()
    dataset = read_dataset(dataset_dir)
    service = await asyncio.to_thread(build_service, settings)
    async with throwaway_database("verity-eval-") as url:
        await migrate.upgrade(url)
        async with await connect(url, settings.db) as conn:
            result = await _run(conn, service, dataset, details)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["model_version"] = service.model_version
    return result


async def _run(
    conn: psycopg.AsyncConnection, service: PillService, dataset: list[Any], details: bool
) -> dict[str, Any]:
    labels = {d.product.id: ProductInfo(d.product.id, d.product.clinical_drug) for d in dataset}
    enrolled: set[str] = set()
    for d in dataset:
        await library.upsert_product(conn, d.product)
        for path in d.references:
            await service.enrol(conn, d.product.id, path.read_bytes(), source=path.name)
            enrolled.add(d.product.id)
    rows: list[dict[str, Any]] = []
    for d in dataset:
        for path in d.queries:
            data = path.read_bytes()
            t0 = time.perf_counter()
            ranked: list[Candidate] = []
            error = None
            try:
                photo = await service.analyse(data)
                ranked = await service.rank(conn, photo.pills[0], crops=photo.crops[0])
            except ClientError as exc:
                error = exc.code
            rows.append({
                "query": f"{d.product.id}/{path.stem}", "product": d.product.id,
                "enrolled": d.product.id in enrolled, "ms": (time.perf_counter() - t0) * 1000,
                "error": error, "ranked": [c for c in ranked if c.product_id in enrolled],
            })  # fmt: skip
    return score_rows(rows, labels, {p: labels[p] for p in sorted(enrolled)}, details)
