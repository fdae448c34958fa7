"""Reading what the EHR says about a study: the ImagingStudy, its subject Patient, its basedOn
ServiceRequest and its endpoints (contained or referenced), from the FHIR server or a file."""

from __future__ import annotations

from typing import Any, Protocol

from service.errors import FhirResourceNotFound, ImagingStudyUnsupported
from service.verify.imaging.study import (
    EndpointInfo,
    StudyOrder,
    contained_endpoints,
    endpoint_info,
    read_study_order,
)

STUDY_TYPE = "ImagingStudy"


class ResourceSource(Protocol):
    """Where FHIR resources come from: the EHR's FHIR server, or files for a dry run."""

    async def read(self, resource_type: str, rid: str) -> dict[str, Any]: ...


async def read_study(source: ResourceSource, study_ref: str) -> StudyOrder:
    """The EHR's view of one study; a missing subject or order is read as far as it exists."""
    _, rid = study_ref.split("/", 1)
    study = await source.read(STUDY_TYPE, rid)
    patient = await _referenced(source, study.get("subject"), "Patient")
    if patient is None:
        raise ImagingStudyUnsupported("the ImagingStudy has no Patient subject to check against")
    order = None
    for based_on in study.get("basedOn") or []:
        order = await _referenced(source, based_on, "ServiceRequest")
        if order is not None:
            break
    endpoints = contained_endpoints(study)
    for ref in study.get("endpoint") or []:
        target = str((ref or {}).get("reference") or "")
        if target.startswith("Endpoint/"):
            endpoints.append(endpoint_info(await source.read("Endpoint", target.split("/", 1)[1])))
    return read_study_order(study, patient, order, _unique(endpoints))


async def _referenced(
    source: ResourceSource, reference: dict[str, Any] | None, rtype: str
) -> dict[str, Any] | None:
    """The resource a relative reference names, if it is of `rtype` and exists."""
    target = str((reference or {}).get("reference") or "")
    if not target.startswith(f"{rtype}/"):
        return None
    try:
        return await source.read(rtype, target.split("/", 1)[1])
    except FhirResourceNotFound:
        return None


def _unique(endpoints: list[EndpointInfo]) -> list[EndpointInfo]:
    return list(dict.fromkeys(endpoints))
