"""The library learning from dispensing: a photo of a pill a person confirmed, after Verity
was unsure (UNCERTAIN) or could not recognise the product (NOT_IN_LIBRARY), enrolled by a
library manager as a new reference image of an ordered product (created from the order's code
when the library has none), and the acceptance audited in the same transaction."""

from __future__ import annotations

import re
from typing import Any

from service.errors import ProductExists, ReferenceNotAccepted
from service.store import acceptances, products
from service.store import verification_images as pictures
from service.store.acceptances import Acceptance
from service.store.pool import Connect
from service.store.products import Product
from service.verify.pills.orders import NDC, RXNORM, OrderInfo
from service.workflows.pills.review import LEARNABLE, verification_view
from service.workflows.pills.service import PillService
from service.workflows.pills.verify import OrderSource, load_order

FROM_ORDER = "order"  # the product field's value for "a new product from the order's code"
_SAFE_ID = re.compile(r"[^A-Za-z0-9._:-]")


def product_from_order(request: dict[str, Any], order: OrderInfo) -> Product:
    """A library product named by the order's NDC (else RxNorm) code, as the order describes
    it; an order without either code cannot name one."""
    codings = (request.get("medicationCodeableConcept") or {}).get("coding") or []
    ndcs = [str(c["code"]) for c in codings if c.get("system") == NDC and c.get("code")]
    rxcuis = [str(c["code"]) for c in codings if c.get("system") == RXNORM and c.get("code")]
    if not ndcs and not rxcuis:
        raise ReferenceNotAccepted("the order has no NDC or RxNorm code to name a product by")
    key = f"ndc_{ndcs[0]}" if ndcs else f"rxcui_{rxcuis[0]}"
    return Product(
        id=_SAFE_ID.sub("-", key)[:100], name=order.drug.text, ndcs=ndcs,
        rxcui=rxcuis[0] if rxcuis else None, ingredients=list(order.drug.ingredients),
        dose_form=order.drug.dose_form,
    )  # fmt: skip


async def accept_reference(
    pills: PillService,
    connect: Connect,
    verification_id: str,
    image_name: str,
    product_id: str,
    accepted_by: str,
    source: OrderSource,
) -> tuple[Acceptance, bool]:
    """Enrol the kept photo as a reference image of `product_id` (or, as FROM_ORDER when the
    order matched no library product, of a product made from the order's code; the order is
    read from `source`) through the enrol path (views per model version), with its
    reference_acceptance row; a second call returns the first."""
    view = await verification_view(connect, verification_id)
    for earlier in view.accepted:
        if earlier.image_name == image_name:
            return earlier, False
    if view.verdict not in LEARNABLE:
        raise ReferenceNotAccepted("only a photo Verity was unsure about can teach the library")
    if view.decision is None or view.decision.action != "confirmed":
        raise ReferenceNotAccepted("a person must first confirm that the pill is correct")
    if image_name not in view.learnable_photos:
        raise ReferenceNotAccepted("that photo was not kept or does not show exactly one pill")
    new: Product | None = None
    if product_id == FROM_ORDER and not view.expected:
        new = product_from_order(*await load_order(source, view.result["order_ref"]))
        product_id = new.id
    elif product_id not in {e["id"] for e in view.expected}:
        raise ReferenceNotAccepted("the photo can only become a reference of an ordered product")
    async with connect() as conn:
        photo = await pictures.get(conn, view.id, image_name)
    prepared = await pills.prepare_reference(photo.data)  # models run with no connection held
    async with connect() as conn, conn.transaction():
        if new is not None:
            try:
                await products.create_product(conn, new)  # in a savepoint
            except ProductExists:
                pass  # someone made it since: enrol into theirs
        enrolled = await pills.store_reference(
            conn, product_id, prepared, source=f"dispensing photo {image_name}"
        )
        return await acceptances.insert(
            conn, view.id, image_name, product_id, enrolled.image_id, accepted_by
        )
