"""What the medication-check pages show: an order with the library products that answer it,
and a recorded pill verification with its pictures, evidence, the person's decision and the
photos accepted into the library. Read-only; recording goes through `submit` and `decisions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.errors import UnknownVerification
from service.fhir.client import FhirClient
from service.store import acceptances, reference_pictures
from service.store import products as library
from service.store import verification_images as pictures
from service.store import verifications as audit
from service.store.acceptances import Acceptance
from service.store.pool import Connect
from service.store.verification_images import StoredImage
from service.verify.pills.orders import ACTIVE_STATUSES
from service.vision.pills.decode import media_type
from service.workflows.chart import PatientBanner, banner
from service.workflows.decisions import DecisionView, decision_for
from service.workflows.pills.verify import OrderSource, load_order

LEARNABLE = ("UNCERTAIN", "NOT_IN_LIBRARY")  # verdicts a confirmed photo can teach the library


@dataclass(frozen=True)
class LibraryProduct:
    id: str
    name: str | None
    ndcs: tuple[str, ...]
    picture: int | None  # a reference image id, or None when the product has none


@dataclass(frozen=True)
class OrderView:
    reference: str
    medication: str  # as the order names it
    codes: tuple[str, ...]  # "NDC 00093-0311-01", "RxNorm 197361"
    status: str
    dose_count: int | None
    patient_ref: str | None
    products: list[LibraryProduct]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class PillView:
    index: int
    photo_index: int
    verdict: str
    picture: str | None  # pill-N when kept
    identified: dict[str, Any] | None  # the best candidate (product, score, band, evidence)
    ordered: dict[str, Any] | None  # the best candidate among the ordered products, if shown
    identified_picture: int | None  # closest reference image of the identified product
    ordered_picture: int | None  # closest (else first) reference image of an ordered product
    candidates: list[dict[str, Any]]
    bbox: tuple[int, ...]


@dataclass(frozen=True)
class VerificationView:
    id: str
    created_at: datetime
    patient_ref: str | None
    result: dict[str, Any]
    pills: list[PillView]
    photos: list[str]  # photo-N kept
    decision: DecisionView | None
    accepted: list[Acceptance]
    learnable_photos: list[str] = field(default_factory=list)  # photo-N a manager may accept

    @property
    def verdict(self) -> str:
        return str(self.result["verdict"])

    @property
    def expected(self) -> list[dict[str, Any]]:
        return list(self.result.get("expected") or [])


def _codes(concept: dict[str, Any]) -> tuple[str, ...]:
    names = {"http://hl7.org/fhir/sid/ndc": "NDC",
             "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm"}  # fmt: skip
    return tuple(
        f"{names.get(c.get('system', ''), 'Code')} {c['code']}"
        for c in concept.get("coding") or []
        if c.get("code")
    )


async def patient_banner(fhir: FhirClient, patient_id: str | None) -> PatientBanner | None:
    """The launch patient's banner (none outside a patient launch)."""
    return banner(await fhir.read("Patient", patient_id)) if patient_id else None


async def order_patient(source: OrderSource, order_ref: str) -> str | None:
    """Whose order this is, to refuse another patient's before anything is recorded."""
    _, order = await load_order(source, order_ref)
    return order.patient_ref


async def order_view(source: OrderSource, connect: Connect, order_ref: str) -> OrderView:
    """The order as the EHR says it (read with the person's token) and its library products."""
    request, order = await load_order(source, order_ref)
    concept = request.get("medicationCodeableConcept") or {}
    codes = _codes(concept)
    medication = (
        concept.get("text") or order.drug.text
        or (request.get("medicationReference") or {}).get("display")
        or (", ".join(codes) if codes else "(medication not named)")
    )  # fmt: skip
    async with connect() as conn:
        found = await library.products_for_order(conn, order.drug)
        firsts = await reference_pictures.first_images(conn, [p.id for p in found])
    return OrderView(
        order_ref, str(medication), codes, str(order.status or "unknown"), order.dose_count,
        order.patient_ref,
        [LibraryProduct(p.id, p.name, tuple(p.ndcs), firsts.get(p.id)) for p in found],
    )  # fmt: skip


def _image_id(candidate: dict[str, Any] | None) -> int | None:
    """The reference image behind a candidate's closest view ("<image id>/<view>")."""
    view = str(((candidate or {}).get("evidence") or {}).get("best_view") or "")
    head = view.split("/", 1)[0]
    return int(head) if head.isdigit() else None


def pill_views(result: dict[str, Any], kept: set[str], firsts: dict[str, int]) -> list[PillView]:
    """Each pill with its three pictures: as cropped, the ordered product's, the identified's."""
    expected = [e["id"] for e in result.get("expected") or []]
    fallback = next((firsts[e] for e in expected if e in firsts), None)
    out = []
    for p in result.get("pills") or []:
        candidates = list(p.get("candidates") or [])
        best = candidates[0] if candidates else None
        ordered = next((c for c in candidates if c["product"]["id"] in expected), None)
        name = f"pill-{p['index']}"
        out.append(PillView(
            index=int(p["index"]), photo_index=int(p.get("photo_index") or 0),
            verdict=str(p["verdict"]), picture=name if name in kept else None,
            identified=best, ordered=ordered, identified_picture=_image_id(best),
            ordered_picture=_image_id(ordered) or fallback, candidates=candidates,
            bbox=tuple(p.get("bbox") or ()),
        ))  # fmt: skip
    return out


def learnable_photos(result: dict[str, Any], kept: set[str]) -> list[str]:
    """Kept photos that show exactly one pill (a reference image must show one product)."""
    per_photo: dict[int, int] = {}
    for p in result.get("pills") or []:
        index = int(p.get("photo_index") or 0)
        per_photo[index] = per_photo.get(index, 0) + 1
    return [f"photo-{i}" for i, n in sorted(per_photo.items()) if n == 1 and f"photo-{i}" in kept]


async def verification_view(connect: Connect, verification_id: str) -> VerificationView:
    """One recorded pill verification as the result page shows it (UnknownVerification if none)."""
    async with connect() as conn:
        row = await audit.get(conn, verification_id)
        if row.kind != "pill":
            raise UnknownVerification("no pill verification with this id")
        kept = set(await pictures.names(conn, row.id))
        expected = [e["id"] for e in row.result.get("expected") or []]
        firsts = await reference_pictures.first_images(conn, expected)
        accepted = await acceptances.for_verification(conn, row.id)
    decision = await decision_for(connect, row.id)
    learnable = []
    if row.verdict in LEARNABLE and decision is not None and decision.action == "confirmed":
        learnable = learnable_photos(row.result, kept)
    return VerificationView(
        row.id, row.created_at, row.patient_ref, row.result, pill_views(row.result, kept, firsts),
        sorted(n for n in kept if n.startswith("photo-")), decision, accepted, learnable,
    )  # fmt: skip


async def kept_picture(connect: Connect, verification_id: str, name: str) -> StoredImage:
    """A picture kept with a verification (the caller has checked who may see it)."""
    async with connect() as conn:
        return await pictures.get(conn, verification_id, name)


async def reference_picture(connect: Connect, image_id: int) -> tuple[str, bytes]:
    """(media type, bytes) of a library reference image: product pictures, no patient data."""
    async with connect() as conn:
        _, data = await reference_pictures.picture(conn, image_id)
    return media_type(data), data


async def verification_patient(connect: Connect, verification_id: str) -> str | None:
    """Whose verification this is, to check before showing any of it."""
    async with connect() as conn:
        return (await audit.get(conn, verification_id)).patient_ref
