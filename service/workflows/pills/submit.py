"""A medication verification as a front door receives it (raw references, photo bytes, an
idempotency key): checked, replayed when the key was seen before, else run and recorded. REST
and gRPC both call `submit_medication`, so the two answer the same request the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.config import LimitSettings, Settings
from service.errors import FhirNotConfigured, ImageEmpty, ImageTooLarge, RequestInvalid
from service.fhir.references import parse_reference
from service.store import verifications as audit
from service.store.pool import Connect
from service.workflows.pills.service import PillService
from service.workflows.pills.verify import ORDER_TYPE, OrderSource, PillRequest, verify_pill
from service.workflows.record import Caller


@dataclass(frozen=True)
class MedicationSubmission:
    medication_request: str
    photos: Sequence[bytes]
    medication_dispense: str | None = None
    patient: str | None = None
    idempotency_key: str | None = None
    caller: Caller = Caller()


def check_fhir(source: OrderSource | None) -> OrderSource:
    """The EHR's FHIR server, or the 5024 that says none is configured."""
    if source is None:
        raise FhirNotConfigured("set VERITY_FHIR__BASE_URL to verify against EHR orders")
    return source


def check_photo_count(count: int, limits: LimitSettings) -> None:
    if count > limits.max_photos_per_request:
        raise RequestInvalid(f"at most {limits.max_photos_per_request} photos")
    if count == 0:
        raise RequestInvalid("at least one photo is required")


def check_image_bytes(data: bytes, limits: LimitSettings, name: str) -> bytes:
    """An image's bytes within the byte limit, before any decoding (empty or too large)."""
    if not data:
        raise ImageEmpty(f"{name} has zero bytes")
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(
            f"{name} is over {limits.max_image_bytes} bytes", limit_bytes=limits.max_image_bytes
        )
    return data


async def submit_medication(
    pills: PillService,
    settings: Settings,
    source: OrderSource | None,
    connect: Connect,
    sub: MedicationSubmission,
) -> tuple[dict[str, Any], bool]:
    """The recorded verification (as the audit stores it) and whether this call created it."""
    fhir = check_fhir(source)
    check_photo_count(len(sub.photos), settings.limits)
    base = settings.fhir.base_url
    req = PillRequest(
        order_ref=parse_reference(sub.medication_request, ORDER_TYPE, base),
        photos=[
            check_image_bytes(p, settings.limits, f"photo {i}") for i, p in enumerate(sub.photos)
        ],
        dispense_ref=(
            parse_reference(sub.medication_dispense, "MedicationDispense", base)
            if sub.medication_dispense
            else None
        ),  # fmt: skip
        patient_ref=parse_reference(sub.patient, "Patient", base) if sub.patient else None,
        idempotency_key=sub.idempotency_key,
        caller=sub.caller,
    )
    if sub.idempotency_key:
        async with connect() as conn:
            earlier = await audit.find_by_idempotency_key(
                conn, sub.caller.client_id, sub.idempotency_key, req.sha256()
            )
        if earlier is not None:
            return earlier.result, False
    _, recorded = await verify_pill(pills, settings, req, fhir, connect, deliver=True)
    return recorded.result, recorded.created
