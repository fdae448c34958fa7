"""The library learning from dispensing: a photo of a pill a person confirmed, after Verity
was unsure (UNCERTAIN) or could not recognise the product (NOT_IN_LIBRARY), enrolled by a
library manager as a new reference image of an ordered product, and the acceptance audited in
the same transaction."""

from __future__ import annotations

from service.errors import ReferenceNotAccepted
from service.store import acceptances
from service.store import verification_images as pictures
from service.store.acceptances import Acceptance
from service.store.pool import Connect
from service.workflows.pills.review import LEARNABLE, verification_view
from service.workflows.pills.service import PillService


async def accept_reference(
    pills: PillService,
    connect: Connect,
    verification_id: str,
    image_name: str,
    product_id: str,
    accepted_by: str,
) -> tuple[Acceptance, bool]:
    """Enrol the kept photo as a reference image of `product_id` (the enrol path: views per
    model version) with its reference_acceptance row; a second call returns the first."""
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
    if product_id not in {e["id"] for e in view.expected}:
        raise ReferenceNotAccepted("the photo can only become a reference of an ordered product")
    async with connect() as conn:
        photo = await pictures.get(conn, view.id, image_name)
    prepared = await pills.prepare_reference(photo.data)  # models run with no connection held
    async with connect() as conn, conn.transaction():
        enrolled = await pills.store_reference(
            conn, product_id, prepared, source=f"dispensing photo {image_name}"
        )
        return await acceptances.insert(
            conn, view.id, image_name, product_id, enrolled.image_id, accepted_by
        )
