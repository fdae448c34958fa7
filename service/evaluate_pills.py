"""Evaluation of the pill engine on a labelled folder, exactly as /shared/data/README.md says.

Enrolment: each product from its ref_*.jpg; without a ref, from photo_1.jpg (then not a query);
a product with no ref and one photo is not enrolled and its photo is a not-in-library query.
Queries: every other photo_*.jpg. Identification: top-1/top-5 over queries of enrolled products.
Verification: every query against every enrolled product as "prescribed"; MATCH is right iff
same clinical drug (same product, or same non-blank name + strength in labels.csv).

    python -m service.evaluate_pills DIR [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from service.dataset import read_dataset
from service.errors import ClientError
from service.verify.pills import FusionModel
from service.verify.records import Candidate, ProductInfo, QueryPill, ReferenceView
from service.vision.decode import decode_image
from service.vision.engine import PillEngine


class ReferenceStore(Protocol):
    """What evaluation (and the API) needs from the reference library."""

    def add(self, views: Iterable[ReferenceView]) -> None: ...

    def candidates(self, query: QueryPill) -> Iterable[ReferenceView]: ...


@dataclass
class InMemoryReferenceStore:
    """Reference views in a list; the pgvector store implements the same two methods."""

    views: list[ReferenceView] = field(default_factory=list)

    def add(self, views: Iterable[ReferenceView]) -> None:
        self.views.extend(views)

    def candidates(self, query: QueryPill) -> Iterable[ReferenceView]:
        return self.views


def load_products(dataset_dir: Path) -> dict[str, ProductInfo]:
    """labels.csv -> product id -> ProductInfo (name/strength define the clinical drug)."""
    with (dataset_dir / "labels.csv").open(newline="") as fh:
        return {
            r["product_id"]: ProductInfo.from_label(
                r["product_id"], r.get("name") or None, r.get("strength") or None
            )
            for r in csv.DictReader(fh)
        }


def plan(
    dataset_dir: Path, products: dict[str, ProductInfo]
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(enrolment images, query photos) per the protocol, as (product_id, path) pairs."""
    enrol: list[tuple[str, Path]] = []
    queries: list[tuple[str, Path]] = []
    for d in sorted(read_dataset(dataset_dir), key=lambda d: d.product.id):
        if d.product.id in products:
            enrol += [(d.product.id, p) for p in d.references]
            queries += [(d.product.id, p) for p in d.queries]
    return enrol, queries


def evaluate(
    dataset_dir: Path,
    engine: PillEngine,
    store: ReferenceStore | None = None,
    details: bool = False,
) -> dict[str, Any]:
    """Run the protocol; returns the headline figures (and per-query rows if `details`)."""
    products = load_products(dataset_dir)
    enrol, queries = plan(dataset_dir, products)
    store = store if store is not None else InMemoryReferenceStore()
    enrolled: set[str] = set()
    for pid, path in enrol:
        rgb = decode_image(path.read_bytes(), engine.limits)
        store.add(engine.enrol_image(rgb, pid, f"{pid}/{path.stem}", path.stem))
        enrolled.add(pid)
    library = {p: products[p] for p in sorted(enrolled)}
    rows: list[dict[str, Any]] = []
    for pid, path in queries:
        data = path.read_bytes()
        t0 = time.perf_counter()
        ranked: list[Candidate] = []
        error = None
        try:
            photo = engine.analyse_bytes(data)
            refs = list(store.candidates(photo.pills[0]))
            ranked = engine.identify_photo(photo, refs, library)[0]
        except ClientError as exc:
            error = exc.code
        ms = (time.perf_counter() - t0) * 1000.0
        rows.append(
            {
                "query": f"{pid}/{path.stem}",
                "product": pid,
                "enrolled": pid in enrolled,
                "ms": ms,
                "error": error,
                "ranked": ranked,
            }
        )
    return score_rows(rows, products, library, details)


def score_rows(
    rows: list[dict[str, Any]],
    products: dict[str, ProductInfo],
    library: dict[str, ProductInfo],
    details: bool,
) -> dict[str, Any]:
    hits1 = hits5 = n_id = 0
    counts = {"tp": 0, "pos": 0, "fp": 0, "neg": 0, "uncertain": 0, "pairs": 0}
    for row in rows:
        drug = products[row["product"]].clinical_drug
        order = [c.product_id for c in row["ranked"]]
        if row["enrolled"]:
            n_id += 1
            good = [i for i, p in enumerate(order) if library[p].clinical_drug == drug]
            hits1 += bool(good and good[0] == 0)
            hits5 += bool(good and good[0] < 5)
        bands = {c.product_id: c.band for c in row["ranked"]}
        for y, info in library.items():
            band = bands.get(y, "UNCERTAIN")  # no pill found: no verdict can be MATCH
            should = info.clinical_drug == drug
            counts["pairs"] += 1
            counts["uncertain"] += band == "UNCERTAIN"
            if should:
                counts["pos"] += 1
                counts["tp"] += band == "MATCH"
            else:
                counts["neg"] += 1
                counts["fp"] += band == "MATCH"
    ms = np.array([r["ms"] for r in rows]) if rows else np.zeros(1)
    out: dict[str, Any] = {
        "products": len(library),
        "queries": len(rows),
        "identification_queries": n_id,
        "top1": round(hits1 / max(n_id, 1), 4),
        "top5": round(hits5 / max(n_id, 1), 4),
        "true_accept_rate": round(counts["tp"] / max(counts["pos"], 1), 4),
        "false_accept_rate": round(counts["fp"] / max(counts["neg"], 1), 4),
        "uncertain_rate": round(counts["uncertain"] / max(counts["pairs"], 1), 4),
        "true_accepts": counts["tp"],
        "positives": counts["pos"],
        "false_accepts": counts["fp"],
        "negatives": counts["neg"],
        "errors": sum(1 for r in rows if r["error"]),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
    }
    if details:
        out["rows"] = rows
    return out


def build_engine(fusion: FusionModel | None = None) -> PillEngine:
    """Engine with default settings (what the CLI's evaluate command uses)."""
    from service.config import DecisionSettings, LimitSettings, ModelSettings
    from service.models.registry import ModelRegistry
    from service.vision.fusion_io import load_fusion

    registry = ModelRegistry(ModelSettings()).load()
    return PillEngine(registry, LimitSettings(), DecisionSettings(), fusion or load_fusion())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the pill engine on a dataset folder.")
    parser.add_argument("dataset", type=Path)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = evaluate(args.dataset, build_engine())
    result["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
