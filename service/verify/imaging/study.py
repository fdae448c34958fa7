"""What the EHR says about one imaging study (ImagingStudy + Patient + ServiceRequest), read
into plain data the checks compare against the DICOM. No I/O: the workflow reads the resources."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from service.errors import ImagingStudyUnsupported

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DICOM_UID = "urn:dicom:uid"
MCODE_LATERALITY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier"
# SNOMED CT side qualifiers (mCODE laterality value set) -> DICOM Laterality
SIDES = {"24028007": "R", "7771000": "L", "51440002": "B"}
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")


@dataclass(frozen=True)
class EndpointInfo:
    """An ImagingStudy endpoint (contained or referenced Endpoint): EHR data, never trusted as
    an address to fetch from until the allow-list says so."""

    address: str
    connection_type: str | None = None  # e.g. "dicom-wado-rs", "dicom-qido-rs"


@dataclass(frozen=True)
class ExpectedSeries:
    """One ImagingStudy.series as the EHR lists it."""

    uid: str
    modality: str | None = None
    number: int | None = None
    body_site: str | None = None  # SNOMED CT code
    laterality: str | None = None  # "R" or "L"
    number_of_instances: int | None = None
    instance_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyOrder:
    """The EHR's view: the patient, the order (accession, exam, body site, side, date) and the
    series and instances the ImagingStudy lists."""

    study_ref: str  # "ImagingStudy/<id>"
    study_uid: str  # from identifier urn:dicom:uid (urn:oid:...), without "urn:oid:"
    patient_ref: str | None = None
    order_ref: str | None = None  # "ServiceRequest/<id>"
    mrn: str | None = None  # Patient.identifier of type MR
    mrn_system: str | None = None
    family: str | None = None
    given: tuple[str, ...] = ()
    gender: str | None = None  # FHIR administrative gender
    birth_date: date | None = None
    accession: str | None = None  # ServiceRequest (else ImagingStudy) identifier of type ACSN
    procedure_code: str | None = None  # LOINC
    procedure_text: str | None = None
    modalities: tuple[str, ...] = ()  # ImagingStudy.modality (and series modalities)
    body_site: str | None = None  # ServiceRequest.bodySite SNOMED CT code
    laterality: str | None = None  # "R" / "L" from the mCODE laterality qualifier or series
    ordered_at: datetime | date | None = None  # ServiceRequest.occurrence[x]
    number_of_series: int | None = None
    number_of_instances: int | None = None
    series: tuple[ExpectedSeries, ...] = ()
    endpoints: tuple[EndpointInfo, ...] = ()


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _codings(concept: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept, or a bare Coding (R4 ImagingStudy.modality)."""
    if not isinstance(concept, dict):
        return []
    if "coding" in concept:
        return [c for c in _list(concept["coding"]) if isinstance(c, dict)]
    return [concept] if "code" in concept else []


def _code(concepts: Iterable[Any], system: str | None = None) -> str | None:
    for concept in concepts:
        for coding in _codings(concept):
            if system is None or coding.get("system") == system:
                code = _str(coding.get("code"))
                if code:
                    return code
    return None


def _typed_identifier(resource: dict[str, Any] | None, type_code: str) -> dict[str, Any] | None:
    for ident in _list((resource or {}).get("identifier")):
        if isinstance(ident, dict) and any(
            c.get("code") == type_code and c.get("system") in (V2_0203, None)
            for c in _codings(ident.get("type"))
        ):
            return ident
    return None


def _date(value: Any) -> date | None:
    """A full FHIR date (partial dates such as 1970 or 1970-01 say too little to compare)."""
    text = _str(value)
    try:
        return date.fromisoformat(text) if text and len(text) == 10 else None
    except ValueError:
        return None


