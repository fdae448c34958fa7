"""Evaluation through the product's own code: one harness (a throwaway embedded database, per-query
timing, accept/reject rates) that runs a domain's protocol on its labelled dataset.

The pill protocol (`verity evaluate pills DIR`, ../shared/data/README.md): enrol each product
from its ref_*.jpg (else photo_1.jpg, then not a query) through the library workflow; rank every
other photo through the pgvector shortlist and the fused score; identification is top-1/top-5
over queries of enrolled products; verification pairs every query with every enrolled product
as "prescribed": MATCH is right iff same clinical drug. An imaging protocol plugs in the same
way (its own dataset, `prepare`, `ask` and `score`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import psycopg

from service.config import Settings
from service.dataset import DatasetProduct, read_dataset
from service.errors import ClientError
from service.pipeline import Connect, PillService, load_pill_service, product_ref, reuse
from service.store import migrate
from service.store.embedded import throwaway_database
from service.store.pool import connect
from service.verify.pills import interchangeable_group
from service.verify.results import Candidate, ProductRef
from service.workflows.library import enrol_products

Q = TypeVar("Q")
A = TypeVar("A")


@dataclass(frozen=True)
class Query(Generic[Q]):
    """One labelled query: its id for reports, the true answer's key, and its input."""

    key: str
    truth: str
    item: Q


class EvaluationProtocol(Protocol[Q, A]):
    """What a domain brings to the harness: its dataset, enrolment, one query, the scoring."""

    async def prepare(self, connect: Connect) -> None: ...

    def queries(self) -> Iterator[Query[Q]]: ...

    async def ask(self, connect: Connect, item: Q) -> A: ...

    def row(self, query: Query[Q], answer: A | None) -> dict[str, Any]: ...

    def score(self, rows: list[dict[str, Any]], details: bool) -> dict[str, Any]: ...


@asynccontextmanager
async def evaluation_database(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection]:
    """A migrated throwaway embedded PostgreSQL: the user's data is never touched."""
    async with throwaway_database("verity-eval-") as url:
        await migrate.upgrade(url)
        async with await connect(url, settings.db) as conn:
            yield conn


async def run_protocol(
    protocol: EvaluationProtocol[Q, A], settings: Settings, *, details: bool
) -> dict[str, Any]:
    """Prepare, time every query (a refused input is recorded with its error code), score."""
    rows: list[dict[str, Any]] = []
    async with evaluation_database(settings) as conn:
        connect = reuse(conn)
        await protocol.prepare(connect)
        for query in protocol.queries():
            t0 = time.perf_counter()
            answer: A | None = None
            error = None
            try:
                answer = await protocol.ask(connect, query.item)
            except ClientError as exc:
                error = exc.code
            row = {"query": query.key, "ms": (time.perf_counter() - t0) * 1000, "error": error}
            rows.append({**row, **protocol.row(query, answer)})
    return protocol.score(rows, details)


@dataclass
class AcceptCounts:
    """Verification pairs: MATCH where it should be (true accepts), where it must not be
    (false accepts), and UNCERTAIN answers."""

    tp: int = 0
    pos: int = 0
    fp: int = 0
    neg: int = 0
    uncertain: int = 0
    pairs: int = 0

    def add(self, should_match: bool, band: str) -> None:
        self.pairs += 1
        self.uncertain += band == "UNCERTAIN"
        if should_match:
            self.pos += 1
            self.tp += band == "MATCH"
        else:
            self.neg += 1
            self.fp += band == "MATCH"

    def rates(self) -> dict[str, Any]:
        return {
            "true_accept_rate": round(self.tp / max(self.pos, 1), 4),
            "false_accept_rate": round(self.fp / max(self.neg, 1), 4),
            "uncertain_rate": round(self.uncertain / max(self.pairs, 1), 4),
            "true_accepts": self.tp,
            "positives": self.pos,
            "false_accepts": self.fp,
            "negatives": self.neg,
        }


def latency(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Errors and p50/p95 of the per-query wall time."""
    ms = np.array([r["ms"] for r in rows]) if rows else np.zeros(1)
    return {
        "errors": sum(1 for r in rows if r["error"]),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
    }


def score_rows(
    rows: list[dict[str, Any]],
    products: dict[str, ProductRef],
    library: dict[str, ProductRef],
    details: bool,
) -> dict[str, Any]:
    """The pill protocol's figures from per-query rows (`product`, `enrolled`, `ranked`)."""
    hits1 = hits5 = n_id = 0
    counts = AcceptCounts()
    for row in rows:
        drug = interchangeable_group(products[row["product"]])
        order = [c.product_id for c in row["ranked"]]
        if row["enrolled"]:
            n_id += 1
            good = [i for i, p in enumerate(order) if interchangeable_group(library[p]) == drug]
            hits1 += bool(good and good[0] == 0)
            hits5 += bool(good and good[0] < 5)
        bands = {c.product_id: c.band for c in row["ranked"]}
        for y, ref in library.items():
            # no pill found: no verdict can be MATCH
            counts.add(interchangeable_group(ref) == drug, bands.get(y, "UNCERTAIN"))
    out: dict[str, Any] = {
        "products": len(library),
        "queries": len(rows),
        "identification_queries": n_id,
        "top1": round(hits1 / max(n_id, 1), 4),
        "top5": round(hits5 / max(n_id, 1), 4),
        **counts.rates(),
        **latency(rows),
    }
    if details:
        out["rows"] = rows
    return out


class PillProtocol:
    """The pill dataset protocol over the product's pipeline (library workflow, pgvector)."""

    def __init__(self, dataset: list[DatasetProduct], service: PillService) -> None:
        self.dataset = dataset
        self.service = service
        self.products = {d.product.id: product_ref(d.product) for d in dataset}
        self.enrolled: set[str] = set()

    async def prepare(self, connect: Connect) -> None:
        entries = ((d.product, d.reference_images()) for d in self.dataset)
        self.enrolled = (await enrol_products(self.service, connect, entries)).enrolled

    def queries(self) -> Iterator[Query[bytes]]:
        for d in self.dataset:
            for path in d.queries:
                yield Query(f"{d.product.id}/{path.stem}", d.product.id, path.read_bytes())

    async def ask(self, connect: Connect, item: bytes) -> list[Candidate]:
        photo = await self.service.analyse(item)
        return await self.service.rank(connect, photo.pills[0], crops=photo.crops[0])

    def row(self, query: Query[bytes], answer: list[Candidate] | None) -> dict[str, Any]:
        ranked = [c for c in answer or [] if c.product_id in self.enrolled]
        return {"product": query.truth, "enrolled": query.truth in self.enrolled, "ranked": ranked}

    def score(self, rows: list[dict[str, Any]], details: bool) -> dict[str, Any]:
        library = {p: self.products[p] for p in sorted(self.enrolled)}
        return score_rows(rows, self.products, library, details)


async def evaluate_pills(
    dataset_dir: Path, settings: Settings, *, details: bool = False
) -> dict[str, Any]:
    """Run the pill protocol; `details` adds the per-query rows (ranked candidates with their
    evidence: the features `scripts/fit_fusion.py` fits on)."""
    t_start = time.perf_counter()
    dataset = read_dataset(dataset_dir)
    service = await asyncio.to_thread(load_pill_service, settings)
    result = await run_protocol(PillProtocol(dataset, service), settings, details=details)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["model_version"] = service.model_version
    return result
