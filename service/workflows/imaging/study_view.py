"""An imaging study as the EHR has it, for a person about to check it: the ImagingStudy and the
order it is based on, read with the person's own token, and Verity's earlier checks of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.fhir.client import FhirClient
from service.store import jobs
from service.store.jobs import JobRow
from service.store.pool import Connect
from service.workflows.imaging.jobs import ImagingRequest, submit
from service.workflows.record import Caller

SNOMED = "http://snomed.info/sct"
MCODE_LATERALITY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier"


@dataclass(frozen=True)
class StudyView:
    """What the page shows of the study (the EHR's words, as the EHR has them)."""

    reference: str  # ImagingStudy/<id>: never put in a URL
    patient_ref: str | None
    description: str
    status: str
    modalities: tuple[str, ...]
    started: str | None
    series: int | None
    instances: int | None
    order: str | None  # the ServiceRequest's exam (code text or display)
    order_ref: str | None
    accession: str | None
    body_site: str | None  # display (SNOMED CT code)
    laterality: str | None
    ordered_at: str | None


def _concept(concept: dict[str, Any] | None) -> str | None:
    concept = concept or {}
    coding = concept.get("coding") or []
    words = concept.get("text") or next((c.get("display") for c in coding if c.get("display")),
                                        None)  # fmt: skip
    code = next((c.get("code") for c in coding if c.get("system") == SNOMED), None)
    if words and code:
        return f"{words} (SNOMED CT {code})"
    return words or code


def _side(site: dict[str, Any]) -> str | None:
    for ext in site.get("extension") or []:
        if ext.get("url") == MCODE_LATERALITY:
            return _concept(ext.get("valueCodeableConcept"))
    return None


def _accession(*resources: dict[str, Any]) -> str | None:
    for resource in resources:
        for ident in resource.get("identifier") or []:
            codes = {c.get("code") for c in ((ident.get("type") or {}).get("coding") or [])}
            if "ACSN" in codes and ident.get("value"):
                return str(ident["value"])
    return None


async def read_study_view(fhir: FhirClient, study_ref: str) -> StudyView:
    """The ImagingStudy and (if it names one the person may read) its ServiceRequest."""
    study = await fhir.read("ImagingStudy", study_ref.split("/", 1)[1])
    order: dict[str, Any] = {}
    refs = [str((b or {}).get("reference") or "") for b in study.get("basedOn") or []]
    order_ref = next((r for r in refs if r.startswith("ServiceRequest/")), None)
    if order_ref is not None:
        order = await fhir.read("ServiceRequest", order_ref.split("/", 1)[1])
    sites = order.get("bodySite") or []
    modalities = tuple(str(m.get("code")) for m in study.get("modality") or [] if m.get("code"))
    return StudyView(
        reference=study_ref,
        patient_ref=(study.get("subject") or {}).get("reference"),
        description=study.get("description") or _concept(order.get("code")) or "(no description)",
        status=str(study.get("status") or "unknown"),
        modalities=modalities,
        started=study.get("started"),
        series=study.get("numberOfSeries"),
        instances=study.get("numberOfInstances"),
        order=_concept(order.get("code")),
        order_ref=order_ref,
        accession=_accession(order, study),
        body_site=_concept(sites[0]) if sites else None,
        laterality=_side(sites[0]) if sites else None,
        ordered_at=order.get("occurrenceDateTime"),
    )


async def earlier_checks(connect: Connect, study_ref: str, *, limit: int) -> list[JobRow]:
    """Verity's checks of this study, newest first."""
    async with connect() as conn:
        return await jobs.search(conn, study_ref=study_ref, limit=limit)


async def start_check(
    connect: Connect, study_ref: str, nonce: str, caller: Caller
) -> tuple[JobRow, bool]:
    """The same job as `POST /v1/imaging-verifications`; the form's nonce is its idempotency
    key, so a double click or a re-sent form starts one check."""
    return await submit(connect, ImagingRequest(study_ref, idempotency_key=nonce, caller=caller))
