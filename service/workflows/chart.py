"""What a person sees of the launch patient's chart in the web app: the banner, the medication
orders (active first; inactive ones shown as such, never hidden) and the imaging studies, read
from the EHR with the person's own token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.fhir.client import FhirClient
from service.verify.pills.orders import ACTIVE_STATUSES


@dataclass(frozen=True)
class PatientBanner:
    name: str
    birth_date: str | None
    gender: str | None
    identifier: str | None  # the first MRN-like identifier, as the EHR shows it


@dataclass(frozen=True)
class OrderLine:
    reference: str  # MedicationRequest/<id>
    medication: str
    status: str
    authored_on: str | None
    dosage: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class StudyLine:
    reference: str  # ImagingStudy/<id>
    description: str
    modalities: tuple[str, ...]
    started: str | None
    status: str


@dataclass(frozen=True)
class Chart:
    patient: PatientBanner
    orders: list[OrderLine]
    studies: list[StudyLine]
    orders_read: bool = True  # False: the person may not read orders (not: there are none)


def banner(patient: dict[str, Any]) -> PatientBanner:
    names = patient.get("name") or [{}]
    first = names[0]
    text = (
        first.get("text")
        or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
    )
    ident = next((i.get("value") for i in patient.get("identifier") or [] if i.get("value")), None)
    name = text or "(no name)"
    return PatientBanner(name, patient.get("birthDate"), patient.get("gender"), ident)


def order_line(request: dict[str, Any]) -> OrderLine:
    concept = request.get("medicationCodeableConcept") or {}
    reference = request.get("medicationReference") or {}
    medication = (
        concept.get("text")
        or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")), None)
        or reference.get("display")
        or next(
            (
                f"NDC {c['code']}"
                for c in concept.get("coding") or []
                if c.get("code") and c.get("system") == "http://hl7.org/fhir/sid/ndc"
            ),
            None,
        )
        or "(medication not named)"
    )
    dosage = next((d.get("text") for d in request.get("dosageInstruction") or [] if d.get("text")),
                  None)  # fmt: skip
    return OrderLine(
        f"MedicationRequest/{request['id']}", medication, str(request.get("status") or "unknown"),
        request.get("authoredOn"), dosage,
    )  # fmt: skip


def study_line(study: dict[str, Any]) -> StudyLine:
    modalities = tuple(str(m.get("code")) for m in study.get("modality") or [] if m.get("code"))
    return StudyLine(
        f"ImagingStudy/{study['id']}", study.get("description") or "(no description)",
        modalities, study.get("started"), str(study.get("status") or "unknown"),
    )  # fmt: skip


async def read_chart(
    fhir: FhirClient, patient_id: str, *, max_items: int, imaging: bool, orders: bool = True
) -> Chart:
    """The patient's banner, orders and (when the person may read them) imaging studies."""
    patient = await fhir.read("Patient", patient_id)
    query = {"patient": f"Patient/{patient_id}", "_count": str(min(max_items, 100))}
    # A radiographer's launch grants no MedicationRequest read: the EHR would answer 403.
    requests = (await fhir.search("MedicationRequest", query))[:max_items] if orders else []
    lines = sorted(
        (order_line(r) for r in requests),
        key=lambda o: (not o.active, o.authored_on or "", o.reference),
    )
    studies: list[StudyLine] = []
    if imaging:
        found = (await fhir.search("ImagingStudy", query))[:max_items]
        studies = sorted((study_line(s) for s in found), key=lambda s: s.started or "",
                         reverse=True)  # fmt: skip
    return Chart(banner(patient), lines, studies, orders_read=orders)
