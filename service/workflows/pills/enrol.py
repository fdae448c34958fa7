"""Filling the reference library: each product upserted and its reference images enrolled. The
one loop behind `verity library import`, the demo library and the evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from service.errors import VerityError
from service.store import products
from service.store.pool import Connect
from service.store.products import Product
from service.workflows.pills.service import PillService

# (source name, image bytes); an iterator is read one product at a time
ReferenceImages = Iterable[tuple[str, bytes]]


@dataclass
class EnrolSummary:
    products: int = 0
    images: int = 0
    added: int = 0  # images not enrolled before (the same bytes are the same image)
    enrolled: set[str] = field(default_factory=set)  # products with at least one image


async def enrol_products(
    pills: PillService, connect: Connect, entries: Iterable[tuple[Product, ReferenceImages]]
) -> EnrolSummary:
    """Per product: the models measure its images first, then one short transaction upserts
    the product and stores them (idempotent; no connection is held while a model runs)."""
    summary = EnrolSummary()
    for product, images in entries:
        prepared = []
        for source, data in images:
            try:
                prepared.append((source, await pills.prepare_reference(data)))
            except VerityError as exc:  # say which image; earlier products stay enrolled
                raise type(exc)(f"{product.id}/{source}: {exc.detail}", **exc.extra) from None
        async with connect() as conn, conn.transaction():
            await products.upsert_product(conn, product)
            for source, ref in prepared:
                enrolled = await pills.store_reference(conn, product.id, ref, source=source)
                summary.added += enrolled.added
        summary.products += 1
        summary.images += len(prepared)
        if prepared:
            summary.enrolled.add(product.id)
    return summary
