"""The path of one pill verification: read the order, find the expected products, identify
every pill in the photos, decide, and record the result with its FHIR write in one transaction."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
from pydantic import TypeAdapter

from service.config import Settings
from service.errors import NoPillFound
from service.store import products, vectors
from service.store import verifications as audit
from service.store.pool import Connect
from service.store.verification_images import StoredImage
from service.verify.common import ModelInfo
from service.verify.pills.orders import OrderInfo, contained_medication, read_order
from service.verify.pills.results import PillResult, PillVerification
from service.verify.pills.verdicts import findings, overall, pill_result
from service.vision.pills.engine import PhotoResult
from service.vision.pills.pictures import verification_pictures
from service.workflows.pills.service import PillService, product_ref
from service.workflows.record import Caller, Recorded, record
from service.writeback.pills import pill_write

ORDER_TYPE = "MedicationRequest"
_AS_JSON = TypeAdapter(PillVerification)


class OrderSource(Protocol):
    """Where orders come from: the EHR's FHIR server, or a file for a dry run."""

    async def read(self, resource_type: str, rid: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PillRequest:
    order_ref: str  # "MedicationRequest/<id>", already parsed
    photos: Sequence[bytes]
    dispense_ref: str | None = None
    patient_ref: str | None = None
    idempotency_key: str | None = None
    caller: Caller = Caller()

    def sha256(self) -> str:
        """Identity of the request, to tell a retry from a reused idempotency key."""
        h = hashlib.sha256()
        for part in (self.order_ref, self.dispense_ref or "", self.patient_ref or ""):
            h.update(part.encode() + b"\0")
        for photo in self.photos:
            h.update(hashlib.sha256(photo).digest())
        return h.hexdigest()


async def load_order(source: OrderSource, order_ref: str) -> tuple[dict[str, Any], OrderInfo]:
    """The MedicationRequest and what it asks for (its Medication read when referenced)."""
    rtype, rid = order_ref.split("/", 1)
    request = await source.read(rtype, rid)
    medication = contained_medication(request)
    ref = (request.get("medicationReference") or {}).get("reference", "")
    if medication is None and ref.startswith("Medication/"):
        medication = await source.read("Medication", ref.split("/", 1)[1])
    return request, read_order(request, medication)


async def verify_pill(
    pills_service: PillService,
    settings: Settings,
    req: PillRequest,
    source: OrderSource,
    connect: Connect,
    *,
    deliver: bool,
) -> tuple[PillVerification, Recorded]:
    """One whole verification (API, CLI and demo): the models and the order read run without a
    database connection; each database step takes one briefly, and recording (audit + outbox)
    is one transaction."""
    analysed = await analyse_photos(pills_service, req.photos)
    order_json, order = await load_order(source, req.order_ref)
    text = (order_json.get("medicationCodeableConcept") or {}).get("text") or order.drug.text
    v = await decide(connect, pills_service, req, order, text, analysed)
    # Built and validated against the profiles before anything is recorded.
    write = pill_write(v, settings.writeback, write_match=settings.outbox.write_match)
    images = await kept_pictures(settings, req.photos, v)
    async with connect() as conn:
        recorded = await record(
            conn, new_audit_row(v, req, to_json(v)), write, deliver=deliver,
            findings=[f.value for f in v.findings], images=images,
        )  # fmt: skip
        return v, recorded


async def kept_pictures(
    settings: Settings, photos: Sequence[bytes], v: PillVerification
) -> list[StoredImage]:
    """The photos (unless VERITY_LIMITS__KEEP_PHOTOS is off) and each pill as Verity cropped
    it, kept with the audit row for the people who review the verdict."""
    pills = [(p.index, p.photo_index, p.bbox) for p in v.pills]
    made = await anyio.to_thread.run_sync(verification_pictures, photos, pills, settings.limits)
    return [StoredImage(name, kind, data) for name, kind, data in made]


async def analyse_photos(
    pills_service: PillService, photos: Sequence[bytes]
) -> list[PhotoResult | None]:
    """Find and describe the pills of each photo (None: no pill); bad images raise here, before
    the order is read or anything is recorded."""
    out: list[PhotoResult | None] = []
    for data in photos:
        try:
            out.append(await pills_service.analyse(data))
        except NoPillFound:
            out.append(None)
    return out


async def decide(
    connect: Connect,
    pills_service: PillService,
    req: PillRequest,
    order: OrderInfo,
    order_text: str | None,
    photos: Sequence[PhotoResult | None],
) -> PillVerification:
    """Fetch the expected products, rank every analysed pill against the library (a cascade
    embedder may run here, with no connection held) and judge it with `verify.verdicts`."""
    async with connect() as conn:
        expected = await products.products_for_order(conn, order.drug)
        # A product without reference images cannot be recognised: NOT_IN_LIBRARY, not MISMATCH.
        enrolled = await vectors.enrolled_products(
            conn, pills_service.model_version, [p.id for p in expected]
        )
    recognisable = [p.id for p in expected if p.id in enrolled]
    results: list[PillResult] = []
    for photo_index, photo in enumerate(photos):
        if photo is None:  # no pill in this photo
            continue
        for pill, crops in zip(photo.pills, photo.crops, strict=True):
            ranked = await pills_service.rank(
                connect, pill, crops=crops, always_include=recognisable
            )
            results.append(pill_result(
                len(results), photo_index, pill, ranked, recognisable, pills_service.decision
            ))  # fmt: skip
    return PillVerification(
        id=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        order_ref=req.order_ref,
        patient_ref=order.patient_ref or req.patient_ref,
        dispense_ref=req.dispense_ref,
        order_status=order.status,
        medication_text=order_text,
        expected=[product_ref(p) for p in expected],
        verdict=overall(results),
        pills=results,
        findings=findings(order, req.patient_ref, len(results)),
        count_expected=order.dose_count,
        photo_sha256=[hashlib.sha256(p).hexdigest() for p in req.photos],
        models=[
            ModelInfo(str(m["name"]), str(m["version"]))
            for m in pills_service.engine.registry.status()
            if m["loaded"]
        ],  # fmt: skip
        caller=req.caller.client_id,
    )


def to_json(v: PillVerification) -> dict[str, Any]:
    """The verification as the API returns it and the audit table stores it."""
    out: dict[str, Any] = _AS_JSON.dump_python(v, mode="json")
    out["needs_attention"] = v.needs_attention
    return out


def new_audit_row(
    v: PillVerification, req: PillRequest, result: dict[str, Any]
) -> audit.NewVerification:
    return audit.NewVerification(
        id=v.id, kind="pill", request_sha256=req.sha256(), order_ref=v.order_ref,
        verdict=v.verdict.value, result=result, patient_ref=v.patient_ref,
        related_ref=v.dispense_ref, idempotency_key=req.idempotency_key,
        caller_subject=req.caller.subject, caller_client_id=req.caller.client_id,
        caller_scopes=req.caller.scopes, input_sha256=tuple(v.photo_sha256),
        model_versions={m.name: m.version for m in v.models},
    )  # fmt: skip
