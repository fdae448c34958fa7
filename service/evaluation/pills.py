"""The pill protocol (`verity evaluate pills DIR`) on the labelled dataset format (`labels.csv` +
`<product_id>/ref_N.jpg|photo_N.jpg`, ../shared/data/README.md): enrol each product from its
ref_*.jpg (else photo_1.jpg, then not a query) through the library workflow; rank every other
photo through the pgvector shortlist and the fused score; identification is top-1/top-5 over
queries of enrolled products; verification pairs every query with every enrolled product as
"prescribed": MATCH is right iff same clinical drug."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import DatasetInvalid, FileUnreadable
from service.evaluation.harness import AcceptCounts, Query, latency, run_protocol
from service.store.pool import Connect
from service.store.products import Product
from service.verify.pills.catalog import parse_label_ingredients
from service.verify.pills.ranking import interchangeable_group
from service.verify.pills.results import Candidate, ProductRef
from service.workflows.pills.enrol import enrol_products
from service.workflows.pills.service import PillService, load_pill_service, product_ref

_FORMS = ("tablet", "capsule")


@dataclass(frozen=True)
class DatasetProduct:
    product: Product
    references: list[Path]  # images that enrol it (refs, else photo_1 when it has 2+ photos)
    queries: list[Path]  # the other photos

    def reference_images(self) -> Iterator[tuple[str, bytes]]:
        """(file name, bytes) of each enrolment image, read when asked for."""
        for path in self.references:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FileUnreadable(f"{path}: {exc.strerror or exc}") from None
            yield path.name, data


def _photo_number(path: Path) -> int:
    return int(path.stem.split("_")[1]) if path.stem.split("_")[-1].isdigit() else 0


def product_from_label(row: dict[str, str]) -> Product:
    """One labels.csv row as a library product."""
    name, strength = row.get("name", "") or "", row.get("strength", "") or ""
    shape_words = (row.get("shape") or "").lower().split()
    form = shape_words[0] if shape_words and shape_words[0] in _FORMS else None
    imprint = (row.get("imprint") or "").strip() or None
    return Product(
        id=row["product_id"],
        name=name or None,
        ndcs=[n for n in [(row.get("ndc") or "").strip()] if n],
        rxcui=(row.get("rxcui") or "").strip() or None,
        ingredients=parse_label_ingredients(name, strength),
        dose_form=form,
        imprint=imprint,
        imprint_source="label" if imprint else None,
        colors=[c for c in (row.get("color") or "").split(";") if c],
        shape=form,
    )


def read_dataset(directory: Path) -> list[DatasetProduct]:
    """Products in labels.csv order, with enrolment and query images per the protocol."""
    labels = directory / "labels.csv"
    if not directory.is_dir():
        raise DatasetInvalid(f"{directory} is not a folder")
    if not labels.is_file():
        raise DatasetInvalid(f"{directory} has no labels.csv")
    try:
        text = labels.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise DatasetInvalid(f"{labels} is not UTF-8 text") from None
    except OSError as exc:
        raise FileUnreadable(f"{labels}: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "product_id" not in (reader.fieldnames or []):
        raise DatasetInvalid(f"{labels} has no product_id column")
    out = []
    for row in reader:
        if not (row.get("product_id") or "").strip():
            raise DatasetInvalid(f"{labels} line {reader.line_num} has no product_id")
        folder = directory / row["product_id"]
        refs = sorted(folder.glob("ref_*.jpg"), key=_photo_number)
        photos = sorted(folder.glob("photo_*.jpg"), key=_photo_number)
        if refs:
            enrol, queries = refs, photos
        elif len(photos) >= 2:
            enrol, queries = photos[:1], photos[1:]
        else:
            enrol, queries = [], photos
        out.append(DatasetProduct(product_from_label(row), enrol, queries))
    return out


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
