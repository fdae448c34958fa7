"""What the EHR says about one imaging study (ImagingStudy + Patient + ServiceRequest), read
into plain data the checks compare against the DICOM. No I/O: the workflow reads the resources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


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
