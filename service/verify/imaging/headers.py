"""The header of one DICOM instance, as the checks need it, read from a pydicom Dataset (a
Part 10 file or DICOMweb JSON metadata: `pydicom.Dataset.from_json`). No pixels, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydicom import Dataset


@dataclass(frozen=True)
class InstanceHeader:
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str | None = None
    instance_number: int | None = None
    series_number: int | None = None
    patient_id: str | None = None
    issuer: str | None = None  # IssuerOfPatientID
    issuer_universal: str | None = None  # IssuerOfPatientIDQualifiersSequence UniversalEntityID
    patient_name: str | None = None  # PN as stored, "FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX"
    birth_date: date | None = None
    sex: str | None = None  # "M", "F", "O"
    accession: str | None = None
    modality: str | None = None
    body_part: str | None = None  # BodyPartExamined (defined term)
    anatomic_regions: tuple[str, ...] = ()  # AnatomicRegionSequence CodeValues (SNOMED CT)
    laterality: str | None = None  # Laterality, else ImageLaterality: "R", "L", "B", "U"
    study_date: date | None = None
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (6 values)
    frames: int = 1  # NumberOfFrames
    rows: int | None = None
    columns: int | None = None
    transfer_syntax: str | None = None


def from_dataset(ds: Dataset) -> InstanceHeader:
    """Read the header fields (missing or malformed values become None, never an exception)."""
    raise NotImplementedError  # implemented by the checks work (issue 11)