def _when(value: Any) -> datetime | date | None:
    text = _str(value)
    if text is None:
        return None
    if len(text) == 10:
        return _date(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _side(concept: Any) -> str | None:
    side = _code([concept], SNOMED)
    return SIDES.get(side or "")


def endpoint_info(endpoint: dict[str, Any]) -> EndpointInfo:
    """An Endpoint resource as plain data (address "" when it has none: nothing to allow)."""
    kinds = _list(endpoint.get("connectionType"))  # R4: one Coding; R5: CodeableConcepts
    return EndpointInfo(address=_str(endpoint.get("address")) or "", connection_type=_code(kinds))


def contained_endpoints(imaging_study: dict[str, Any]) -> list[EndpointInfo]:
    """The Endpoints the ImagingStudy references as `#id` from its own `contained`."""
    contained = {
        r.get("id"): r
        for r in _list(imaging_study.get("contained"))
        if isinstance(r, dict) and r.get("resourceType") == "Endpoint"
    }
    found = []
    for ref in _list(imaging_study.get("endpoint")):
        target = _str(ref.get("reference")) if isinstance(ref, dict) else None
        if target and target.startswith("#") and target[1:] in contained:
            info = endpoint_info(contained[target[1:]])
            if info.address:
                found.append(info)
    return found


def study_uid(imaging_study: dict[str, Any]) -> str:
    """The Study Instance UID from identifier urn:dicom:uid; ImagingStudyUnsupported if none."""
    for ident in _list(imaging_study.get("identifier")):
        if isinstance(ident, dict) and ident.get("system") == DICOM_UID:
            value = (_str(ident.get("value")) or "").removeprefix("urn:oid:")
            if _UID.fullmatch(value) and len(value) <= 64:
                return value
    raise ImagingStudyUnsupported("the ImagingStudy has no DICOM Study Instance UID identifier")


def _series(item: dict[str, Any]) -> ExpectedSeries:
    instances = [i for i in _list(item.get("instance")) if isinstance(i, dict)]
    return ExpectedSeries(
        uid=_str(item.get("uid")) or "",
        modality=_code([item.get("modality")]),
        number=_int(item.get("number")),
        body_site=_code([item.get("bodySite")], SNOMED),
        laterality=_side(item.get("laterality")),
        number_of_instances=_int(item.get("numberOfInstances")),
        instance_uids=tuple(u for u in (_str(i.get("uid")) for i in instances) if u),
    )


def _one(values: Iterable[str | None]) -> str | None:
    """The single value every item agrees on, else None."""
    distinct = {v for v in values if v}
    return distinct.pop() if len(distinct) == 1 else None


def _official_name(patient: dict[str, Any]) -> dict[str, Any]:
    names = [n for n in _list(patient.get("name")) if isinstance(n, dict)]
    return next((n for n in names if n.get("use") == "official"), names[0] if names else {})


def read_study_order(
    imaging_study: dict[str, Any],
    patient: dict[str, Any] | None,
    service_request: dict[str, Any] | None,
    endpoints: Sequence[EndpointInfo] = (),
) -> StudyOrder:
    """The EHR's view of one study from its FHIR R4 JSON resources."""
    uid = study_uid(imaging_study)
    patient, request = patient or {}, service_request or {}
    series = tuple(_series(s) for s in _list(imaging_study.get("series")) if isinstance(s, dict))
    mrn = _typed_identifier(patient, "MR") or {}
    name = _official_name(patient)
    accession = _typed_identifier(request, "ACSN") or _typed_identifier(imaging_study, "ACSN")
    code = request.get("code")
    procedures = [code] if code else _list(imaging_study.get("procedureCode"))
    sites = _list(request.get("bodySite"))
    side_extensions = [
        e.get("valueCodeableConcept")
        for site in sites if isinstance(site, dict)
        for e in _list(site.get("extension"))
        if isinstance(e, dict) and e.get("url") == MCODE_LATERALITY
    ]  # fmt: skip
    modalities = [_code([m]) for m in _list(imaging_study.get("modality"))]
    period = request.get("occurrencePeriod") or {}
    contained = contained_endpoints(imaging_study)
    subject = imaging_study.get("subject") or {}
    order_refs = [_str(r.get("reference")) for r in _list(imaging_study.get("basedOn"))]
    return StudyOrder(
        study_ref=f"ImagingStudy/{imaging_study.get('id') or ''}",
        study_uid=uid,
        patient_ref=_str(subject.get("reference")) if isinstance(subject, dict) else None,
        order_ref=next((r for r in order_refs if r and "ServiceRequest/" in r), None),
        mrn=_str(mrn.get("value")),
        mrn_system=_str(mrn.get("system")),
        family=_str(name.get("family")),
        given=tuple(g for g in (_str(v) for v in _list(name.get("given"))) if g),
        gender=_str(patient.get("gender")),
        birth_date=_date(patient.get("birthDate")),
        accession=_str((accession or {}).get("value")),
        procedure_code=_code(procedures, LOINC),
        procedure_text=_str((procedures[0] if procedures else {}).get("text")),
        modalities=tuple(dict.fromkeys(m for m in modalities + [s.modality for s in series] if m)),
        body_site=_code(sites, SNOMED) or _one(s.body_site for s in series),
        laterality=_one(_side(e) for e in side_extensions) or _one(s.laterality for s in series),
        ordered_at=_when(request.get("occurrenceDateTime"))
        or _when(period.get("start") if isinstance(period, dict) else None)
        or _when(imaging_study.get("started")),
        number_of_series=_int(imaging_study.get("numberOfSeries")),
        number_of_instances=_int(imaging_study.get("numberOfInstances")),
        series=series,
        endpoints=tuple(dict.fromkeys([*contained, *endpoints])),
    )
